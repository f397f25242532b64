//! Unit tests of the pieces that need no store: item round trips, failure reasons, ids.
//! The pipeline itself runs in `shared/local/tests/debts.rs` (SQLite), in
//! `shared/aws/tests/debts.rs` (moto) and in `tests/e2e/debts.rs` (the binary).

use chrono::{DateTime, Utc};

use super::batch::{Batch, BatchStatus, Source, SubBatch};
use super::layout;
use super::steps::reason_of;

fn now() -> DateTime<Utc> {
    "2026-11-22T02:30:00Z".parse().expect("literal")
}

#[test]
fn a_batch_survives_its_item() {
    let mut batch = Batch::new(
        "d_1".into(),
        "acme".into(),
        Source::Drop,
        "varejo-sp".into(),
        vec!["inbox/debts/acme/a.csv".into(), "part-2".into()],
        now(),
    );
    batch.received = 7;
    batch.sub_batches = 2;
    let back = Batch::from_item(&batch.to_item()).expect("round trip");
    assert_eq!(back, batch);
    // 02:30 UTC is still the day before in Brasília (UTC−3).
    assert_eq!(back.today.to_string(), "2026-11-21");
    assert!(!back.all_processed());
    let sub = SubBatch {
        index: 3,
        key: "k".into(),
        first_line: 31,
        lines: 10,
        done: false,
        accepted: 0,
        rejected: 0,
    };
    assert_eq!(SubBatch::from_item(&sub.to_item("d_1")), Some(sub));
}

#[test]
fn statuses_read_back_and_know_when_they_are_final() {
    for s in [
        BatchStatus::Received,
        BatchStatus::Splitting,
        BatchStatus::Processing,
        BatchStatus::Completed,
        BatchStatus::CompletedWithErrors,
        BatchStatus::Failed,
    ] {
        assert_eq!(BatchStatus::parse(s.as_str()), Some(s));
    }
    assert!(BatchStatus::CompletedWithErrors.is_final());
    assert!(!BatchStatus::Processing.is_final());
}

#[test]
fn a_failure_keeps_the_reason_not_the_wrapping() {
    let lambda =
        r#"{"errorType":"Rejected","errorMessage":"rejected: the file is empty (0 bytes)"}"#;
    assert_eq!(reason_of(lambda), "the file is empty (0 bytes)");
    assert_eq!(reason_of("fatal: corrupt item"), "corrupt item");
    assert_eq!(
        reason_of(&"x".repeat(5000)).len(),
        super::steps::FAILURE_CHARS_MAX
    );
}

#[test]
fn client_ids_are_safe_in_keys() {
    assert!(layout::valid_client_id("acme-01.br_x"));
    for bad in ["", "a/b", "a#b", "a b", &"x".repeat(65)] {
        assert!(!layout::valid_client_id(bad), "{bad:?}");
    }
    assert_eq!(layout::debt_key("acme", "C-1").pk, "DEBT#acme#C-1");
}
