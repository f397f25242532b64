//! The payroll file end to end: the real sample, each tolerance, each finding, and properties.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::generate::{GenerateOptions, XmlStyle, format_amount, generate_xml, rows, write_xml};
use super::*;

fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/payroll/payroll-426-rows.xml"
    );
    std::fs::read(path).unwrap_or_else(|e| panic!("the real sample at {path}: {e}"))
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap()
}

fn finding(row: u32, field: Field, reason: Reason) -> Finding {
    Finding { row, field, reason }
}

/// Both readers, which must agree, and the result.
fn summarize_both(xml: &[u8]) -> Result<Summary, String> {
    let auto = summarize_with(xml, XmlReader::Auto).map_err(|e| e.to_string());
    let quick = summarize_with(xml, XmlReader::QuickXml).map_err(|e| e.to_string());
    assert_eq!(auto, quick, "the fast scanner and quick-xml disagree");
    auto
}

// ---------------------------------------------------------------------------------------------
// The real sample, as it is.

#[test]
fn the_real_sample_summarises_exactly() {
    let summary = summarize_both(&fixture()).unwrap();
    assert_eq!(summary.rows, 426);
    // Computed once, independently of this code, with Python's decimal module over
    // ElementTree: sum(Decimal(r.findtext('Amount').replace('$','').replace(',','')) for r in
    // rows), grouped by Payor/DunkinId and by Employee/DunkinBranch.
    assert_eq!(summary.total.to_string(), "2427.40");
    let sources: Vec<(&str, u32, String)> = summary
        .by_source
        .iter()
        .map(|s| (s.source_id.as_str(), s.count, s.total.to_string()))
        .collect();
    assert_eq!(
        sources,
        vec![
            (
                "CORP-1f5ba4e7-926a-47c5-9031-b07ad1dd6261",
                84,
                "495.26".to_owned()
            ),
            (
                "CORP-55988522-7698-46ba-bddd-4bc2956a6bb4",
                89,
                "490.87".to_owned()
            ),
            (
                "CORP-7dc67e67-e879-4da0-8fee-7d14ba4752b8",
                84,
                "468.52".to_owned()
            ),
            (
                "CORP-a9804e0b-e8b0-4837-8bbe-aabafcd483dd",
                78,
                "465.42".to_owned()
            ),
            (
                "CORP-e4025d0e-0491-49ef-8284-2738c2d0a0cf",
                91,
                "507.33".to_owned()
            ),
        ]
    );
    assert_eq!(summary.by_branch.len(), 30);
    let first = &summary.by_branch[0];
    let last = &summary.by_branch[29];
    assert_eq!(
        (first.branch_id.as_str(), first.count, first.total),
        ("BRC-022992c6-0e0c-4358-bf5f-d6bac61cbcab", 7, dec("35.09"))
    );
    assert_eq!(
        (last.branch_id.as_str(), last.count, last.total),
        ("BRC-ea093494-a5bc-4ecf-b4c1-9f6b0eabec86", 11, dec("59.86"))
    );
    assert!(
        summary
            .by_branch
            .windows(2)
            .all(|w| w[0].branch_id < w[1].branch_id)
    );
    let branch_sum: Decimal = summary.by_branch.iter().map(|b| b.total).sum();
    assert_eq!(branch_sum, summary.total);
    assert_eq!(summary.by_branch.iter().map(|b| b.count).sum::<u32>(), 426);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.is_approvable());
}

#[test]
fn the_real_sample_warns_of_its_8_digit_eins_and_its_employees_with_two_rows() {
    let summary = summarize_both(&fixture()).unwrap();
    let ein = |row| finding(row, Field::Ein, Reason::EinNotNineDigits { digits: 8 });
    let dup = |row, first_row| {
        finding(
            row,
            Field::EmployeeId,
            Reason::DuplicateEmployee {
                first_row,
                same_loan: false,
            },
        )
    };
    // One EIN warning per payer, on its first row (rows 1, 2, 3, 5, 9); the seven employees
    // that have a second row (to another loan) in the sample, on that second row.
    let mut expected = vec![
        ein(1),
        ein(2),
        ein(3),
        ein(5),
        ein(9),
        dup(228, 176),
        dup(261, 200),
        dup(373, 353),
        dup(375, 230),
        dup(378, 157),
        dup(409, 119),
        dup(411, 362),
    ];
    expected.sort_by_key(|f| f.row);
    assert_eq!(summary.warnings, expected);
    assert!(
        summary
            .warnings
            .iter()
            .all(|w| w.severity() == Severity::Warning)
    );
}

#[test]
fn the_real_sample_parses_into_typed_rows_keeping_leading_zeros_and_masking_pii() {
    let payroll = parse(&fixture()).unwrap();
    assert_eq!(payroll.rows.len(), 426);
    let first = &payroll.rows[0];
    assert_eq!(first.row, 1);
    assert_eq!(
        first.employee.id.as_str(),
        "EMP-a7f138d9-1885-43db-b5c7-6b7c09020b4f"
    );
    assert_eq!(first.employee.first_name.expose(), "Ariel");
    assert_eq!(
        *first.employee.date_of_birth.expose(),
        chrono::NaiveDate::from_ymd_opt(1987, 3, 26).unwrap()
    );
    assert_eq!(first.payer.name, "Dunkin' Donuts LLC");
    assert_eq!(first.payee.loan_account_number.expose(), "04807469");
    assert_eq!(first.amount.amount(), dec("8.15"));
    let third = &payroll.rows[2];
    assert_eq!(third.payer.routing.as_str(), "030748921");
    let debug = format!("{first:?}");
    for pii in [
        "Ariel",
        "+14594036784",
        "04807469",
        "40909581",
        "1987-03-26",
    ] {
        assert!(!debug.contains(pii), "{pii} in {debug}");
    }
    assert_eq!(payroll.summary, summarize(&fixture()).unwrap());
}

// ---------------------------------------------------------------------------------------------
// What real files contain.

/// The sample's rows written in another layout summarise the same.
fn same_as_sample_when_written(style: XmlStyle) {
    let payroll = parse(&fixture()).unwrap();
    let mut xml = String::new();
    write_xml(payroll.rows.clone(), &style, &mut xml);
    let again = parse(xml.as_bytes()).unwrap();
    assert_eq!(again.summary, payroll.summary, "{style:?}");
    assert_eq!(again.rows, payroll.rows, "{style:?}");
    assert_eq!(summarize_both(xml.as_bytes()).unwrap(), payroll.summary);
}

#[test]
fn a_bom_is_skipped() {
    let mut xml = b"\xEF\xBB\xBF".to_vec();
    xml.extend(fixture());
    assert_eq!(
        summarize_both(&xml).unwrap(),
        summarize(&fixture()).unwrap()
    );
    same_as_sample_when_written(XmlStyle {
        bom: true,
        declaration: true,
        ..XmlStyle::default()
    });
}

#[test]
fn pretty_printed_files_with_lf_or_crlf_read_the_same() {
    for crlf in [false, true] {
        same_as_sample_when_written(XmlStyle {
            pretty: true,
            crlf,
            ..XmlStyle::default()
        });
    }
}

#[test]
fn whitespace_around_values_is_trimmed() {
    same_as_sample_when_written(XmlStyle {
        padded_values: true,
        pretty: true,
        crlf: true,
        ..XmlStyle::default()
    });
    let xml = row_xml(&[("Amount", Some("\r\n   $8.15 \t"))]);
    assert_eq!(summarize_both(&xml).unwrap().total, dec("8.15"));
}

#[test]
fn entities_are_resolved() {
    same_as_sample_when_written(XmlStyle {
        apostrophe_entity: true,
        ..XmlStyle::default()
    });
    let xml = row_xml(&[
        (
            "Payor/Name",
            Some("Dunkin&apos; Donuts &amp; Co &#39;&#x27;"),
        ),
        ("Payor/DBA", Some("&lt;Dunkin&gt; &quot;D&quot;")),
    ]);
    let payroll = parse(&xml).unwrap();
    assert!(
        payroll.summary.errors.is_empty(),
        "{:?}",
        payroll.summary.errors
    );
    assert_eq!(payroll.rows[0].payer.name, "Dunkin' Donuts & Co ''");
    assert_eq!(payroll.rows[0].payer.dba, "<Dunkin> \"D\"");
    assert_eq!(summarize_both(&xml).unwrap(), payroll.summary);
}

#[test]
fn elements_in_another_order_read_the_same() {
    same_as_sample_when_written(XmlStyle {
        reversed: true,
        pretty: true,
        ..XmlStyle::default()
    });
}

#[test]
fn thousands_separators_and_missing_dollar_signs_are_read() {
    let xml = rows_xml(&[
        vec![("Amount", Some("$1,234.56"))],
        vec![("Amount", Some("1,000,000.00"))],
        vec![("Amount", Some("12"))],
    ]);
    let summary = summarize_both(&xml).unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.total, dec("1001246.56"));
}

#[test]
fn declarations_comments_cdata_attributes_and_unknown_elements_are_tolerated() {
    let row = String::from_utf8(row_xml(&[])).unwrap();
    let inner = row.trim_start_matches("<root>").trim_end_matches("</root>");
    let decorated = inner
        .replace(
            "<row>",
            "<row id=\"1\"><!-- first --><Extra><DunkinId>x</DunkinId></Extra>",
        )
        .replace(
            "<Name>Dunkin' Donuts LLC</Name>",
            "<Name><![CDATA[Dunkin' Donuts LLC]]></Name>",
        )
        .replace("<Payee>", "<?audit checked?><Payee>");
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE root>\n<root batch=\"7\">{decorated}</root>\n<!-- end -->\n"
    );
    let plain = summarize_both(&row_xml(&[])).unwrap();
    assert_eq!(summarize_both(xml.as_bytes()).unwrap(), plain);
    let typed = parse(xml.as_bytes()).unwrap();
    assert_eq!(typed.rows[0].payer.name, "Dunkin' Donuts LLC");
}

// ---------------------------------------------------------------------------------------------
// Each finding.

/// The sample's first row, as (path, raw inner XML) pairs in document order.
const ROW: [(&str, &str); 19] = [
    (
        "Employee/DunkinId",
        "EMP-a7f138d9-1885-43db-b5c7-6b7c09020b4f",
    ),
    (
        "Employee/DunkinBranch",
        "BRC-bbfbdfe5-0173-4613-8b07-aadb828e67f6",
    ),
    ("Employee/FirstName", "Ariel"),
    ("Employee/LastName", "Hayes"),
    ("Employee/DOB", "03-26-1987"),
    ("Employee/PhoneNumber", "+14594036784"),
    (
        "Payor/DunkinId",
        "CORP-7dc67e67-e879-4da0-8fee-7d14ba4752b8",
    ),
    ("Payor/ABARouting", "403911437"),
    ("Payor/AccountNumber", "40909581"),
    ("Payor/Name", "Dunkin' Donuts LLC"),
    ("Payor/DBA", "Dunkin' Donuts"),
    ("Payor/EIN", "321202401"),
    ("Payor/Address/Line1", "999 Hayes Lights"),
    ("Payor/Address/City", "Kerlukemouth"),
    ("Payor/Address/State", "IA"),
    ("Payor/Address/Zip", "50613"),
    ("Payee/PlaidId", "ins_116248"),
    ("Payee/LoanAccountNumber", "04807469"),
    ("Amount", "$8.15"),
];

/// One row: the sample's first (with a 9-digit EIN, so that it is clean), with some fields
/// replaced (`Some`) or removed (`None`).
fn row_fragment(changes: &[(&str, Option<&str>)]) -> String {
    let value = |path: &str| match changes.iter().find(|(p, _)| *p == path) {
        Some((_, v)) => *v,
        None => ROW.iter().find(|(p, _)| *p == path).map(|(_, v)| *v),
    };
    let leaf = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or(path);
        value(path).map_or(String::new(), |v| format!("<{name}>{v}</{name}>"))
    };
    let group = |name: &str, paths: &[&str]| {
        let inner: String = paths.iter().map(|p| leaf(p)).collect();
        format!("<{name}>{inner}</{name}>")
    };
    let employee = group(
        "Employee",
        &[
            "Employee/DunkinId",
            "Employee/DunkinBranch",
            "Employee/FirstName",
            "Employee/LastName",
            "Employee/DOB",
            "Employee/PhoneNumber",
        ],
    );
    let address = group(
        "Address",
        &[
            "Payor/Address/Line1",
            "Payor/Address/City",
            "Payor/Address/State",
            "Payor/Address/Zip",
        ],
    );
    let payor_fields: String = [
        "Payor/DunkinId",
        "Payor/ABARouting",
        "Payor/AccountNumber",
        "Payor/Name",
        "Payor/DBA",
        "Payor/EIN",
    ]
    .iter()
    .map(|p| leaf(p))
    .collect();
    let payee = group("Payee", &["Payee/PlaidId", "Payee/LoanAccountNumber"]);
    let extra: String = changes
        .iter()
        .filter(|(p, _)| p.starts_with('+'))
        .filter_map(|(_, v)| *v)
        .collect();
    format!(
        "<row>{employee}<Payor>{payor_fields}{address}</Payor>{payee}{}{extra}</row>",
        leaf("Amount")
    )
}

fn row_xml(changes: &[(&str, Option<&str>)]) -> Vec<u8> {
    format!("<root>{}</root>", row_fragment(changes)).into_bytes()
}

fn rows_xml(rows: &[Vec<(&str, Option<&str>)>]) -> Vec<u8> {
    let inner: String = rows.iter().map(|r| row_fragment(r)).collect();
    format!("<root>{inner}</root>").into_bytes()
}

/// The findings of a one-row file with `changes`.
fn findings_of(changes: &[(&str, Option<&str>)]) -> (Vec<Finding>, Vec<Finding>) {
    let s = summarize_both(&row_xml(changes)).unwrap();
    (s.errors, s.warnings)
}

#[test]
fn the_clean_row_has_no_finding() {
    assert_eq!(findings_of(&[]), (vec![], vec![]));
}

#[test]
fn every_missing_field_is_an_error_naming_it() {
    for (path, _) in ROW {
        let field = Field::ALL.into_iter().find(|f| f.path() == path).unwrap();
        for change in [None, Some(""), Some("  \r\n "), Some("<!-- empty -->")] {
            let (errors, _) = findings_of(&[(path, change)]);
            assert_eq!(
                errors,
                vec![finding(1, field, Reason::Missing)],
                "{path} {change:?}"
            );
        }
    }
    // A self-closing element is empty too.
    let xml = String::from_utf8(row_xml(&[]))
        .unwrap()
        .replace("<DBA>Dunkin' Donuts</DBA>", "<DBA/>");
    let s = summarize_both(xml.as_bytes()).unwrap();
    assert_eq!(s.errors, vec![finding(1, Field::Dba, Reason::Missing)]);
}

#[test]
fn structural_problems_in_a_field_are_errors() {
    let xml = String::from_utf8(row_xml(&[])).unwrap().replace(
        "<Amount>$8.15</Amount>",
        "<Amount>$8.15</Amount><Amount>$9.00</Amount>",
    );
    let s = summarize_both(xml.as_bytes()).unwrap();
    assert_eq!(s.errors, vec![finding(1, Field::Amount, Reason::Repeated)]);

    let long = "x".repeat(FIELD_BYTES_MAX + 1);
    let (errors, _) = findings_of(&[("Payor/Address/Line1", Some(&long))]);
    assert_eq!(
        errors,
        vec![finding(
            1,
            Field::AddressLine1,
            Reason::TooLong {
                max_bytes: FIELD_BYTES_MAX
            }
        )]
    );
    let (errors, _) = findings_of(&[("Payor/Name", Some("Dunkin&nbsp;Donuts"))]);
    assert_eq!(
        errors,
        vec![finding(1, Field::PayerName, Reason::UnknownEntity)]
    );
    let (errors, _) = findings_of(&[("Employee/LastName", Some("Ha&#0;yes"))]);
    assert_eq!(
        errors,
        vec![finding(1, Field::LastName, Reason::BadCharacterReference)]
    );
    for (path, field) in [
        ("Employee/DunkinId", Field::EmployeeId),
        ("Employee/DunkinBranch", Field::EmployeeBranch),
        ("Payor/DunkinId", Field::PayerId),
        ("Payee/PlaidId", Field::PlaidId),
    ] {
        let (errors, _) = findings_of(&[(path, Some("EMP#1 two"))]);
        assert_eq!(errors, vec![finding(1, field, Reason::BadId)], "{path}");
    }
}

#[test]
fn each_bad_amount_is_an_error_with_its_reason() {
    for (text, reason) in [
        ("abc", Reason::AmountNotANumber),
        ("$1,23.00", Reason::AmountNotANumber),
        ("8.15 USD", Reason::AmountNotANumber),
        ("-$8.15", Reason::AmountNegative),
        ("$0.00", Reason::AmountZero),
        ("$8.151", Reason::AmountTooManyDecimals { places: 3 }),
        ("$1,000,000.01", Reason::AmountTooLarge),
    ] {
        let (errors, _) = findings_of(&[("Amount", Some(text))]);
        assert_eq!(errors, vec![finding(1, Field::Amount, reason)], "{text}");
    }
}

#[test]
fn routing_numbers_and_dates_are_checked() {
    for (text, reason) in [
        ("403911438", Reason::RoutingChecksum),
        ("40391143", Reason::RoutingNotNineDigits),
        ("4039-1143", Reason::RoutingNotNineDigits),
    ] {
        let (errors, _) = findings_of(&[("Payor/ABARouting", Some(text))]);
        assert_eq!(
            errors,
            vec![finding(1, Field::AbaRouting, reason)],
            "{text}"
        );
    }
    for text in ["02-30-1987", "1987", "26/03/1987", "yesterday"] {
        let (errors, _) = findings_of(&[("Employee/DOB", Some(text))]);
        assert_eq!(
            errors,
            vec![finding(1, Field::DateOfBirth, Reason::DateUnparseable)],
            "{text}"
        );
    }
}

#[test]
fn payer_warnings_are_given_once_per_payer_and_value() {
    let (errors, warnings) = findings_of(&[("Payor/EIN", Some("32120240"))]);
    assert!(errors.is_empty());
    assert_eq!(
        warnings,
        vec![finding(
            1,
            Field::Ein,
            Reason::EinNotNineDigits { digits: 8 }
        )]
    );
    for (state, zip, field, reason) in [
        ("IA", "90210", Field::AddressZip, Reason::ZipNotInState),
        ("IA", "5061", Field::AddressZip, Reason::ZipMalformed),
        ("ZZ", "50613", Field::AddressState, Reason::UnknownState),
    ] {
        let (errors, warnings) = findings_of(&[
            ("Payor/Address/State", Some(state)),
            ("Payor/Address/Zip", Some(zip)),
        ]);
        assert!(errors.is_empty());
        assert_eq!(warnings, vec![finding(1, field, reason)], "{state} {zip}");
    }
    // Three rows of one payer with a short EIN, and one of another: one warning each payer.
    let other_payer = "CORP-00000000-0000-4000-8000-000000000000";
    let short = ("Payor/EIN", Some("32120240"));
    let xml = rows_xml(&[
        vec![short, ("Employee/DunkinId", Some("EMP-1"))],
        vec![short, ("Employee/DunkinId", Some("EMP-2"))],
        vec![
            short,
            ("Employee/DunkinId", Some("EMP-3")),
            ("Payor/DunkinId", Some(other_payer)),
        ],
        vec![short, ("Employee/DunkinId", Some("EMP-4"))],
    ]);
    let s = summarize_both(&xml).unwrap();
    assert_eq!(
        s.warnings,
        vec![
            finding(1, Field::Ein, Reason::EinNotNineDigits { digits: 8 }),
            finding(3, Field::Ein, Reason::EinNotNineDigits { digits: 8 }),
        ]
    );
}

#[test]
fn a_second_row_of_an_employee_is_a_warning_naming_the_first() {
    let xml = rows_xml(&[
        vec![],
        vec![("Employee/DunkinId", Some("EMP-other"))],
        vec![("Payee/LoanAccountNumber", Some("99999999"))],
        vec![],
    ]);
    let s = summarize_both(&xml).unwrap();
    assert!(s.errors.is_empty());
    assert_eq!(
        s.warnings,
        vec![
            finding(
                3,
                Field::EmployeeId,
                Reason::DuplicateEmployee {
                    first_row: 1,
                    same_loan: false
                }
            ),
            finding(
                4,
                Field::EmployeeId,
                Reason::DuplicateEmployee {
                    first_row: 1,
                    same_loan: true
                }
            ),
        ]
    );
    assert!(s.is_approvable(), "warnings do not block approval");
}

#[test]
fn every_bad_row_is_reported_and_figures_count_what_is_valid() {
    let xml = rows_xml(&[
        vec![("Amount", Some("$10.00"))],
        vec![
            ("Amount", Some("oops")),
            ("Employee/DunkinId", Some("EMP-2")),
        ],
        vec![
            ("Amount", Some("$5.00")),
            ("Payor/ABARouting", Some("403911438")),
            ("Employee/DunkinId", Some("EMP-3")),
        ],
    ]);
    let s = summarize_both(&xml).unwrap();
    assert_eq!(
        s.errors,
        vec![
            finding(2, Field::Amount, Reason::AmountNotANumber),
            finding(3, Field::AbaRouting, Reason::RoutingChecksum),
        ]
    );
    assert!(!s.is_approvable());
    assert_eq!(s.rows, 3);
    assert_eq!(s.total, dec("15.00"));
    assert_eq!(s.by_source.len(), 1);
    assert_eq!(
        (s.by_source[0].count, s.by_source[0].total),
        (3, dec("15.00"))
    );
    // Only error-free rows are typed.
    let typed = parse(&xml).unwrap();
    assert_eq!(
        typed.rows.iter().map(|r| r.row).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn files_that_cannot_be_read_say_why() {
    let err = |xml: &[u8]| summarize_with(xml, XmlReader::Auto).unwrap_err();
    assert!(matches!(err(b""), PayrollError::NoElement));
    assert!(matches!(err(b"  \n"), PayrollError::NoElement));
    assert!(matches!(err(b"<root></root>"), PayrollError::NoRows));
    assert!(matches!(
        err(b"<root><other/></root>"),
        PayrollError::NoRows
    ));
    let two_rows = rows_xml(&[vec![], vec![]]);
    let cut = &two_rows[..two_rows.len() - "</row></root>".len()];
    assert!(
        matches!(err(cut), PayrollError::Unclosed { row: 2 }),
        "{}",
        err(cut)
    );
    let mismatched =
        String::from_utf8(two_rows.clone())
            .unwrap()
            .replacen("</Employee>", "</Employe>", 2);
    match err(mismatched.as_bytes()) {
        PayrollError::Xml { row, .. } => assert_eq!(row, 1),
        other => panic!("{other}"),
    }
    assert!(matches!(
        err(b"<root><row/></root><root/>"),
        PayrollError::SecondRoot { .. }
    ));
    let deep = format!("<root><row>{}", "<x>".repeat(DEPTH_MAX));
    assert!(matches!(err(deep.as_bytes()), PayrollError::TooDeep { .. }));
    assert!(matches!(
        err(b"<root><row>\xFF</row></root>"),
        PayrollError::Xml { .. }
    ));
    assert!(matches!(
        err(b"<root><row>a & b</row></root>"),
        PayrollError::Xml { .. }
    ));
    assert_eq!(
        err(b"<root></root>").to_string(),
        "the file has no <row> elements"
    );
}

// ---------------------------------------------------------------------------------------------
// Generated files, large ones, and properties.

#[test]
fn generated_files_are_clean_but_for_the_samples_quirks() {
    let xml = generate_xml(&GenerateOptions::like_sample(600, 3));
    let s = summarize_both(xml.as_bytes()).unwrap();
    assert_eq!(s.rows, 600);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.by_source.len(), 5);
    let ein_warnings = s.warnings.iter().filter(|w| w.field == Field::Ein).count();
    let duplicates = s
        .warnings
        .iter()
        .filter(|w| w.field == Field::EmployeeId)
        .count();
    assert_eq!(ein_warnings, 5);
    assert_eq!(duplicates, 10);
    let expected: Decimal = rows(&GenerateOptions::like_sample(600, 3))
        .map(|r| r.amount.amount())
        .sum();
    assert_eq!(s.total, expected);
}

#[test]
fn a_large_file_read_in_parallel_parts_equals_one_read_whole() {
    let options = GenerateOptions {
        employees: 3000,
        ..GenerateOptions::like_sample(4000, 11)
    };
    let mut xml = generate_xml(&options);
    // A comment that looks like a row boundary, where a cut may fall.
    xml = xml.replacen("</row><row>", "</row><!-- <row> --><row>", 200);
    let whole = read_fast_in(xml.as_bytes(), true, 1).unwrap().unwrap();
    for parts in 2..=5 {
        let cuts = cut_points(xml.as_bytes(), parts);
        assert_eq!(cuts.len(), parts + 1);
        assert!(
            read_parts(xml.as_bytes(), &cuts, true).is_some(),
            "{parts} parts were read in parallel"
        );
        let split = read_fast_in(xml.as_bytes(), true, parts).unwrap().unwrap();
        assert_eq!(split.0, whole.0, "{parts} parts");
        assert_eq!(split.1, whole.1, "{parts} parts");
    }
    assert_eq!(
        whole.0,
        summarize_with(xml.as_bytes(), XmlReader::QuickXml).unwrap()
    );
    assert!(whole.0.warnings.iter().any(|w| w.row > 3000));
}

#[test]
fn parts_that_do_not_split_between_rows_fall_back_to_one_piece() {
    // The cut lands inside a comment; the result is still that of the whole file.
    let row = String::from_utf8(row_xml(&[])).unwrap();
    let inner = row.trim_start_matches("<root>").trim_end_matches("</root>");
    let xml = format!("<root>{inner}<!--{}<row>-->{inner}</root>", " ".repeat(200));
    let cuts = cut_points(xml.as_bytes(), 2);
    assert!(xml[..cuts[1]].ends_with("<!--") || xml[cuts[1] - 1..].starts_with(' '));
    assert!(read_parts(xml.as_bytes(), &cuts, false).is_none());
    for parts in 1..=4 {
        let (summary, _) = read_fast_in(xml.as_bytes(), false, parts).unwrap().unwrap();
        assert_eq!(summary.rows, 2, "{parts}");
    }
    // An unclosed document split in parts reports what the whole would.
    let open = format!("<root>{inner}{inner}{inner}");
    for parts in 1..=3 {
        let result = read_fast_in(open.as_bytes(), false, parts).unwrap();
        assert!(
            matches!(result, Err(PayrollError::Unclosed { row: 3 })),
            "{parts}"
        );
    }
}

fn any_style() -> impl Strategy<Value = XmlStyle> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(pretty, crlf, bom, declaration, padded_values, apostrophe_entity, reversed)| {
                XmlStyle {
                    pretty,
                    crlf,
                    bom,
                    declaration,
                    padded_values,
                    apostrophe_entity,
                    reversed,
                }
            },
        )
}

/// Text as people type it, with the characters XML must escape; no surrounding whitespace
/// (which the format does not keep).
fn any_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9'&<>\"éß ,.-]{1,40}".prop_filter_map("needs a non-space", |s| {
        let t = trim_xml_space(&s).to_owned();
        (!t.is_empty()).then_some(t)
    })
}

fn any_row() -> impl Strategy<Value = PayrollRow> {
    let ids = (
        "[A-Za-z0-9_.-]{1,64}",
        "[A-Za-z0-9_.-]{1,64}",
        "[A-Za-z0-9_.-]{1,64}",
        "[A-Za-z0-9_.-]{1,64}",
    );
    let people = (any_text(), any_text(), 0u32..40_000, "\\+?[0-9]{10,12}");
    let payer = (
        "[0-9]{8}",
        "[0-9]{4,17}",
        any_text(),
        any_text(),
        "[0-9]{9}",
        any_text(),
        any_text(),
    );
    let money = (1i64..=super::AMOUNT_USD_MAX * 100, "[0-9]{8}");
    (ids, people, payer, money).prop_map(|(ids, people, payer, money)| {
        let head = payer.0;
        let weights = [3u32, 7, 1, 3, 7, 1, 3, 7];
        let sum: u32 = head
            .bytes()
            .zip(weights)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        let routing = format!("{head}{}", (10 - sum % 10) % 10);
        PayrollRow {
            row: 1,
            employee: Employee {
                id: EmployeeId::parse(&ids.0).unwrap(),
                branch_id: BranchId::parse(&ids.1).unwrap(),
                first_name: crate::Secret::new(people.0),
                last_name: crate::Secret::new(people.1),
                date_of_birth: crate::Secret::new(
                    chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap()
                        + chrono::Days::new(u64::from(people.2)),
                ),
                phone: crate::Secret::new(people.3),
            },
            payer: Payer {
                id: PayerId::parse(&ids.2).unwrap(),
                routing: RoutingNumber::parse(&routing).unwrap(),
                account_number: crate::Secret::new(payer.1),
                name: payer.2,
                dba: payer.3,
                ein: payer.4,
                address: Address {
                    line1: payer.5,
                    city: payer.6,
                    state: "IA".to_owned(),
                    zip: "50613".to_owned(),
                },
            },
            payee: Payee {
                plaid_id: PlaidId::parse(&ids.3).unwrap(),
                loan_account_number: crate::Secret::new(money.1),
            },
            amount: crate::Money::new(Decimal::new(money.0, 2), crate::Currency::USD).unwrap(),
        }
    })
}

/// Bytes that make markup: mutations with these reach the scanner's every branch.
fn markup_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(b"<>/&;#x!?-[]'\" \r\nabcAmount0123456789\xEF\xBB\xBF\xFF".to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_rows_round_trip_exactly(
        mut rows in prop::collection::vec(any_row(), 1..6),
        style in any_style(),
    ) {
        for (i, r) in rows.iter_mut().enumerate() {
            r.row = i as u32 + 1;
        }
        let mut xml = String::new();
        write_xml(rows.clone(), &style, &mut xml);
        let payroll = parse(xml.as_bytes()).unwrap();
        prop_assert!(payroll.summary.errors.is_empty(), "{:?}", payroll.summary.errors);
        prop_assert_eq!(&payroll.rows, &rows);
        let total: Decimal = rows.iter().map(|r| r.amount.amount()).sum();
        prop_assert_eq!(payroll.summary.total, total);
        prop_assert_eq!(summarize_both(xml.as_bytes()).unwrap(), payroll.summary);
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = summarize_both(&bytes);
        let _ = parse(&bytes);
    }

    #[test]
    fn the_fast_scanner_and_quick_xml_agree_on_damaged_files(
        style in any_style(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, markup_byte()), 1..6),
    ) {
        let mut xml = String::new();
        write_xml(rows(&GenerateOptions::like_sample(3, 5)), &style, &mut xml);
        let mut bytes = xml.into_bytes();
        for (at, kind, byte) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes.insert(i, byte),
                1 => { bytes.remove(i); }
                _ => bytes[i] = byte,
            }
        }
        // summarize_both asserts that the two readers agree, error or not.
        let _ = summarize_both(&bytes);
    }

    #[test]
    fn the_fast_amount_path_agrees_with_the_money_parser(
        text in "\\$?[0-9]{0,4}(,[0-9]{1,4}){0,3}(\\.[0-9]{0,3})?",
    ) {
        if let Some(cents) = fast_cents(&text) {
            let money = check_amount(&text).unwrap();
            prop_assert_eq!(Decimal::new(cents, 2), money.amount());
        }
    }

    #[test]
    fn amounts_round_trip_through_their_written_form(cents in 1i64..=super::AMOUNT_USD_MAX * 100) {
        let amount = Decimal::new(cents, 2);
        let text = format_amount(amount);
        prop_assert_eq!(fast_cents(&text), Some(cents));
        prop_assert_eq!(check_amount(&text).unwrap().amount(), amount);
    }
}
