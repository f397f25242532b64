//! The key design of the payment events table (`resources::PAYMENT_EVENTS_TABLE`):
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | one event | `EVENT#{event_id}` | `EVENT` | the event's fields, `stored_at`, `gsi1_pk = DAY#{date}`, `gsi1_sk = {paid_at}#{event_id}` |
//! | a day's total | `DAY#{date}` | `TOTAL#{currency}#{status}` | `currency`, `status`, `count`, `amount_total` |
//! | a day's duplicates | `DAY#{date}` | `DUPLICATES` | `count` |
//!
//! `{date}` is the UTC day of `paid_at`, `{paid_at}` its fixed-width canonical text, so `gsi1`
//! lists a day's events in time order and one query on `DAY#{date}` gives the day's totals.

use chrono::{DateTime, NaiveDate, Utc};
use payops_core::Currency;
use payops_core::payment_event::{self, FieldError, PaymentEvent, PaymentStatus, field};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::ports::{Condition, Item, Key, UpdateAction, Write};

/// The index that lists a day's events (`template.yaml` declares it).
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1_pk";
pub const GSI1_SK: &str = "gsi1_sk";
pub const EVENT_SK: &str = "EVENT";
pub const DUPLICATES_SK: &str = "DUPLICATES";
pub const COUNT: &str = "count";
pub const AMOUNT_TOTAL: &str = "amount_total";
pub const STORED_AT: &str = "stored_at";

/// Index of the event's Put in [`store_writes`]: its condition failing means a duplicate.
pub const EVENT_WRITE_INDEX: usize = 0;

pub fn event_key(event_id: &str) -> Key {
    Key::new(format!("EVENT#{event_id}"), EVENT_SK)
}

/// The partition of a day's aggregates, and the `gsi1` partition of its events.
pub fn day_partition(day: NaiveDate) -> String {
    format!("DAY#{}", day.format("%Y-%m-%d"))
}

pub fn total_sk(currency: Currency, status: PaymentStatus) -> String {
    format!("TOTAL#{currency}#{status}")
}

pub fn total_key(day: NaiveDate, currency: Currency, status: PaymentStatus) -> Key {
    Key::new(day_partition(day), total_sk(currency, status))
}

pub fn duplicates_key(day: NaiveDate) -> Key {
    Key::new(day_partition(day), DUPLICATES_SK)
}

/// Reads `TOTAL#{currency}#{status}` back; `None` for any other sort key.
pub fn parse_total_sk(sk: &str) -> Option<(Currency, PaymentStatus)> {
    let rest = sk.strip_prefix("TOTAL#")?;
    let (currency, status) = rest.split_once('#')?;
    Some((currency.parse().ok()?, status.parse().ok()?))
}

/// The stored item of an event.
pub fn event_item(event: &PaymentEvent, stored_at: DateTime<Utc>) -> Item {
    let paid_at = event.paid_at_text();
    Item::new(&event_key(event.event_id.as_str()))
        .with(field::EVENT_ID, event.event_id.as_str())
        .with(field::LOAN_ID, event.loan_id.as_str())
        .with(field::BORROWER_ID, event.borrower_id.expose())
        .with(field::EMPLOYER_ID, event.employer_id.as_str())
        .with(field::AMOUNT, event.amount.amount())
        .with(field::CURRENCY, event.amount.currency().as_str())
        .with(field::STATUS, event.status.as_str())
        .with(field::PAID_AT, paid_at.as_str())
        .with(STORED_AT, payment_event::format_paid_at(&stored_at))
        .with(GSI1_PK, day_partition(event.day()))
        .with(GSI1_SK, format!("{paid_at}#{}", event.event_id))
}

/// Reads an event item back, with the same validation as a webhook body (a stored item that
/// fails it was not written by this code).
pub fn event_from_item(item: &Item) -> Result<PaymentEvent, FieldError> {
    let mut object = Map::new();
    for name in [
        field::EVENT_ID,
        field::LOAN_ID,
        field::BORROWER_ID,
        field::EMPLOYER_ID,
        field::CURRENCY,
        field::STATUS,
        field::PAID_AT,
    ] {
        if let Some(text) = item.s(name) {
            object.insert(name.to_owned(), Value::from(text));
        }
    }
    if let Some(amount) = item.n(field::AMOUNT) {
        object.insert(field::AMOUNT.to_owned(), Value::from(amount.to_string()));
    }
    payment_event::parse_event_json(&Value::Object(object))
}

/// The one transaction that stores an event: the event itself, only if new (write
/// [`EVENT_WRITE_INDEX`]), and its day's total for its currency and status. All or nothing, so
/// a redelivered message can never count twice.
pub fn store_writes(event: &PaymentEvent, stored_at: DateTime<Utc>) -> Vec<Write> {
    let currency = event.amount.currency();
    vec![
        Write::Put {
            item: event_item(event, stored_at),
            condition: Some(Condition::ItemNotExists),
        },
        Write::Update {
            key: total_key(event.day(), currency, event.status),
            actions: vec![
                UpdateAction::set(field::CURRENCY, currency.as_str()),
                UpdateAction::set(field::STATUS, event.status.as_str()),
                UpdateAction::add(COUNT, Decimal::ONE),
                UpdateAction::add(AMOUNT_TOTAL, event.amount.amount()),
            ],
            condition: None,
        },
    ]
}

/// Counts one ignored redelivery (applied to [`duplicates_key`] of the event's day).
pub fn duplicate_actions() -> Vec<UpdateAction> {
    vec![UpdateAction::add(COUNT, Decimal::ONE)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event() -> PaymentEvent {
        payment_event::parse_webhook_body(
            br#"{"event_id":"evt_1","loan_id":"loan_1","borrower_id":"b_1","employer_id":"emp_1",
                "amount":"10.5","currency":"BRL","status":"reversed","paid_at":"2025-01-31T23:59:59.25-00:00"}"#,
        )
        .expect("a valid sample body")
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let e = event();
        let stored_at = Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 1).unwrap();
        let item = event_item(&e, stored_at);
        assert_eq!(item.key(), Some(Key::new("EVENT#evt_1", "EVENT")));
        assert_eq!(item.s(GSI1_PK), Some("DAY#2025-01-31"));
        assert_eq!(
            item.s(GSI1_SK),
            Some("2025-01-31T23:59:59.250000000Z#evt_1")
        );
        assert_eq!(item.n(field::AMOUNT), Some(Decimal::new(1050, 2)));
        assert_eq!(item.s(STORED_AT), Some("2025-02-01T00:00:01.000000000Z"));
        let day = e.day();
        assert_eq!(
            total_key(day, Currency::BRL, PaymentStatus::Reversed),
            Key::new("DAY#2025-01-31", "TOTAL#BRL#reversed")
        );
        assert_eq!(
            duplicates_key(day),
            Key::new("DAY#2025-01-31", "DUPLICATES")
        );
    }

    #[test]
    fn an_item_reads_back_to_the_same_event() {
        let e = event();
        let item = event_from_item(&event_item(&e, Utc::now())).unwrap();
        assert_eq!(item, e);
        let mut broken = event_item(&e, Utc::now());
        broken.0.remove(field::STATUS);
        assert_eq!(event_from_item(&broken).unwrap_err().field, field::STATUS);
    }

    #[test]
    fn the_event_put_is_the_conditional_write() {
        let writes = store_writes(&event(), Utc::now());
        assert!(matches!(
            &writes[EVENT_WRITE_INDEX],
            Write::Put {
                condition: Some(Condition::ItemNotExists),
                ..
            }
        ));
        assert_eq!(writes.len(), 2);
    }

    #[test]
    fn total_sort_keys_parse_back() {
        let sk = total_sk(Currency::USD, PaymentStatus::Failed);
        assert_eq!(
            parse_total_sk(&sk),
            Some((Currency::USD, PaymentStatus::Failed))
        );
        assert_eq!(parse_total_sk(DUPLICATES_SK), None);
        assert_eq!(parse_total_sk("TOTAL#usd#paid"), None);
        assert_eq!(parse_total_sk("TOTAL#USD#pending"), None);
    }
}
