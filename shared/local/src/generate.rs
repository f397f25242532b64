//! Realistic generated inputs for the demo, the benchmark and the tests. Deterministic for a
//! seed, so a failing run can be replayed.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// A tiny deterministic generator (SplitMix64): the data only has to look varied and be
/// reproducible, not be unpredictable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One payment webhook body as the lender's provider sends it. `day` is the payment day; the
/// event ids are unique per (seed, index).
pub fn payment_event_body(rng: &mut Rng, seed: u64, index: u64, day: NaiveDate) -> Value {
    let statuses = [
        "paid", "paid", "paid", "paid", "paid", "paid", "paid", "failed", "reversed",
    ];
    let employers = [
        "emp_dunkin",
        "emp_acme_foods",
        "emp_northwind",
        "emp_contoso",
        "emp_globex",
    ];
    let cents = 2_500 + rng.below(120_000) as i64;
    let amount = Decimal::new(cents, 2);
    let borrower = rng.below(5_000);
    let seconds = rng.below(86_400) as i64;
    let paid_at: DateTime<Utc> = day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_default()
        + Duration::seconds(seconds);
    // Half the amounts as JSON strings and half as numbers: providers do both.
    let amount_json = if index.is_multiple_of(2) {
        Value::String(amount.to_string())
    } else {
        serde_json::from_str(&amount.to_string()).unwrap_or(Value::String(amount.to_string()))
    };
    json!({
        "event_id": format!("evt_{seed:x}_{index:08}"),
        "loan_id": format!("loan_{:06}", borrower * 2 + rng.below(2)),
        "borrower_id": format!("bor_{borrower:06}"),
        "employer_id": employers[rng.below(employers.len() as u64) as usize],
        "amount": amount_json,
        "currency": "USD",
        "status": statuses[rng.below(statuses.len() as u64) as usize],
        "paid_at": paid_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}
