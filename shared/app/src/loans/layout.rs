//! The key design of the loans table (`resources::LOANS_TABLE`):
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | a loan | `LOAN#{loan_id}` | `LOAN` | see [`LoanRecord`]; while it has an expected date: `gsi1_pk = DUE#{date}#{shard}`, `gsi1_sk = {loan_id}` |
//! | a borrower's pay history | `BORROWER#{borrower_id}` | `HISTORY` | `payments` (newest [`HISTORY_PAYMENTS_MAX`], `date amount event_id loan_id` joined by `;`; items written before loan ids were kept have `date amount event_id`), `undone` (newest [`UNDONE_MAX`] failed/reversed events, `event_id loan_id amount paid_at paid_event_id-or--` joined by `;`; absent when none), `version` |
//! | a loan flagged missed on day D | `MISSEDON#{D}` | `{loan_id}#{expected_date}` | expected date/amount, employer, schedule, last payment, `event_sent` |
//! | a late payment that cleared a flag | `LATEON#{paid_on}` | `{loan_id}#{expected_date}` | expected date/amount, paid amount |
//!
//! `gsi1` is sparse: only loans with an expected date are in it, sharded over
//! [`DUE_INDEX_SHARDS`] partitions per day so that no day's partition gets hot. The checker
//! queries the partitions of the days whose grace has passed, never the whole table.

use chrono::NaiveDate;
use payops_core::paydays::{Confidence, Frequency, Schedule};
use payops_core::{Currency, Secret};
use rust_decimal::Decimal;

use crate::ports::{Item, Key, Value};

pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1_pk";
pub const GSI1_SK: &str = "gsi1_sk";
pub const LOAN_SK: &str = "LOAN";
pub const HISTORY_SK: &str = "HISTORY";
/// Partitions per expected day in `gsi1`.
pub const DUE_INDEX_SHARDS: u32 = 16;
/// Payments kept in a borrower's history (the newest); inference needs far fewer.
pub const HISTORY_PAYMENTS_MAX: usize = 60;
/// Failed/reversed events a history remembers (the newest), so that their redelivery, and a
/// late redelivery of the payment they took out, change nothing.
pub const UNDONE_MAX: usize = 60;

pub mod attr {
    pub const LOAN_ID: &str = "loan_id";
    pub const BORROWER_ID: &str = "borrower_id";
    pub const EMPLOYER_ID: &str = "employer_id";
    pub const AMOUNT: &str = "amount";
    pub const CURRENCY: &str = "currency";
    pub const TOLERANCE: &str = "amount_tolerance";
    pub const DECLARED_SCHEDULE: &str = "declared_schedule";
    pub const SCHEDULE: &str = "schedule";
    pub const FREQUENCY: &str = "frequency";
    pub const CONFIDENCE: &str = "confidence";
    pub const STATUS: &str = "status";
    pub const EXPECTED_DATE: &str = "expected_date";
    pub const WINDOW_START: &str = "expected_window_start";
    pub const MISSED_ON: &str = "missed_on";
    pub const MISSED_EXPECTED_DATE: &str = "missed_expected_date";
    pub const LAST_PAID_ON: &str = "last_paid_on";
    pub const LAST_PAID_AMOUNT: &str = "last_paid_amount";
    pub const LATE_PAID_ON: &str = "late_paid_on";
    pub const CREATED_AT: &str = "created_at";
    pub const VERSION: &str = "version";
    pub const PAYMENTS: &str = "payments";
    pub const UNDONE: &str = "undone";
    pub const EVENT_SENT: &str = "event_sent";
    pub const PAID_ON: &str = "paid_on";
    pub const PAID_AMOUNT: &str = "paid_amount";
}

/// Where a loan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoanStatus {
    /// Paid up to its expected date (or nothing due yet).
    Current,
    /// An expected payroll payment did not arrive within the grace.
    Missed,
    /// The missed payment arrived late; the flag is cleared.
    PaidLate,
}

impl LoanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoanStatus::Current => "CURRENT",
            LoanStatus::Missed => "MISSED",
            LoanStatus::PaidLate => "PAID_LATE",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "CURRENT" => Some(LoanStatus::Current),
            "MISSED" => Some(LoanStatus::Missed),
            "PAID_LATE" => Some(LoanStatus::PaidLate),
            _ => None,
        }
    }
}

/// A loan as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanRecord {
    pub loan_id: String,
    pub borrower_id: Secret<String>,
    pub employer_id: String,
    /// The instalment expected from each payroll.
    pub amount: Decimal,
    pub currency: Currency,
    /// A payment matches when it is within this fraction of `amount` (0.01 = 1%).
    pub tolerance: Decimal,
    pub declared_schedule: Option<Schedule>,
    /// The schedule in use (inferred, else declared) and its class and confidence.
    pub schedule: Option<Schedule>,
    pub frequency: Option<Frequency>,
    pub confidence: Confidence,
    pub status: LoanStatus,
    /// The next payroll date a payment is expected by (the latest day of the window for an
    /// irregular earner). Keys `gsi1`.
    pub expected_date: Option<NaiveDate>,
    /// For an irregular earner: the first day of the expected window.
    pub window_start: Option<NaiveDate>,
    pub missed_on: Option<NaiveDate>,
    pub missed_expected_date: Option<NaiveDate>,
    pub last_paid_on: Option<NaiveDate>,
    pub last_paid_amount: Option<Decimal>,
    pub late_paid_on: Option<NaiveDate>,
    pub created_at: String,
    /// Bumped by every write; each write is conditional on the version it read.
    pub version: u64,
}

pub fn loan_key(loan_id: &str) -> Key {
    Key::new(format!("LOAN#{loan_id}"), LOAN_SK)
}

pub fn history_key(borrower_id: &str) -> Key {
    Key::new(format!("BORROWER#{borrower_id}"), HISTORY_SK)
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The shard of a loan in the due index: FNV-1a of its id, stable across processes.
pub fn shard_of(loan_id: &str) -> u32 {
    let hash = loan_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % u64::from(DUE_INDEX_SHARDS)) as u32
}

/// The `gsi1` partition of loans expected on `day` in `shard`.
pub fn due_partition(day: NaiveDate, shard: u32) -> String {
    format!("DUE#{}#{shard:02}", day_text(day))
}

pub fn missed_partition(day: NaiveDate) -> String {
    format!("MISSEDON#{}", day_text(day))
}

pub fn late_partition(day: NaiveDate) -> String {
    format!("LATEON#{}", day_text(day))
}

/// The sort key of a missed or late record.
pub fn flag_sk(loan_id: &str, expected: NaiveDate) -> String {
    format!("{loan_id}#{}", day_text(expected))
}

/// A stored item that this code could not have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored item is invalid at attribute {attribute}")]
pub struct CorruptItem {
    pub attribute: &'static str,
}

pub fn loan_item(loan: &LoanRecord) -> Item {
    let mut item = Item::new(&loan_key(&loan.loan_id))
        .with(attr::LOAN_ID, loan.loan_id.as_str())
        .with(attr::BORROWER_ID, loan.borrower_id.expose().as_str())
        .with(attr::EMPLOYER_ID, loan.employer_id.as_str())
        .with(attr::AMOUNT, loan.amount)
        .with(attr::CURRENCY, loan.currency.as_str())
        .with(attr::TOLERANCE, loan.tolerance)
        .with(attr::CONFIDENCE, loan.confidence.to_decimal())
        .with(attr::STATUS, loan.status.as_str())
        .with(attr::CREATED_AT, loan.created_at.as_str())
        .with(attr::VERSION, Decimal::from(loan.version));
    let texts = [
        (
            attr::DECLARED_SCHEDULE,
            loan.declared_schedule.map(|s| s.to_string()),
        ),
        (attr::SCHEDULE, loan.schedule.map(|s| s.to_string())),
        (
            attr::FREQUENCY,
            loan.frequency.map(|f| f.as_str().to_owned()),
        ),
        (attr::EXPECTED_DATE, loan.expected_date.map(day_text)),
        (attr::WINDOW_START, loan.window_start.map(day_text)),
        (attr::MISSED_ON, loan.missed_on.map(day_text)),
        (
            attr::MISSED_EXPECTED_DATE,
            loan.missed_expected_date.map(day_text),
        ),
        (attr::LAST_PAID_ON, loan.last_paid_on.map(day_text)),
        (attr::LATE_PAID_ON, loan.late_paid_on.map(day_text)),
    ];
    for (name, value) in texts {
        if let Some(v) = value {
            item.set(name, v);
        }
    }
    if let Some(a) = loan.last_paid_amount {
        item.set(attr::LAST_PAID_AMOUNT, a);
    }
    if let Some(day) = loan.expected_date {
        item.set(GSI1_PK, due_partition(day, shard_of(&loan.loan_id)));
        item.set(GSI1_SK, loan.loan_id.as_str());
    }
    item
}

fn req_s<'a>(item: &'a Item, name: &'static str) -> Result<&'a str, CorruptItem> {
    item.s(name).ok_or(CorruptItem { attribute: name })
}

fn opt_parse<T>(
    item: &Item,
    name: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, CorruptItem> {
    match item.s(name) {
        None => Ok(None),
        Some(text) => parse(text).map(Some).ok_or(CorruptItem { attribute: name }),
    }
}

pub fn loan_from_item(item: &Item) -> Result<LoanRecord, CorruptItem> {
    let n = |name: &'static str| item.n(name).ok_or(CorruptItem { attribute: name });
    let confidence_bp = (n(attr::CONFIDENCE)? * Decimal::from(10_000))
        .trunc()
        .to_string()
        .parse::<u32>()
        .map_err(|_| CorruptItem {
            attribute: attr::CONFIDENCE,
        })?;
    Ok(LoanRecord {
        loan_id: req_s(item, attr::LOAN_ID)?.to_owned(),
        borrower_id: Secret::new(req_s(item, attr::BORROWER_ID)?.to_owned()),
        employer_id: req_s(item, attr::EMPLOYER_ID)?.to_owned(),
        amount: n(attr::AMOUNT)?,
        currency: req_s(item, attr::CURRENCY)?
            .parse()
            .map_err(|_| CorruptItem {
                attribute: attr::CURRENCY,
            })?,
        tolerance: n(attr::TOLERANCE)?,
        declared_schedule: opt_parse(item, attr::DECLARED_SCHEDULE, |t| t.parse().ok())?,
        schedule: opt_parse(item, attr::SCHEDULE, |t| t.parse().ok())?,
        frequency: opt_parse(item, attr::FREQUENCY, |t| t.parse().ok())?,
        confidence: Confidence::from_bp(confidence_bp),
        status: LoanStatus::parse(req_s(item, attr::STATUS)?).ok_or(CorruptItem {
            attribute: attr::STATUS,
        })?,
        expected_date: opt_parse(item, attr::EXPECTED_DATE, parse_day)?,
        window_start: opt_parse(item, attr::WINDOW_START, parse_day)?,
        missed_on: opt_parse(item, attr::MISSED_ON, parse_day)?,
        missed_expected_date: opt_parse(item, attr::MISSED_EXPECTED_DATE, parse_day)?,
        last_paid_on: opt_parse(item, attr::LAST_PAID_ON, parse_day)?,
        last_paid_amount: item.n(attr::LAST_PAID_AMOUNT),
        late_paid_on: opt_parse(item, attr::LATE_PAID_ON, parse_day)?,
        created_at: req_s(item, attr::CREATED_AT)?.to_owned(),
        version: n(attr::VERSION)?
            .to_string()
            .parse()
            .map_err(|_| CorruptItem {
                attribute: attr::VERSION,
            })?,
    })
}

/// One payment of a borrower's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub date: NaiveDate,
    pub amount: Decimal,
    pub event_id: String,
    /// The loan it paid; `None` in items written before loan ids were kept (such an entry
    /// matches a failed/reversed event of any loan of its borrower).
    pub loan_id: Option<String>,
}

/// A failed or reversed payment event, as the history remembers it.
///
/// Which payment it undoes: a failed/reversed event is a new status of a payment and repeats
/// its fields (a new `event_id`, the same loan, amount and `paid_at`), so it undoes a payment
/// of the history with the same loan and amount paid on the event's UTC day (the newest, when
/// several are). Nothing looser: a failure of an attempt that was never recorded must not
/// take out the previous payroll's payment. When no such payment is in the history yet (the
/// change was delivered first), the undo stays *pending*: the first payment of that loan and
/// amount that arrives later, paid that day at or before the event's `paid_at`, is not added;
/// so a retry paid after a failure still counts. A reversal whose `paid_at` is the time of the
/// reversal rather than the payment's therefore matches only a payment of that same day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undo {
    /// The failed/reversed event.
    pub event_id: String,
    pub loan_id: String,
    pub amount: Decimal,
    /// The event's `paid_at`, canonical text (fixed width: sorts as time).
    pub paid_at: String,
    /// The paid event it took out; `None` while pending.
    pub paid_event_id: Option<String>,
}

impl Undo {
    fn day(&self) -> Option<NaiveDate> {
        self.paid_at.get(..10).and_then(parse_day)
    }
}

/// What [`History::undo`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoEffect {
    /// The payment taken out of the history.
    Removed(HistoryEntry),
    /// No payment matches yet: remembered as pending.
    Pending,
}

/// A borrower's history as stored: newest [`HISTORY_PAYMENTS_MAX`] payments in date order,
/// and the newest [`UNDONE_MAX`] failed/reversed events in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub entries: Vec<HistoryEntry>,
    pub undone: Vec<Undo>,
    /// 0 when the item does not exist yet.
    pub version: u64,
}

impl History {
    pub fn contains(&self, event_id: &str) -> bool {
        self.entries.iter().any(|e| e.event_id == event_id)
    }

    /// True when the event was handled already: a payment in the history, a failed/reversed
    /// event remembered, or a payment that one of those took out (or kept out).
    pub fn handled(&self, event_id: &str) -> bool {
        self.contains(event_id)
            || self
                .undone
                .iter()
                .any(|u| u.event_id == event_id || u.paid_event_id.as_deref() == Some(event_id))
    }

    /// Adds a payment in date order. Returns false (and changes nothing) when the history is
    /// full and the payment is older than all it keeps: it could not be told apart from a
    /// redelivery of a payment already dropped.
    pub fn insert(&mut self, entry: HistoryEntry) -> bool {
        let full = self.entries.len() >= HISTORY_PAYMENTS_MAX;
        if full && self.entries.first().is_some_and(|f| entry.date < f.date) {
            return false;
        }
        let at = self.entries.partition_point(|e| e.date <= entry.date);
        self.entries.insert(at, entry);
        if self.entries.len() > HISTORY_PAYMENTS_MAX {
            self.entries.remove(0);
        }
        true
    }

    /// Applies a failed/reversed event (`undo.paid_event_id` is ignored): takes its payment
    /// out of the history, or remembers it as pending. See [`Undo`] for the matching rule.
    pub fn undo(&mut self, mut undo: Undo) -> UndoEffect {
        let day = undo.day();
        let found = self.entries.iter().rposition(|e| {
            e.loan_id.as_deref().is_none_or(|l| l == undo.loan_id)
                && e.amount == undo.amount
                && day == Some(e.date)
        });
        let effect = match found {
            Some(i) => {
                let removed = self.entries.remove(i);
                undo.paid_event_id = Some(removed.event_id.clone());
                UndoEffect::Removed(removed)
            }
            None => {
                undo.paid_event_id = None;
                UndoEffect::Pending
            }
        };
        self.remember(undo);
        effect
    }

    /// For a payment arriving: the pending undo that keeps it out, if any, now marked as
    /// having taken it out. Its caller then leaves the payment out of the history.
    pub fn cancel_by_pending(
        &mut self,
        loan_id: &str,
        amount: Decimal,
        paid_at: &str,
        paid_event_id: &str,
    ) -> bool {
        let paid_day = paid_at.get(..10).and_then(parse_day);
        let pending = self.undone.iter_mut().find(|u| {
            u.paid_event_id.is_none()
                && u.loan_id == loan_id
                && u.amount == amount
                && paid_at <= u.paid_at.as_str()
                && paid_day.is_some()
                && paid_day == u.day()
        });
        match pending {
            Some(u) => {
                u.paid_event_id = Some(paid_event_id.to_owned());
                true
            }
            None => false,
        }
    }

    fn remember(&mut self, undo: Undo) {
        self.undone.push(undo);
        if self.undone.len() > UNDONE_MAX {
            self.undone.remove(0);
        }
    }

    pub fn dates(&self) -> Vec<NaiveDate> {
        self.entries.iter().map(|e| e.date).collect()
    }
}

pub fn history_item(borrower_id: &str, history: &History) -> Item {
    let payments: Vec<String> = history
        .entries
        .iter()
        .map(|e| match &e.loan_id {
            Some(loan) => format!("{} {} {} {loan}", day_text(e.date), e.amount, e.event_id),
            None => format!("{} {} {}", day_text(e.date), e.amount, e.event_id),
        })
        .collect();
    let mut item = Item::new(&history_key(borrower_id))
        .with(attr::PAYMENTS, payments.join(";"))
        .with(attr::VERSION, Decimal::from(history.version));
    if !history.undone.is_empty() {
        let undone: Vec<String> = history
            .undone
            .iter()
            .map(|u| {
                format!(
                    "{} {} {} {} {}",
                    u.event_id,
                    u.loan_id,
                    u.amount,
                    u.paid_at,
                    u.paid_event_id.as_deref().unwrap_or(NO_EVENT)
                )
            })
            .collect();
        item.set(attr::UNDONE, undone.join(";"));
    }
    item
}

/// In the `undone` attribute: a pending undo (no paid event taken out yet). Ids start with an
/// ASCII letter or digit, so no id is this.
const NO_EVENT: &str = "-";

pub fn history_from_item(item: &Item) -> Result<History, CorruptItem> {
    let corrupt = CorruptItem {
        attribute: attr::PAYMENTS,
    };
    let text = req_s(item, attr::PAYMENTS)?;
    let mut entries = Vec::new();
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let mut fields = part.split(' ');
        let (Some(date), Some(amount), Some(event_id), loan_id, None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(corrupt);
        };
        entries.push(HistoryEntry {
            date: parse_day(date).ok_or(corrupt.clone())?,
            amount: amount.parse().map_err(|_| corrupt.clone())?,
            event_id: event_id.to_owned(),
            loan_id: loan_id.map(str::to_owned),
        });
    }
    let undone = match item.s(attr::UNDONE) {
        None => Vec::new(),
        Some(text) => undone_from_text(text)?,
    };
    let version = item
        .n(attr::VERSION)
        .and_then(|v| v.to_string().parse().ok())
        .ok_or(CorruptItem {
            attribute: attr::VERSION,
        })?;
    Ok(History {
        entries,
        undone,
        version,
    })
}

fn undone_from_text(text: &str) -> Result<Vec<Undo>, CorruptItem> {
    let corrupt = CorruptItem {
        attribute: attr::UNDONE,
    };
    let mut undone = Vec::new();
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let mut fields = part.split(' ');
        let (Some(event_id), Some(loan_id), Some(amount), Some(paid_at), Some(paid), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(corrupt);
        };
        undone.push(Undo {
            event_id: event_id.to_owned(),
            loan_id: loan_id.to_owned(),
            amount: amount.parse().map_err(|_| corrupt.clone())?,
            paid_at: paid_at.to_owned(),
            paid_event_id: (paid != NO_EVENT).then(|| paid.to_owned()),
        });
    }
    Ok(undone)
}

/// A flag record (missed or late) as stored under `MISSEDON#`/`LATEON#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagRecord {
    pub loan_id: String,
    pub employer_id: String,
    pub expected_date: NaiveDate,
    pub amount: Decimal,
    pub currency: Currency,
    pub schedule: Option<String>,
    pub frequency: Option<String>,
    pub last_paid_on: Option<NaiveDate>,
    pub last_paid_amount: Option<Decimal>,
    /// Late records: when and how much was paid.
    pub paid_on: Option<NaiveDate>,
    pub paid_amount: Option<Decimal>,
    pub event_sent: bool,
}

pub fn flag_item(partition: String, flag: &FlagRecord) -> Item {
    let mut item = Item::new(&Key::new(
        partition,
        flag_sk(&flag.loan_id, flag.expected_date),
    ))
    .with(attr::LOAN_ID, flag.loan_id.as_str())
    .with(attr::EMPLOYER_ID, flag.employer_id.as_str())
    .with(attr::EXPECTED_DATE, day_text(flag.expected_date))
    .with(attr::AMOUNT, flag.amount)
    .with(attr::CURRENCY, flag.currency.as_str())
    .with(attr::EVENT_SENT, flag.event_sent);
    let texts = [
        (attr::SCHEDULE, flag.schedule.clone()),
        (attr::FREQUENCY, flag.frequency.clone()),
        (attr::LAST_PAID_ON, flag.last_paid_on.map(day_text)),
        (attr::PAID_ON, flag.paid_on.map(day_text)),
    ];
    for (name, value) in texts {
        if let Some(v) = value {
            item.set(name, v);
        }
    }
    for (name, value) in [
        (attr::LAST_PAID_AMOUNT, flag.last_paid_amount),
        (attr::PAID_AMOUNT, flag.paid_amount),
    ] {
        if let Some(v) = value {
            item.set(name, v);
        }
    }
    item
}

pub fn flag_from_item(item: &Item) -> Result<FlagRecord, CorruptItem> {
    let day = |name: &'static str| {
        req_s(item, name).and_then(|t| parse_day(t).ok_or(CorruptItem { attribute: name }))
    };
    Ok(FlagRecord {
        loan_id: req_s(item, attr::LOAN_ID)?.to_owned(),
        employer_id: req_s(item, attr::EMPLOYER_ID)?.to_owned(),
        expected_date: day(attr::EXPECTED_DATE)?,
        amount: item.n(attr::AMOUNT).ok_or(CorruptItem {
            attribute: attr::AMOUNT,
        })?,
        currency: req_s(item, attr::CURRENCY)?
            .parse()
            .map_err(|_| CorruptItem {
                attribute: attr::CURRENCY,
            })?,
        schedule: item.s(attr::SCHEDULE).map(str::to_owned),
        frequency: item.s(attr::FREQUENCY).map(str::to_owned),
        last_paid_on: opt_parse(item, attr::LAST_PAID_ON, parse_day)?,
        last_paid_amount: item.n(attr::LAST_PAID_AMOUNT),
        paid_on: opt_parse(item, attr::PAID_ON, parse_day)?,
        paid_amount: item.n(attr::PAID_AMOUNT),
        event_sent: matches!(item.get(attr::EVENT_SENT), Some(Value::Bool(true))),
    })
}
