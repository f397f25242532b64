//! Whole-file behaviour: every shipped format, every rejection reason with its physical line
//! number, the file-level failures, and generated files checked against their known defects.

use chrono::NaiveDate;
use proptest::prelude::*;

use super::encoding::encode;
use super::generate::{self, GenerateOptions};
use super::*;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).expect("literal")
}

fn check(format: &str, text: &[u8]) -> Result<CheckReport, FileError> {
    check_bytes(builtin_named(format).expect("shipped"), today(), text)
}

fn reasons(report: &CheckReport) -> Vec<(u64, &str, &str)> {
    report
        .rejected
        .iter()
        .map(|r| (r.line, r.field.as_str(), r.reason.as_str()))
        .collect()
}

const HEADER: &str = "client_reference,debtor_name,cpf,amount,missed_date\n";

#[test]
fn the_default_format_accepts_good_lines() {
    let text = format!(
        "{HEADER}C-1,Maria da Silva,529.982.247-25,1234.56,2026-03-01\r\n\
         C-2,\"Souza, José\",52998224725, 10.5 ,2026-11-22\n\n"
    );
    let report = check("default", text.as_bytes()).expect("processable");
    assert_eq!(reasons(&report), vec![]);
    assert_eq!((report.lines, report.accepted), (2, 2));
}

#[test]
fn every_rejection_reason_names_line_field_and_reason() {
    let lines = [
        "R1,Ana,529.982.247-25,10.00,2026-01-01",    // 2: fine
        "R1,Ana,529.982.247-25,10.00,2026-01-01",    // 3: duplicate reference
        ",Ana,529.982.247-25,10.00,2026-01-01",      // 4: reference missing
        "R4,,529.982.247-25,10.00,2026-01-01",       // 5: name missing
        "R5,Ana,,10.00,2026-01-01",                  // 6: cpf missing
        "R6,Ana,5299822472,10.00,2026-01-01",        // 7: cpf lost a leading zero
        "R7,Ana,529-982-247-25,10.00,2026-01-01",    // 8: cpf format
        "R8,Ana,111.111.111-11,10.00,2026-01-01",    // 9: all same digits
        "R9,Ana,529.982.247-26,10.00,2026-01-01",    // 10: check digits
        "R10,Ana,529.982.247-25,,2026-01-01",        // 11: amount missing
        "R11,Ana,529.982.247-25,ten,2026-01-01",     // 12: not a number
        "R12,Ana,529.982.247-25,-3.00,2026-01-01",   // 13: negative
        "R13,Ana,529.982.247-25,0,2026-01-01",       // 14: zero
        "R14,Ana,529.982.247-25,1.005,2026-01-01",   // 15: three decimals
        "R15,Ana,529.982.247-25,10.00,",             // 16: date missing
        "R16,Ana,529.982.247-25,10.00,01/01/2026",   // 17: date format
        "R17,Ana,529.982.247-25,10.00,2026-02-29",   // 18: not a real date
        "R18,Ana,529.982.247-25,10.00,2026-11-23",   // 19: in the future
        "R19,Ana,529.982.247-25,10.00",              // 20: too few fields
        "R20,\"Ana,529.982.247-25,10.00,2026-01-01", // 21: unterminated quote
    ];
    let text = format!("{HEADER}{}\n", lines.join("\n"));
    let report = check("default", text.as_bytes()).expect("processable");
    let got = reasons(&report);
    let expected: Vec<(u64, &str, &str)> = vec![
        (
            3,
            "client_reference",
            "duplicates the client reference of line 2",
        ),
        (4, "client_reference", "is missing"),
        (5, "debtor_name", "is missing"),
        (6, "cpf", "is missing"),
        (
            7,
            "cpf",
            "has 10 digits; a leading zero may have been lost (spreadsheets drop it): write all 11 digits",
        ),
        (8, "cpf", "must be 11 digits or the mask 000.000.000-00"),
        (
            9,
            "cpf",
            "has all digits the same, which is not a valid CPF",
        ),
        (10, "cpf", "check digits do not match"),
        (11, "amount", "is missing"),
        (
            12,
            "amount",
            "is not a number written as 1234.56 or 1,234.56",
        ),
        (13, "amount", "must be positive"),
        (14, "amount", "must be positive"),
        (15, "amount", "has 3 decimal places; at most 2 are allowed"),
        (16, "missed_date", "is missing"),
        (17, "missed_date", "is not a date written as yyyy-mm-dd"),
        (18, "missed_date", "is not a real date"),
        (19, "missed_date", "is in the future (after 2026-11-22)"),
        (20, "line", "has 4 fields; the header has 5"),
        (
            21,
            "line",
            "has an unterminated quote in field 2 (a quoted field cannot span lines)",
        ),
    ];
    assert_eq!(got, expected);
    assert_eq!((report.lines, report.accepted), (20, 1));
    assert_eq!(report.rejected_lines(), 19);
}

#[test]
fn all_problems_of_a_line_are_reported() {
    let text = format!("{HEADER}R1,,123,abc,2026-99-01\n");
    let report = check("default", text.as_bytes()).expect("processable");
    let fields: Vec<&str> = report.rejected.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["debtor_name", "cpf", "amount", "missed_date"]);
    assert!(report.rejected.iter().all(|r| r.line == 2));
}

#[test]
fn files_that_cannot_be_processed() {
    assert_eq!(check("default", b""), Err(FileError::Empty));
    assert_eq!(
        check("default", b"PK\x03\x04\x00\x00binary"),
        Err(FileError::Binary(4))
    );
    assert_eq!(check("default", HEADER.as_bytes()), Err(FileError::NoDebts));
    assert_eq!(
        check("default", b"\n\n"),
        Err(FileError::Header(HeaderError::MissingColumn {
            field: DebtField::ClientReference,
            column: "client_reference".into(),
            found: "".into(),
        }))
    );
    let wrong = check(
        "default",
        b"ref;name;cpf;amount;date\nR1;Ana;529.982.247-25;10.00;2026-01-01\n",
    )
    .unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "wrong header: header has no column \"client_reference\" for client_reference (found: ref;name;cpf;amount;date)"
    );
    // A Windows-1252 header in a UTF-8 format.
    let mut latin = encode(Encoding::Windows1252, "contrato_nº");
    latin.extend_from_slice(b"\n");
    assert!(matches!(
        check("default", &latin),
        Err(FileError::HeaderEncoding(_))
    ));
}

#[test]
fn a_utf8_bom_is_not_part_of_the_first_column() {
    let text = format!("\u{feff}{HEADER}R1,Ana,529.982.247-25,10.00,2026-01-01\n");
    let report = check("default", text.as_bytes()).expect("processable");
    assert_eq!(report.accepted, 1);
}

#[test]
fn a_windows_1252_line_in_a_utf8_file_is_rejected_with_a_hint() {
    let mut text = HEADER.as_bytes().to_vec();
    text.extend(encode(
        Encoding::Windows1252,
        "R1,João,529.982.247-25,10.00,2026-01-01\n",
    ));
    let report = check("default", &text).expect("processable");
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].field, Target::Line);
    assert!(
        report.rejected[0].reason.contains("Windows-1252"),
        "{:?}",
        report.rejected
    );
}

#[test]
fn the_retail_format_reads_windows_1252_and_decimal_comma() {
    let text = encode(
        Encoding::Windows1252,
        "LOJA;CONTRATO;NOME DO CLIENTE;CPF;VALOR EM ABERTO;VENCIMENTO\r\n\
         0012;CT-9;João Gonçalves – Filho;529.982.247-25;1.234,56;05/10/2026\r\n\
         0012;CT-10;Márcia;529.982.247-25;1,234.56;2026-10-05\r\n",
    );
    let mut file = FileChecker::new(builtin_named("varejo-sp").expect("shipped"), today());
    let mut names = Vec::new();
    let mut splitter = LineSplitter::default();
    splitter
        .feed(&text, |line| {
            if let Outcome::Accepted(d) = file.line(line)? {
                names.push((
                    d.debtor_name.to_owned(),
                    d.amount.to_string(),
                    d.missed_date,
                ));
            }
            Ok::<_, FileError>(())
        })
        .expect("processable");
    assert_eq!(
        names,
        vec![(
            "João Gonçalves – Filho".to_owned(),
            "1234.56".to_owned(),
            NaiveDate::from_ymd_opt(2026, 10, 5).expect("literal")
        )]
    );
    let report = file.finish().expect("processable");
    assert_eq!(
        reasons(&report),
        vec![
            (
                3,
                "amount",
                "is not a number written as 1234,56 or 1.234,56"
            ),
            (3, "missed_date", "is not a date written as dd/mm/yyyy"),
        ]
    );
}

#[test]
fn the_telecom_fixed_width_format_reads_latin1_positions() {
    let format = builtin_named("telecom-fixed").expect("shipped");
    let line = format!(
        "{:<15}{:<40}{:<14}{:>12}{}",
        "TEL-000001", "Conceição Araújo", "52998224725", "0001234,56", "05102026"
    );
    let mut text = encode(Encoding::Latin1, &line);
    text.extend_from_slice(b"\nTEL-000002   short\n");
    let report = check_bytes(format, today(), &text).expect("processable");
    assert_eq!(report.accepted, 1);
    assert_eq!(
        reasons(&report),
        vec![(2, "line", "has 18 characters; the layout needs 89")]
    );
}

#[test]
fn the_finance_format_reads_columns_by_position_and_two_date_formats() {
    let text = "A1\t0001\tAna Lima\t52998224725\t99.90\t2026-01-31\n\
                A2\t0001\tRui Dias\t529.982.247-25\t100\t31/01/2026\n\
                A3\t0001\tRui Dias\n";
    let report = check("financeira-tab", text.as_bytes()).expect("processable");
    assert_eq!(report.accepted, 2);
    assert_eq!(
        reasons(&report),
        vec![(3, "line", "has 3 fields; the format needs at least 6")]
    );
}

fn options(lines: u64, seed: u64, defect_every: u64) -> GenerateOptions {
    GenerateOptions {
        lines,
        seed,
        today: today(),
        defect_every,
        reference_prefix: "C".into(),
    }
}

#[test]
fn generated_files_of_every_format_check_clean() {
    for format in builtin() {
        let text = generate::file(&options(500, 7, 0), &format);
        let report = check_bytes(format.clone(), today(), &text).expect("processable");
        assert_eq!(reasons(&report), vec![], "format {}", format.name);
        assert_eq!(report.accepted, 500, "format {}", format.name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every generated defect is rejected on its line and field, and nothing else is.
    #[test]
    fn generated_defects_are_exactly_the_rejections(seed in any::<u64>(), every in 2u64..9, format_index in 0usize..4) {
        let format = builtin()[format_index].clone();
        let opts = options(200, seed, every);
        let text = generate::file(&opts, &format);
        let report = check_bytes(format.clone(), today(), &text).expect("processable");
        let first_line = format.header_lines() as u64 + 1;
        let mut expected: Vec<(u64, &str)> = generate::debts(&opts, &format)
            .enumerate()
            .filter_map(|(i, d)| d.defect.map(|x| (first_line + i as u64, x.field().as_str())))
            .collect();
        expected.sort();
        let mut got: Vec<(u64, &str)> = report.rejected.iter().map(|r| (r.line, r.field.as_str())).collect();
        got.sort();
        prop_assert_eq!(got, expected);
    }

    /// Feeding a file in chunks of any size gives the same report as feeding it whole.
    #[test]
    fn chunking_does_not_change_the_report(seed in any::<u64>(), chunk in 1usize..300) {
        let format = builtin_named("default").expect("shipped");
        let text = generate::file(&options(60, seed, 5), &format);
        let whole = check_bytes(format.clone(), today(), &text).expect("processable");
        let mut file = FileChecker::new(format, today());
        let mut splitter = LineSplitter::default();
        for part in text.chunks(chunk) {
            splitter.feed(part, |l| file.line(l).map(|_| ())).expect("processable");
        }
        splitter.finish(|l| file.line(l).map(|_| ())).expect("processable");
        prop_assert_eq!(file.finish().expect("processable"), whole);
    }

    /// Arbitrary bytes never panic, whatever the format.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), format_index in 0usize..4) {
        let _ = check_bytes(builtin()[format_index].clone(), today(), &bytes);
    }
}
