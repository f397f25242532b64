//! Synthetic payroll files of the real sample's shape, for benchmarks and end-to-end tests:
//! the same elements and value formats, 5 payers of one employer, 30 branches, about one
//! employee in sixty with a second row (another loan), amounts like `$8.11`, and the sample's
//! 8-digit EIN. Deterministic: the same options give the same bytes.
//!
//! [`write_xml`] also writes any rows in the other layouts real files come in (pretty-printed,
//! CRLF, BOM, padded values, entities, reordered elements), which the parser's tests use.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::ids::{BranchId, EmployeeId, PayerId, PlaidId, RoutingNumber};
use super::row::{Address, Employee, Payee, Payer, PayrollRow};
use crate::{Currency, Money, Secret};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    pub rows: u32,
    pub seed: u64,
    /// Source accounts of the employer.
    pub payers: u32,
    pub branches: u32,
    /// Distinct employees (at most `rows`); the other rows are further loans of earlier ones.
    pub employees: u32,
    /// Smallest and largest amount, in cents.
    pub amount_cents: (i64, i64),
}

/// The sample has 7 employees with two rows among 426 rows: about one in sixty.
const SAMPLE_ROWS_PER_REPEAT: u32 = 60;
/// Loan servicers in the sample.
const PLAID_INSTITUTIONS: u32 = 10;

impl GenerateOptions {
    /// `rows` rows shaped like the real sample.
    pub fn like_sample(rows: u32, seed: u64) -> Self {
        GenerateOptions {
            rows,
            seed,
            payers: 5,
            branches: 30,
            employees: rows - rows / SAMPLE_ROWS_PER_REPEAT,
            amount_cents: (101, 998),
        }
    }
}

/// How rows are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XmlStyle {
    /// One element per line, indented (otherwise all on one line, as the sample).
    pub pretty: bool,
    /// `\r\n` line ends (with `pretty`).
    pub crlf: bool,
    /// A UTF-8 byte order mark first.
    pub bom: bool,
    /// `<?xml version="1.0" encoding="UTF-8"?>` first.
    pub declaration: bool,
    /// Whitespace around every value.
    pub padded_values: bool,
    /// `'` written `&apos;` (the sample writes it as is).
    pub apostrophe_entity: bool,
    /// Children of each element in reverse order.
    pub reversed: bool,
}

/// A small, fast, seedable generator (SplitMix64): reproducible files without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0); the modulo bias is irrelevant for test data.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ariel", "Fletcher", "Lindsay", "Aurelia", "Kim", "Amalia", "Kiana", "Linnea", "Harmon",
    "Ismael", "Maria", "Jordan", "Casey", "Rowan", "Elliot", "Noor", "Mateo", "Priya", "Dana",
    "Tobias", "Imani", "Sven", "Lucia", "Omar", "Keiko", "Brennan", "Zoe", "Rafael", "Hana",
];
const LAST_NAMES: &[&str] = &[
    "Hayes",
    "Rowe",
    "Yundt",
    "Metz",
    "Hirthe",
    "Hodkiewicz",
    "Cartwright",
    "Denesik",
    "Stehr",
    "Crona",
    "O'Keefe",
    "Schmidt",
    "Nguyen",
    "Okafor",
    "Larsen",
    "Dubois",
    "Kowalski",
    "Reyes",
    "Abernathy",
    "Walsh",
    "Tanaka",
    "Moreau",
    "Fitzgerald",
    "Baptiste",
    "Lindqvist",
];

/// A routing number with a valid check digit: eight random digits, then the ninth that makes
/// the weighted sum (3, 7, 1) a multiple of ten.
fn routing_number(rng: &mut Rng) -> RoutingNumber {
    let head = rng.digits(8);
    let weights = [3, 7, 1, 3, 7, 1, 3, 7];
    let sum: u32 = head
        .bytes()
        .zip(weights)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = (10 - sum % 10) % 10;
    // Valid by construction: nine digits whose weighted sum is a multiple of ten.
    RoutingNumber::parse(&format!("{head}{check}")).expect("the check digit is computed")
}

fn date_of_birth(rng: &mut Rng) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(1960, 1, 1).unwrap_or_default();
    first + chrono::Days::new(rng.below(46 * 365))
}

/// Ids made of a prefix and a UUID are valid ids by construction.
fn id<T>(parse: fn(&str) -> Option<T>, text: String) -> T {
    parse(&text).expect("prefix and UUID are letters, digits and '-'")
}

struct Company {
    payers: Vec<Payer>,
    branches: Vec<BranchId>,
    institutions: Vec<PlaidId>,
}

fn company(rng: &mut Rng, options: &GenerateOptions) -> Company {
    // The sample's employer has one EIN of 8 digits for all its payers.
    let ein = rng.digits(8);
    let payers = (0..options.payers.max(1))
        .map(|_| Payer {
            id: id(PayerId::parse, format!("CORP-{}", rng.uuid())),
            routing: routing_number(rng),
            account_number: Secret::new(rng.digits(8)),
            name: "Dunkin' Donuts LLC".to_owned(),
            dba: "Dunkin' Donuts".to_owned(),
            ein: ein.clone(),
            address: Address {
                line1: "999 Hayes Lights".to_owned(),
                city: "Kerlukemouth".to_owned(),
                state: "IA".to_owned(),
                zip: "50613".to_owned(),
            },
        })
        .collect();
    let branches = (0..options.branches.max(1))
        .map(|_| id(BranchId::parse, format!("BRC-{}", rng.uuid())))
        .collect();
    let institutions = (0..PLAID_INSTITUTIONS)
        .map(|_| id(PlaidId::parse, format!("ins_1{}", rng.digits(5))))
        .collect();
    Company {
        payers,
        branches,
        institutions,
    }
}

fn new_employee(rng: &mut Rng, company: &Company) -> Employee {
    let branch = rng.below(company.branches.len() as u64) as usize;
    Employee {
        id: id(EmployeeId::parse, format!("EMP-{}", rng.uuid())),
        branch_id: company.branches[branch].clone(),
        first_name: Secret::new(rng.pick(FIRST_NAMES).to_owned()),
        last_name: Secret::new(rng.pick(LAST_NAMES).to_owned()),
        date_of_birth: Secret::new(date_of_birth(rng)),
        phone: Secret::new(format!("+1{}{}", 2 + rng.below(8), rng.digits(9))),
    }
}

/// The rows, one at a time (a large file need not be held as rows).
pub fn rows(options: &GenerateOptions) -> impl Iterator<Item = PayrollRow> {
    let mut rng = Rng(options.seed);
    let company = company(&mut rng, options);
    let (min, max) = options.amount_cents;
    let (min, max) = (min.max(1), max.max(min.max(1)));
    let mut employees: Vec<Employee> = Vec::new();
    let mut fresh_left = options.employees.clamp(1, options.rows.max(1));
    let mut repeats_left = options.rows.saturating_sub(fresh_left);
    (1..=options.rows).map(move |row| {
        let total_left = u64::from(fresh_left + repeats_left);
        let repeat = !employees.is_empty() && rng.below(total_left) < u64::from(repeats_left);
        let employee = if repeat {
            repeats_left -= 1;
            employees[rng.below(employees.len() as u64) as usize].clone()
        } else {
            fresh_left = fresh_left.saturating_sub(1);
            let e = new_employee(&mut rng, &company);
            employees.push(e.clone());
            e
        };
        let payer = company.payers[rng.below(company.payers.len() as u64) as usize].clone();
        let institution = rng.below(company.institutions.len() as u64) as usize;
        let cents = min + rng.below((max - min + 1) as u64) as i64;
        PayrollRow {
            row,
            employee,
            payer,
            payee: Payee {
                plaid_id: company.institutions[institution].clone(),
                loan_account_number: Secret::new(rng.digits(8)),
            },
            // Whole cents in dollars: two places, positive.
            amount: Money::new(Decimal::new(cents, 2), Currency::USD)
                .expect("cents have two decimal places"),
        }
    })
}

/// A whole file of the sample's shape and layout.
pub fn generate_xml(options: &GenerateOptions) -> String {
    let mut out = String::with_capacity(options.rows as usize * 740 + 16);
    write_xml(rows(options), &XmlStyle::default(), &mut out);
    out
}

/// Writes rows as a payroll file.
pub fn write_xml(rows: impl IntoIterator<Item = PayrollRow>, style: &XmlStyle, out: &mut String) {
    let mut w = Writer { style, out };
    if style.bom {
        w.out.push('\u{FEFF}');
    }
    if style.declaration {
        w.out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        w.newline(0);
    }
    w.out.push_str("<root>");
    for row in rows {
        w.newline(1);
        w.row(&row);
    }
    w.newline(0);
    w.out.push_str("</root>");
    if style.pretty {
        w.newline(0);
    }
}

struct Writer<'s> {
    style: &'s XmlStyle,
    out: &'s mut String,
}

/// One element: a leaf with its text, or a parent of elements.
enum Node<'v> {
    Leaf(&'static str, &'v str),
    Parent(&'static str, Vec<Node<'v>>),
}

impl Writer<'_> {
    fn newline(&mut self, depth: usize) {
        if self.style.pretty {
            self.out
                .push_str(if self.style.crlf { "\r\n" } else { "\n" });
            (0..depth).for_each(|_| self.out.push_str("  "));
        }
    }

    fn row(&mut self, row: &PayrollRow) {
        let e = &row.employee;
        let p = &row.payer;
        let dob = e.date_of_birth.expose().format("%m-%d-%Y").to_string();
        let amount = format_amount(row.amount.amount());
        let tree = Node::Parent(
            "row",
            vec![
                Node::Parent(
                    "Employee",
                    vec![
                        Node::Leaf("DunkinId", e.id.as_str()),
                        Node::Leaf("DunkinBranch", e.branch_id.as_str()),
                        Node::Leaf("FirstName", e.first_name.expose()),
                        Node::Leaf("LastName", e.last_name.expose()),
                        Node::Leaf("DOB", &dob),
                        Node::Leaf("PhoneNumber", e.phone.expose()),
                    ],
                ),
                Node::Parent(
                    "Payor",
                    vec![
                        Node::Leaf("DunkinId", p.id.as_str()),
                        Node::Leaf("ABARouting", p.routing.as_str()),
                        Node::Leaf("AccountNumber", p.account_number.expose()),
                        Node::Leaf("Name", &p.name),
                        Node::Leaf("DBA", &p.dba),
                        Node::Leaf("EIN", &p.ein),
                        Node::Parent(
                            "Address",
                            vec![
                                Node::Leaf("Line1", &p.address.line1),
                                Node::Leaf("City", &p.address.city),
                                Node::Leaf("State", &p.address.state),
                                Node::Leaf("Zip", &p.address.zip),
                            ],
                        ),
                    ],
                ),
                Node::Parent(
                    "Payee",
                    vec![
                        Node::Leaf("PlaidId", row.payee.plaid_id.as_str()),
                        Node::Leaf("LoanAccountNumber", row.payee.loan_account_number.expose()),
                    ],
                ),
                Node::Leaf("Amount", &amount),
            ],
        );
        self.node(&tree, 1);
    }

    fn node(&mut self, node: &Node<'_>, depth: usize) {
        match node {
            Node::Leaf(name, value) => {
                self.open(name);
                if self.style.padded_values {
                    self.out.push_str(" \t");
                }
                self.escaped(value);
                if self.style.padded_values {
                    self.out
                        .push_str(if self.style.crlf { "\r\n " } else { "\n " });
                }
                self.close(name);
            }
            Node::Parent(name, children) => {
                self.open(name);
                let write = |w: &mut Self, child: &Node<'_>| {
                    w.newline(depth + 1);
                    w.node(child, depth + 1);
                };
                if self.style.reversed {
                    children.iter().rev().for_each(|c| write(self, c));
                } else {
                    children.iter().for_each(|c| write(self, c));
                }
                self.newline(depth);
                self.close(name);
            }
        }
    }

    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn escaped(&mut self, text: &str) {
        for c in text.chars() {
            match c {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '\'' if self.style.apostrophe_entity => self.out.push_str("&apos;"),
                // A reference, so that a reader normalising line ends keeps it.
                '\r' => self.out.push_str("&#13;"),
                c => self.out.push(c),
            }
        }
    }
}

/// `$1,234.56`: dollars grouped by thousands, two decimals.
pub fn format_amount(amount: Decimal) -> String {
    let mut cents = amount;
    cents.rescale(2);
    let text = cents.abs().to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3 + 4);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}${grouped}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_as_in_payroll_files() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(format_amount(d("8.11")), "$8.11");
        assert_eq!(format_amount(d("1234.5")), "$1,234.50");
        assert_eq!(format_amount(d("1234567.89")), "$1,234,567.89");
        assert_eq!(format_amount(d("100")), "$100.00");
        assert_eq!(format_amount(d("-5")), "-$5.00");
    }

    #[test]
    fn the_same_seed_gives_the_same_file_and_another_seed_another() {
        let a = generate_xml(&GenerateOptions::like_sample(50, 7));
        assert_eq!(a, generate_xml(&GenerateOptions::like_sample(50, 7)));
        assert_ne!(a, generate_xml(&GenerateOptions::like_sample(50, 8)));
    }

    #[test]
    fn generated_files_have_the_requested_shape() {
        let options = GenerateOptions::like_sample(600, 1);
        let rows: Vec<PayrollRow> = rows(&options).collect();
        assert_eq!(rows.len(), 600);
        let distinct = |f: fn(&PayrollRow) -> String| {
            rows.iter()
                .map(f)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        assert_eq!(distinct(|r| r.employee.id.to_string()), 590);
        assert_eq!(distinct(|r| r.payer.id.to_string()), 5);
        assert!(distinct(|r| r.employee.branch_id.to_string()) <= 30);
        assert!(rows.iter().enumerate().all(|(i, r)| r.row == i as u32 + 1));
        let (lo, hi) = (Decimal::new(101, 2), Decimal::new(998, 2));
        assert!(rows.iter().all(|r| (lo..=hi).contains(&r.amount.amount())));
    }
}
