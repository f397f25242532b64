//! Realistic reconciliation inputs for a day, deterministic for a seed: transactions (with
//! out-of-order repeats as statuses change), the bank's statement (fees, split postings,
//! short postings, missing and duplicated lines, refunds, a few unknown transactions), fraud
//! signals (some re-scored later), policies and merchant profiles. For the demo, the
//! benchmark and the tests.

use std::io::{self, Write};

use chrono::NaiveDate;

/// Most transactions one generated day may have.
pub const GENERATE_TRANSACTIONS_MAX: u64 = 50_000_000;
/// Card fee in basis points of the amount.
const FEE_BASIS_POINTS: i64 = 290;

/// SplitMix64: varied, reproducible, not secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub date: NaiveDate,
    pub transactions: u64,
    pub seed: u64,
}

impl GenerateOptions {
    pub fn merchants(&self) -> u64 {
        (self.transactions / 100).clamp(20, 5_000)
    }
    fn users(&self) -> u64 {
        (self.transactions / 8).max(3)
    }
}

/// Where the five files go.
pub struct GenerateSinks<'w> {
    pub transactions: &'w mut dyn Write,
    pub statements: &'w mut dyn Write,
    pub fraud: &'w mut dyn Write,
    pub policies: &'w mut dyn Write,
    pub merchants: &'w mut dyn Write,
}

/// Counts of what was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenerateCounts {
    pub transactions: u64,
    pub transaction_events: u64,
    pub statement_lines: u64,
    pub fraud_signals: u64,
    pub merchants: u64,
}

fn cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        c.unsigned_abs() / 100,
        c.unsigned_abs() % 100
    )
}

/// Writes one day of inputs.
pub fn generate_day(
    options: &GenerateOptions,
    out: GenerateSinks<'_>,
) -> io::Result<GenerateCounts> {
    let mut rng = Rng(options.seed ^ 0x5EC0_4EC0);
    let mut counts = GenerateCounts {
        merchants: options.merchants(),
        ..GenerateCounts::default()
    };
    let date = options.date;
    writeln!(
        out.merchants,
        "merchant_id,merchant_name,risk_level,onboarding_date"
    )?;
    for m in 0..counts.merchants {
        let risk = match rng.below(100) {
            0..70 => "LOW",
            70..92 => "MEDIUM",
            _ => "HIGH",
        };
        let onboarded = date - chrono::Days::new(30 + rng.below(2000));
        writeln!(out.merchants, "m_{m:05},Merchant {m},{risk},{onboarded}")?;
    }
    writeln!(
        out.policies,
        "policy_id,policy_type,rule_description,active_flag,threshold,currency,risk_levels"
    )?;
    writeln!(
        out.policies,
        "pol_kyc,KYC,Identity check above 3000,true,3000,,"
    )?;
    writeln!(
        out.policies,
        "pol_aml,AML,AML review above 10000 at risky merchants,true,10000,,HIGH|MEDIUM"
    )?;
    writeln!(
        out.policies,
        "pol_brl,REGIONAL_LIMIT,BRL single-payment limit,true,5000,BRL,"
    )?;
    writeln!(
        out.policies,
        "pol_mrk,MERCHANT_RISK,High-risk merchants,true,,,HIGH"
    )?;
    writeln!(out.policies, "pol_old,KYC,Retired rule,false,1,,")?;

    writeln!(
        out.transactions,
        "transaction_id,merchant_id,user_id,amount,currency,status,timestamp"
    )?;
    writeln!(
        out.statements,
        "statement_id,transaction_id,posting_date,amount_posted,fee_charged"
    )?;
    writeln!(
        out.fraud,
        "fraud_signal_id,transaction_id,fraud_score,model_version,inference_time"
    )?;
    let day_start = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_default();
    let posting = date + chrono::Days::new(1);
    let mut line_no = 0u64;
    let mut next_line = |rng: &mut Rng| {
        line_no += 1;
        format!("st_{:x}_{line_no:09}_{}", options.seed, rng.below(10))
    };
    for i in 0..options.transactions {
        let id = format!("tx_{:x}_{i:09}", options.seed);
        let merchant = rng.below(counts.merchants);
        let user = rng.below(options.users());
        let amount = if rng.chance(3) {
            1_000_000 + rng.below(2_000_000) as i64
        } else {
            100 + rng.below(200_000) as i64
        };
        let currency = match rng.below(100) {
            0..80 => "USD",
            80..95 => "BRL",
            _ => "EUR",
        };
        let status = match rng.below(1000) {
            0..850 => "APPROVED",
            850..900 => "DECLINED",
            900..940 => "REFUNDED",
            _ => "PENDING",
        };
        let second = rng.below(86_000) as i64;
        let at = day_start + chrono::Duration::seconds(second);
        let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let prefix = format!(
            "{id},m_{merchant:05},user_{user:07},{},{currency}",
            cents(amount)
        );
        writeln!(out.transactions, "{prefix},{status},{}", stamp(at))?;
        counts.transactions += 1;
        counts.transaction_events += 1;
        // The earlier PENDING event of some transactions arrives after the final one.
        if status != "PENDING" && rng.chance(100) {
            writeln!(
                out.transactions,
                "{prefix},PENDING,{}",
                stamp(at - chrono::Duration::seconds(30))
            )?;
            counts.transaction_events += 1;
        }
        counts.statement_lines += write_statement(
            &mut rng,
            &mut next_line,
            out.statements,
            &id,
            status,
            amount,
            posting,
        )?;
        if rng.chance(800) {
            let score = rng.below(1_000_000);
            let score = if rng.chance(50) {
                700_000 + score % 300_000
            } else {
                score / 4
            };
            let t = at + chrono::Duration::seconds(5);
            writeln!(out.fraud, "fs_{id}_1,{id},0.{score:06},v7,{}", stamp(t))?;
            counts.fraud_signals += 1;
            if rng.chance(100) {
                let rescored = rng.below(1_000_000);
                writeln!(
                    out.fraud,
                    "fs_{id}_2,{id},0.{rescored:06},v8,{}",
                    stamp(t + chrono::Duration::seconds(60))
                )?;
                counts.fraud_signals += 1;
            }
        }
    }
    // Postings for transactions the stream never delivered.
    for j in 0..(options.transactions / 500).max(1) {
        let amount = 100 + rng.below(50_000) as i64;
        let sid = next_line(&mut rng);
        writeln!(
            out.statements,
            "{sid},tx_unknown_{j:07},{posting},{},0.00",
            cents(amount)
        )?;
        counts.statement_lines += 1;
    }
    Ok(counts)
}

fn write_statement(
    rng: &mut Rng,
    next_line: &mut impl FnMut(&mut Rng) -> String,
    out: &mut dyn Write,
    id: &str,
    status: &str,
    amount: i64,
    posting: NaiveDate,
) -> io::Result<u64> {
    let fee = amount * FEE_BASIS_POINTS / 10_000;
    let mut lines = 0;
    let mut line =
        |rng: &mut Rng, out: &mut dyn Write, posted: i64, fee: i64| -> io::Result<String> {
            let text = format!(
                "{},{id},{posting},{},{}",
                next_line(rng),
                cents(posted),
                cents(fee)
            );
            writeln!(out, "{text}")?;
            lines += 1;
            Ok(text)
        };
    match status {
        "APPROVED" => match rng.below(1000) {
            0..920 => {
                line(rng, out, amount - fee, fee)?;
            }
            920..950 => {
                let first = (amount - fee) / 2;
                line(rng, out, first, fee)?;
                line(rng, out, amount - fee - first, 0)?;
            }
            950..970 => {
                let short = 1 + rng.below(500) as i64;
                line(rng, out, amount - fee - short, fee)?;
            }
            970..990 => {}
            _ => {
                let text = line(rng, out, amount - fee, fee)?;
                writeln!(out, "{text}")?;
                lines += 1;
            }
        },
        "REFUNDED" => {
            if rng.chance(970) {
                line(rng, out, -amount, 0)?;
            }
        }
        "DECLINED" => {
            if rng.chance(20) {
                line(rng, out, amount, 0)?;
            }
        }
        _ => {
            if rng.chance(500) {
                line(rng, out, amount - fee, fee)?;
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_files() {
        let gen_once = || {
            let (mut t, mut s, mut f, mut p, mut m) = (vec![], vec![], vec![], vec![], vec![]);
            let options = GenerateOptions {
                date: NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid date"),
                transactions: 2_000,
                seed: 3,
            };
            let counts = generate_day(
                &options,
                GenerateSinks {
                    transactions: &mut t,
                    statements: &mut s,
                    fraud: &mut f,
                    policies: &mut p,
                    merchants: &mut m,
                },
            )
            .expect("in memory");
            (counts, t, s, f)
        };
        let (a, b) = (gen_once(), gen_once());
        assert_eq!(a.0, b.0);
        assert_eq!((a.1, a.2, a.3), (b.1, b.2, b.3));
        assert_eq!(a.0.transactions, 2_000);
        assert!(a.0.transaction_events > 2_000, "some transactions repeat");
        assert!(a.0.statement_lines > 1_500);
    }
}
