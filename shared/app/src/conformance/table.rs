//! Conformance cases of the `Table` port (DynamoDB semantics).

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use futures::FutureExt;

use super::{Harness, dec, run_writes};
use crate::ports::table::{BATCH_GET_KEYS_MAX, QUERY_PAGE_ITEMS_MAX, TRANSACTION_WRITES_MAX};
use crate::ports::{
    Condition, Cursor, Item, Key, Query, SortKeyRange, Table, TableError, UpdateAction, Value,
    Write,
};

/// Writers racing for one key in `table_conditional_put_race`.
const RACE_WRITERS: usize = 16;
/// Retries of a transaction cancelled by a conflict (DynamoDB's TransactionConflict).
const CONFLICT_RETRIES_MAX: usize = 50;

fn key(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

fn item(pk: &str, sk: &str) -> Item {
    Item::new(&key(pk, sk))
}

fn sort_keys(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| i.s("sk").unwrap_or("<no sk>").to_owned())
        .collect()
}

async fn get(t: &dyn Table, k: &Key) -> Option<Item> {
    t.get(k)
        .await
        .unwrap_or_else(|e| panic!("get {k:?} failed: {e}"))
}

async fn put(t: &dyn Table, i: Item) {
    let k = i.key();
    t.put(i, None)
        .await
        .unwrap_or_else(|e| panic!("put {k:?} failed: {e}"));
}

async fn query_all(t: &dyn Table, query: Query) -> Vec<Item> {
    t.query(query.clone())
        .await
        .unwrap_or_else(|e| panic!("query {query:?} failed: {e}"))
        .items
}

/// Every page of `query`, following cursors; checks that no page exceeds the limit.
async fn query_pages(t: &dyn Table, query: Query) -> Vec<Vec<Item>> {
    let mut pages = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = t
            .query(query.clone().after(cursor.clone()))
            .await
            .unwrap_or_else(|e| panic!("query page after {cursor:?} failed: {e}"));
        assert!(
            page.items.len() <= query.limit,
            "a page has {} items, more than the limit {}",
            page.items.len(),
            query.limit
        );
        pages.push(page.items);
        assert!(pages.len() <= 1000, "pagination does not end");
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
    }
}

fn is_condition_failed(r: &Result<impl std::fmt::Debug, TableError>) -> bool {
    matches!(r, Err(TableError::ConditionFailed))
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, TableError>, what: &str) {
    assert!(
        matches!(r, Err(TableError::Invalid(_))),
        "{what}: expected Invalid, got {r:?}"
    );
}

/// An item with every `Value` type, nested, and numbers that floats cannot hold exactly.
fn every_value_type_item(k: &Key) -> Item {
    let mut inner = BTreeMap::new();
    inner.insert("rate".to_owned(), Value::N(dec("0.0125")));
    inner.insert("tags".to_owned(), Value::L(vec!["a".into(), "b".into()]));
    inner.insert("none".to_owned(), Value::Null);
    Item::new(k)
        .with("name", "Ana Souza — relatório ção 日本")
        .with("small", dec("0.10"))
        .with("big", dec("12345678901234.56"))
        .with("huge", dec("1234567890123456789.01"))
        .with("negative", dec("-0.01"))
        .with("zero", Decimal::ZERO)
        .with("integer", 42_i64)
        .with("yes", true)
        .with("no", false)
        .with("nothing", Value::Null)
        .with("bytes", Value::B(vec![0, 1, 2, 254, 255]))
        .with(
            "list",
            Value::L(vec![
                Value::S("x".into()),
                Value::N(dec("1.5")),
                Value::Bool(true),
                Value::Null,
                Value::M(inner.clone()),
            ]),
        )
        .with("map", Value::M(inner))
        .with("amount-due", dec("99.99"))
}

/// put, get, update, delete round trips keep every value type and exact decimals.
/// (Numbers compare by value: DynamoDB may return `0.1` for `0.10`.)
pub async fn table_round_trip_every_value_type(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let k = key("ROUND#1", "TRIP");
    let original = every_value_type_item(&k);
    put(&*t, original.clone()).await;
    assert_eq!(get(&*t, &k).await, Some(original.clone()), "get after put");
    assert_eq!(get(&*t, &key("ROUND#1", "OTHER")).await, None);
    assert_eq!(get(&*t, &key("ROUND#2", "TRIP")).await, None);

    // An update returns every attribute, the untouched ones exactly as they were.
    let after = t
        .update(
            &k,
            vec![UpdateAction::add("big", dec("0.01"))],
            Some(Condition::eq("small", dec("0.1"))),
        )
        .await
        .expect("update of an item with every value type");
    let mut expected = original.clone();
    expected.set("big", dec("12345678901234.57"));
    assert_eq!(after, expected, "update returns ALL_NEW");
    assert_eq!(get(&*t, &k).await, Some(expected.clone()));

    // A put replaces the whole item.
    let replacement = Item::new(&k).with("only", "this");
    put(&*t, replacement.clone()).await;
    assert_eq!(get(&*t, &k).await, Some(replacement.clone()));

    let deleted = t.delete(&k, None).await.expect("delete");
    assert_eq!(deleted, Some(replacement), "delete returns the old item");
    assert_eq!(get(&*t, &k).await, None);
    let again = t.delete(&k, None).await.expect("delete of a missing item");
    assert_eq!(again, None);
}

/// N writers put the same key with `ItemNotExists` at once: exactly one wins.
pub async fn table_conditional_put_race(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let k = key("RACE", "KEY");
    let writes = (0..RACE_WRITERS)
        .map(|writer| {
            let t = Arc::clone(&t);
            let it = Item::new(&k).with("writer", writer as i64);
            async move { t.put(it, Some(Condition::ItemNotExists)).await }.boxed()
        })
        .collect();
    let mut winners = Vec::new();
    for (writer, outcome) in run_writes(h, writes).await.into_iter().enumerate() {
        match outcome {
            Ok(()) => winners.push(writer),
            Err(TableError::ConditionFailed) => {}
            Err(e) => panic!("writer {writer}: expected Ok or ConditionFailed, got {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let stored = get(&*t, &k).await.expect("the winner's item");
    assert_eq!(stored.n("writer"), Some(Decimal::from(winners[0] as i64)));
}

/// Conditions on put and delete: a false condition writes nothing.
pub async fn table_put_and_delete_conditions(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let k = key("COND", "PUT");
    let first = Item::new(&k).with("version", 1_i64);
    assert!(is_condition_failed(
        &t.put(first.clone(), Some(Condition::ItemExists)).await
    ));
    assert_eq!(get(&*t, &k).await, None, "a failed put writes nothing");
    t.put(first.clone(), Some(Condition::ItemNotExists))
        .await
        .expect("first put");
    assert!(is_condition_failed(
        &t.put(
            Item::new(&k).with("version", 9_i64),
            Some(Condition::ItemNotExists)
        )
        .await
    ));
    // Optimistic concurrency: replace only the version that was read.
    let second = Item::new(&k).with("version", 2_i64);
    assert!(is_condition_failed(
        &t.put(second.clone(), Some(Condition::eq("version", 0_i64)))
            .await
    ));
    t.put(second.clone(), Some(Condition::eq("version", 1_i64)))
        .await
        .expect("versioned put");
    assert_eq!(get(&*t, &k).await, Some(second.clone()));

    assert!(is_condition_failed(
        &t.delete(&k, Some(Condition::eq("version", 1_i64))).await
    ));
    assert_eq!(
        get(&*t, &k).await,
        Some(second.clone()),
        "a failed delete keeps the item"
    );
    let deleted = t
        .delete(&k, Some(Condition::eq("version", 2_i64)))
        .await
        .expect("conditional delete");
    assert_eq!(deleted, Some(second));
    assert!(is_condition_failed(
        &t.delete(&k, Some(Condition::ItemExists)).await
    ));
}

/// Update creates a missing item (key attributes included) and returns it as it is after.
pub async fn table_update_returns_all_new_and_creates_missing_item(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let k = key("ACCOUNT#1", "BALANCE");
    let created = t
        .update(
            &k,
            vec![
                UpdateAction::set("currency", "BRL"),
                UpdateAction::add("balance", dec("10.10")),
            ],
            None,
        )
        .await
        .expect("update of a missing item creates it");
    let expected = Item::new(&k)
        .with("currency", "BRL")
        .with("balance", dec("10.10"));
    assert_eq!(created, expected);
    assert_eq!(get(&*t, &k).await, Some(expected));

    let after = t
        .update(
            &k,
            vec![UpdateAction::add("balance", dec("0.20"))],
            Some(Condition::ItemExists),
        )
        .await
        .expect("second update");
    assert_eq!(after.n("balance"), Some(dec("10.30")));
    assert_eq!(after.s("currency"), Some("BRL"));
    assert_eq!(after.s("pk"), Some("ACCOUNT#1"));
    assert_eq!(after.s("sk"), Some("BALANCE"));

    // A failed condition creates nothing.
    let missing = key("ACCOUNT#2", "BALANCE");
    assert!(is_condition_failed(
        &t.update(
            &missing,
            vec![UpdateAction::add("balance", 1_i64)],
            Some(Condition::ItemExists)
        )
        .await
    ));
    assert_eq!(get(&*t, &missing).await, None);
}

/// Set, SetIfNotExists, Add (on a missing attribute too), Remove.
pub async fn table_update_actions(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let k = key("UPD", "ACTIONS");
    put(
        &*t,
        Item::new(&k)
            .with("status", "NEW")
            .with("created_at", "2024-01-01T00:00:00Z")
            .with("count", 1_i64)
            .with("note", "temporary"),
    )
    .await;
    let after = t
        .update(
            &k,
            vec![
                UpdateAction::set("status", "PAID"),
                UpdateAction::set_if_not_exists("created_at", "2099-12-31T00:00:00Z"),
                UpdateAction::set_if_not_exists("first_paid_at", "2024-02-02T00:00:00Z"),
                UpdateAction::add("count", 2_i64),
                UpdateAction::add("total", dec("0.10")),
                UpdateAction::remove("note"),
                UpdateAction::remove("never_there"),
                UpdateAction::set(
                    "meta",
                    Value::M(BTreeMap::from([("k".to_owned(), Value::N(dec("1.5")))])),
                ),
            ],
            None,
        )
        .await
        .expect("update with every action");
    let expected = Item::new(&k)
        .with("status", "PAID")
        .with("created_at", "2024-01-01T00:00:00Z")
        .with("first_paid_at", "2024-02-02T00:00:00Z")
        .with("count", 3_i64)
        .with("total", dec("0.10"))
        .with(
            "meta",
            Value::M(BTreeMap::from([("k".to_owned(), Value::N(dec("1.5")))])),
        );
    assert_eq!(after, expected);
    assert_eq!(get(&*t, &k).await, Some(expected));

    // Negative adds and decimals stay exact.
    let after = t
        .update(&k, vec![UpdateAction::add("total", dec("-0.30"))], None)
        .await
        .expect("negative add");
    assert_eq!(after.n("total"), Some(dec("-0.20")));
}

/// Every `Condition` variant, true and false, on an existing and on a missing item.
pub async fn table_every_condition_variant(h: &dyn Harness) {
    use Condition as C;
    let t = h.table(&[]).await;
    let k = key("COND", "ITEM");
    put(
        &*t,
        Item::new(&k)
            .with("n", 5_i64)
            .with("s", "mango")
            .with("flag", true),
    )
    .await;
    let yes = || C::exists("n");
    let no = || C::exists("missing");
    let on_existing: Vec<(Condition, bool)> = vec![
        (C::ItemExists, true),
        (C::ItemNotExists, false),
        (C::exists("n"), true),
        (C::exists("missing"), false),
        (C::not_exists("missing"), true),
        (C::not_exists("s"), false),
        (C::eq("n", 5_i64), true),
        (C::eq("n", dec("5.00")), true),
        (C::eq("n", 6_i64), false),
        (C::eq("s", "mango"), true),
        (C::eq("s", "Mango"), false),
        (C::eq("flag", true), true),
        (C::eq("flag", false), false),
        (C::eq("missing", 1_i64), false),
        (C::ne("n", 6_i64), true),
        (C::ne("n", 5_i64), false),
        // DynamoDB: `a <> :v` is true when `a` is missing.
        (C::ne("missing", 1_i64), true),
        (C::lt("n", 6_i64), true),
        (C::lt("n", 5_i64), false),
        (C::lt("n", dec("5.01")), true),
        (C::le("n", 5_i64), true),
        (C::le("n", dec("4.99")), false),
        (C::gt("n", 4_i64), true),
        (C::gt("n", 5_i64), false),
        (C::ge("n", 5_i64), true),
        (C::ge("n", 6_i64), false),
        (C::lt("n", dec("-1")), false),
        // Strings compare by UTF-8 bytes: upper case sorts before lower case.
        (C::lt("s", "z"), true),
        (C::gt("s", "apple"), true),
        (C::lt("s", "MANGO"), false),
        (C::le("s", "mango"), true),
        (C::ge("s", "mangoes"), false),
        (C::lt("missing", 1_i64), false),
        (C::ge("missing", 1_i64), false),
        (C::And(vec![yes(), yes()]), true),
        (C::And(vec![yes(), no()]), false),
        (C::Or(vec![no(), yes()]), true),
        (C::Or(vec![no(), no()]), false),
        (C::Not(Box::new(no())), true),
        (C::Not(Box::new(yes())), false),
        (
            C::And(vec![
                C::Or(vec![C::eq("s", "kiwi"), C::ge("n", 5_i64)]),
                C::Not(Box::new(C::ItemNotExists)),
            ]),
            true,
        ),
    ];
    let mut trues = 0_i64;
    for (condition, expected) in on_existing {
        let r = t
            .update(
                &k,
                vec![UpdateAction::add("probes", 1_i64)],
                Some(condition.clone()),
            )
            .await;
        match (expected, &r) {
            (true, Ok(_)) => trues += 1,
            (false, Err(TableError::ConditionFailed)) => {}
            _ => panic!("{condition:?} on an existing item: expected {expected}, got {r:?}"),
        }
    }
    let stored = get(&*t, &k).await.expect("probed item");
    assert_eq!(stored.n("probes"), Some(Decimal::from(trues)));

    // On a missing item, a conditional delete writes nothing either way.
    let missing = key("COND", "MISSING");
    let on_missing: Vec<(Condition, bool)> = vec![
        (C::ItemNotExists, true),
        (C::ItemExists, false),
        (C::not_exists("n"), true),
        (C::exists("n"), false),
        (C::eq("n", 5_i64), false),
        (C::ne("n", 5_i64), true),
        (C::lt("n", 5_i64), false),
        (C::Not(Box::new(C::ItemExists)), true),
    ];
    for (condition, expected) in on_missing {
        let r = t.delete(&missing, Some(condition.clone())).await;
        match (expected, &r) {
            (true, Ok(None)) => {}
            (false, Err(TableError::ConditionFailed)) => {}
            _ => panic!("{condition:?} on a missing item: expected {expected}, got {r:?}"),
        }
    }
    assert_eq!(get(&*t, &missing).await, None);
}

/// One false condition cancels every write of the transaction and is reported by index.
pub async fn table_transaction_failing_condition_cancels_every_write(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let (a, b, c, d, e) = (
        key("ACC#A", "BAL"),
        key("ACC#B", "BAL"),
        key("LEDGER", "E#1"),
        key("TMP", "D"),
        key("BATCH", "E"),
    );
    put(&*t, Item::new(&a).with("balance", dec("10.00"))).await;
    put(&*t, Item::new(&b).with("balance", dec("0.00"))).await;
    put(&*t, Item::new(&d).with("x", 1_i64)).await;
    put(&*t, Item::new(&e).with("status", "open")).await;
    let writes = vec![
        Write::Update {
            key: a.clone(),
            actions: vec![UpdateAction::add("balance", dec("-5.00"))],
            condition: Some(Condition::ge("balance", dec("5.00"))),
        },
        Write::Update {
            key: b.clone(),
            actions: vec![UpdateAction::add("balance", dec("5.00"))],
            condition: None,
        },
        Write::Put {
            item: Item::new(&c).with("amount", dec("5.00")),
            condition: Some(Condition::ItemNotExists),
        },
        Write::ConditionCheck {
            key: e.clone(),
            condition: Condition::eq("status", "closed"),
        },
        Write::Delete {
            key: d.clone(),
            condition: None,
        },
    ];
    let r = t.transact(writes).await;
    let err = r.expect_err("a transaction with a false condition fails");
    assert!(
        matches!(err, TableError::TransactionCanceled { .. }),
        "expected TransactionCanceled, got {err:?}"
    );
    assert!(err.failed_condition_at(3), "write 3 failed: {err:?}");
    for ok in [0, 1, 2, 4] {
        assert!(!err.failed_condition_at(ok), "write {ok} passed: {err:?}");
    }
    assert!(!err.is_retryable());
    assert_eq!(
        get(&*t, &a).await.and_then(|i| i.n("balance")),
        Some(dec("10"))
    );
    assert_eq!(
        get(&*t, &b).await.and_then(|i| i.n("balance")),
        Some(dec("0"))
    );
    assert_eq!(get(&*t, &c).await, None);
    assert!(get(&*t, &d).await.is_some(), "the delete was cancelled");

    // Two false conditions are both reported.
    let err = t
        .transact(vec![
            Write::Put {
                item: Item::new(&a),
                condition: Some(Condition::ItemNotExists),
            },
            Write::Update {
                key: b.clone(),
                actions: vec![UpdateAction::set("x", 1_i64)],
                condition: Some(Condition::eq("balance", 12345_i64)),
            },
            Write::ConditionCheck {
                key: e.clone(),
                condition: Condition::eq("status", "open"),
            },
        ])
        .await
        .expect_err("two false conditions");
    assert!(err.failed_condition_at(0) && err.failed_condition_at(1));
    assert!(!err.failed_condition_at(2));
    assert_eq!(get(&*t, &b).await.and_then(|i| i.n("x")), None);
}

/// A transaction whose conditions hold applies Put, Update, Delete and ConditionCheck.
pub async fn table_transaction_applies_every_write_kind(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let (a, b, c, d, e) = (
        key("ACC#A", "BAL"),
        key("ACC#B", "BAL"),
        key("LEDGER", "E#1"),
        key("TMP", "D"),
        key("BATCH", "E"),
    );
    put(&*t, Item::new(&a).with("balance", dec("10.00"))).await;
    put(&*t, Item::new(&d).with("x", 1_i64)).await;
    put(&*t, Item::new(&e).with("status", "open")).await;
    t.transact(vec![
        Write::Update {
            key: a.clone(),
            actions: vec![UpdateAction::add("balance", dec("-2.50"))],
            condition: Some(Condition::ge("balance", dec("2.50"))),
        },
        // Creates the missing item, as UpdateItem does.
        Write::Update {
            key: b.clone(),
            actions: vec![UpdateAction::add("balance", dec("2.50"))],
            condition: None,
        },
        Write::Put {
            item: Item::new(&c).with("amount", dec("2.50")),
            condition: Some(Condition::ItemNotExists),
        },
        Write::ConditionCheck {
            key: e.clone(),
            condition: Condition::eq("status", "open"),
        },
        Write::Delete {
            key: d.clone(),
            condition: Some(Condition::ItemExists),
        },
    ])
    .await
    .expect("a transaction whose conditions hold");
    assert_eq!(
        get(&*t, &a).await.and_then(|i| i.n("balance")),
        Some(dec("7.50"))
    );
    assert_eq!(
        get(&*t, &b).await,
        Some(Item::new(&b).with("balance", dec("2.50")))
    );
    assert_eq!(
        get(&*t, &c).await,
        Some(Item::new(&c).with("amount", dec("2.50")))
    );
    assert_eq!(get(&*t, &d).await, None);
    assert_eq!(
        get(&*t, &e).await,
        Some(Item::new(&e).with("status", "open"))
    );
}

/// At most TRANSACTION_WRITES_MAX writes, on distinct items; otherwise Invalid, nothing written.
pub async fn table_transaction_limits(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let puts = |n: usize, partition: &str| -> Vec<Write> {
        (0..n)
            .map(|i| Write::Put {
                item: item(partition, &format!("{i:04}")),
                condition: None,
            })
            .collect()
    };
    t.transact(puts(TRANSACTION_WRITES_MAX, "MAX"))
        .await
        .expect("a transaction of exactly TRANSACTION_WRITES_MAX writes");
    assert_eq!(
        query_all(&*t, Query::partition("MAX")).await.len(),
        TRANSACTION_WRITES_MAX
    );

    assert_invalid(
        t.transact(puts(TRANSACTION_WRITES_MAX + 1, "OVER")).await,
        "a transaction over TRANSACTION_WRITES_MAX writes",
    );
    assert!(query_all(&*t, Query::partition("OVER")).await.is_empty());

    let k = key("SAME", "ITEM");
    assert_invalid(
        t.transact(vec![
            Write::Put {
                item: Item::new(&k),
                condition: None,
            },
            Write::Update {
                key: k.clone(),
                actions: vec![UpdateAction::add("n", 1_i64)],
                condition: None,
            },
        ])
        .await,
        "two writes on one item",
    );
    assert_eq!(get(&*t, &k).await, None);
}

/// Concurrent conditional debits: the balance never goes below zero and exactly as many
/// debits succeed as the balance allowed.
pub async fn table_concurrent_debits_never_overdraw(h: &dyn Harness) {
    const DEBITS: usize = 30;
    let t = h.table(&[]).await;
    let k = key("ACCOUNT#DEBIT", "BALANCE");
    let (opening, debit) = (dec("100.00"), dec("7.00"));
    put(&*t, Item::new(&k).with("balance", opening)).await;
    let writes = (0..DEBITS)
        .map(|_| {
            let (t, k) = (Arc::clone(&t), k.clone());
            async move {
                t.update(
                    &k,
                    vec![UpdateAction::add("balance", -debit)],
                    Some(Condition::ge("balance", debit)),
                )
                .await
            }
            .boxed()
        })
        .collect();
    let mut successes = 0_usize;
    for outcome in run_writes(h, writes).await {
        match outcome {
            Ok(after) => {
                let balance = after.n("balance").expect("balance after a debit");
                assert!(balance >= Decimal::ZERO, "overdrawn: {balance}");
                successes += 1;
            }
            Err(TableError::ConditionFailed) => {}
            Err(e) => panic!("a debit failed with {e}, not ConditionFailed"),
        }
    }
    assert_eq!(successes, 14, "100.00 allows exactly 14 debits of 7.00");
    assert_eq!(
        get(&*t, &k).await.and_then(|i| i.n("balance")),
        Some(dec("2.00"))
    );
}

/// Concurrent two-write transactions (debit + ledger entry), retried while retryable.
pub async fn table_concurrent_transactional_debits_never_overdraw(h: &dyn Harness) {
    const DEBITS: usize = 12;
    let t = h.table(&[]).await;
    let account = key("ACCOUNT#TX", "BALANCE");
    let debit = dec("10.00");
    put(&*t, Item::new(&account).with("balance", dec("50.00"))).await;
    let writes = (0..DEBITS)
        .map(|i| {
            let (t, account) = (Arc::clone(&t), account.clone());
            async move {
                let writes = vec![
                    Write::Update {
                        key: account,
                        actions: vec![UpdateAction::add("balance", -debit)],
                        condition: Some(Condition::ge("balance", debit)),
                    },
                    Write::Put {
                        item: item("LEDGER#TX", &format!("ENTRY#{i:03}")).with("amount", -debit),
                        condition: Some(Condition::ItemNotExists),
                    },
                ];
                for _ in 0..CONFLICT_RETRIES_MAX {
                    match t.transact(writes.clone()).await {
                        Err(e) if e.is_retryable() => continue,
                        other => return other,
                    }
                }
                panic!("transaction {i} still conflicting after {CONFLICT_RETRIES_MAX} tries")
            }
            .boxed()
        })
        .collect();
    let mut successes = 0_usize;
    for outcome in run_writes(h, writes).await {
        match outcome {
            Ok(()) => successes += 1,
            Err(e) if e.failed_condition_at(0) && !e.failed_condition_at(1) => {}
            Err(e) => panic!("expected the balance condition to fail, got {e:?}"),
        }
    }
    assert_eq!(successes, 5, "50.00 allows exactly 5 debits of 10.00");
    assert_eq!(
        get(&*t, &account).await.and_then(|i| i.n("balance")),
        Some(Decimal::ZERO)
    );
    assert_eq!(query_all(&*t, Query::partition("LEDGER#TX")).await.len(), 5);
}

/// Every `SortKeyRange`, both directions, in UTF-8 byte order, within one partition only.
pub async fn table_query_sort_key_ranges(h: &dyn Harness) {
    let t = h.table(&[]).await;
    let sks = [
        "2024-01-01#001",
        "2024-01-01#002",
        "2024-01-02#001",
        "2024-01-10#001",
        "2024-02-01#001",
        "A",
        "Z",
        "a",
        "z",
        "é",
        "日本",
    ];
    for sk in sks {
        put(&*t, item("P", sk).with("v", sk)).await;
        // Neighbouring partitions that a sloppy prefix match would leak.
        put(&*t, item("P2", sk)).await;
        put(&*t, item("Q", sk)).await;
    }
    let mut all: Vec<String> = sks.iter().map(|s| (*s).to_owned()).collect();
    all.sort(); // Rust orders strings by UTF-8 bytes, as DynamoDB does.
    let select = |f: &dyn Fn(&str) -> bool| -> Vec<String> {
        all.iter().filter(|s| f(s)).cloned().collect()
    };
    let cases: Vec<(SortKeyRange, Vec<String>)> = vec![
        (SortKeyRange::All, all.clone()),
        (
            SortKeyRange::Eq("2024-01-02#001".into()),
            select(&|s| s == "2024-01-02#001"),
        ),
        (SortKeyRange::Eq("2024-01-02".into()), vec![]),
        (
            SortKeyRange::BeginsWith("2024-01-0".into()),
            select(&|s| s.starts_with("2024-01-0")),
        ),
        (
            SortKeyRange::BeginsWith("é".into()),
            select(&|s| s.starts_with('é')),
        ),
        (SortKeyRange::BeginsWith("nothing".into()), vec![]),
        (
            SortKeyRange::Between("2024-01-01#002".into(), "2024-01-10#001".into()),
            select(&|s| ("2024-01-01#002"..="2024-01-10#001").contains(&s)),
        ),
        (SortKeyRange::Lt("A".into()), select(&|s| s < "A")),
        (SortKeyRange::Le("A".into()), select(&|s| s <= "A")),
        (SortKeyRange::Gt("z".into()), select(&|s| s > "z")),
        (SortKeyRange::Ge("z".into()), select(&|s| s >= "z")),
        (SortKeyRange::Lt("a".into()), select(&|s| s < "a")),
    ];
    for (range, expected) in cases {
        let forward = query_all(&*t, Query::partition("P").sort(range.clone())).await;
        assert_eq!(sort_keys(&forward), expected, "{range:?} forward");
        let backward = query_all(&*t, Query::partition("P").sort(range.clone()).backward()).await;
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(sort_keys(&backward), reversed, "{range:?} backward");
        for it in forward {
            assert_eq!(it.s("pk"), Some("P"));
            assert_eq!(it.s("v"), it.s("sk"), "query returns whole items");
        }
    }
    assert!(query_all(&*t, Query::partition("NOPE")).await.is_empty());
}

/// Pagination with cursors over more items than a page, forward and backward, with a range.
pub async fn table_query_pagination_forward_and_backward(h: &dyn Harness) {
    const ITEMS: usize = 25;
    const PAGE: usize = 7;
    let t = h.table(&[]).await;
    let mut all = Vec::new();
    for i in 0..ITEMS {
        let sk = format!("item#{i:02}");
        put(&*t, item("PAGED", &sk)).await;
        all.push(sk);
    }
    put(&*t, item("PAGED2", "item#00")).await;

    let pages = query_pages(&*t, Query::partition("PAGED").limit(PAGE)).await;
    let non_empty = pages.iter().filter(|p| !p.is_empty()).count();
    assert_eq!(non_empty, ITEMS.div_ceil(PAGE), "pages: {pages:?}");
    assert_eq!(sort_keys(&pages.concat()), all, "forward pages in order");

    let pages = query_pages(&*t, Query::partition("PAGED").limit(PAGE).backward()).await;
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(
        sort_keys(&pages.concat()),
        reversed,
        "backward pages in order"
    );

    let pages = query_pages(
        &*t,
        Query::partition("PAGED")
            .sort(SortKeyRange::BeginsWith("item#1".into()))
            .limit(3),
    )
    .await;
    let expected: Vec<String> = all
        .iter()
        .filter(|s| s.starts_with("item#1"))
        .cloned()
        .collect();
    assert!(pages.len() >= 4, "10 items in pages of 3: {pages:?}");
    assert_eq!(sort_keys(&pages.concat()), expected);

    // An exact fit: a page exactly as long as what is left may still carry a cursor
    // (DynamoDB does); following it yields nothing more.
    let pages = query_pages(&*t, Query::partition("PAGED").limit(ITEMS)).await;
    assert_eq!(sort_keys(&pages.concat()), all);
}

fn indexed(pk: &str, gsi_pk: Option<&str>, gsi_sk: Option<&str>) -> Item {
    let mut it = item(pk, "ROW").with("amount", dec("1.10"));
    if let Some(v) = gsi_pk {
        it.set("gsi1_pk", v);
    }
    if let Some(v) = gsi_sk {
        it.set("gsi1_sk", v);
    }
    it
}

fn table_keys(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| i.s("pk").unwrap_or("<no pk>").to_owned())
        .collect()
}

/// A secondary index holds only items with both index attributes, ordered by the index sort
/// key, and follows every kind of write.
pub async fn table_secondary_index_is_sparse_and_ordered(h: &dyn Harness) {
    let t = h.table(&["gsi1"]).await;
    put(&*t, indexed("U1", Some("DAY#1"), Some("10:00#U1"))).await;
    put(&*t, indexed("U2", Some("DAY#1"), Some("09:00#U2"))).await;
    put(&*t, indexed("U3", Some("DAY#1"), None)).await;
    put(&*t, indexed("U4", None, None)).await;
    put(&*t, indexed("U5", Some("DAY#2"), Some("08:00#U5"))).await;
    put(&*t, indexed("U6", Some("DAY#1"), Some("11:00#U6"))).await;
    let day1 = || Query::partition("DAY#1").on_index("gsi1");

    let found = query_all(&*t, day1()).await;
    assert_eq!(table_keys(&found), ["U2", "U1", "U6"]);
    assert_eq!(
        found[0],
        indexed("U2", Some("DAY#1"), Some("09:00#U2")),
        "whole items"
    );
    assert_eq!(
        table_keys(&query_all(&*t, day1().backward()).await),
        ["U6", "U1", "U2"]
    );
    assert_eq!(
        table_keys(&query_all(&*t, day1().sort(SortKeyRange::BeginsWith("10:".into()))).await),
        ["U1"]
    );
    assert_eq!(
        table_keys(&query_all(&*t, day1().sort(SortKeyRange::Ge("10:00".into()))).await),
        ["U1", "U6"]
    );

    // Updates move items in and out of the index.
    t.update(
        &key("U6", "ROW"),
        vec![UpdateAction::remove("gsi1_sk")],
        None,
    )
    .await
    .expect("remove an index attribute");
    t.update(
        &key("U3", "ROW"),
        vec![UpdateAction::set("gsi1_sk", "08:30#U3")],
        None,
    )
    .await
    .expect("complete an index key");
    t.delete(&key("U2", "ROW"), None).await.expect("delete");
    put(&*t, indexed("U1", Some("DAY#2"), Some("12:00#U1"))).await;
    t.transact(vec![Write::Update {
        key: key("U7", "ROW"),
        actions: vec![
            UpdateAction::set("gsi1_pk", "DAY#1"),
            UpdateAction::set("gsi1_sk", "07:00#U7"),
        ],
        condition: None,
    }])
    .await
    .expect("transaction writing an indexed item");
    assert_eq!(table_keys(&query_all(&*t, day1()).await), ["U7", "U3"]);
    assert_eq!(
        table_keys(&query_all(&*t, Query::partition("DAY#2").on_index("gsi1")).await),
        ["U5", "U1"]
    );
}

/// Paging through a secondary index, including items that share an index sort key.
pub async fn table_secondary_index_pagination(h: &dyn Harness) {
    const ITEMS: usize = 12;
    let t = h.table(&["gsi1"]).await;
    for i in 0..ITEMS {
        // Pairs of items share an index sort key: the cursor must still be exact.
        let gsi_sk = format!("T#{:02}", i / 2);
        put(
            &*t,
            indexed(&format!("E{i:02}"), Some("DAY#3"), Some(&gsi_sk)),
        )
        .await;
    }
    let pages = query_pages(&*t, Query::partition("DAY#3").on_index("gsi1").limit(5)).await;
    assert!(pages.len() >= 3, "12 items in pages of 5: {pages:?}");
    let found = pages.concat();
    let index_sks: Vec<&str> = found.iter().filter_map(|i| i.s("gsi1_sk")).collect();
    let mut sorted = index_sks.clone();
    sorted.sort();
    assert_eq!(index_sks, sorted, "ordered by the index sort key");
    let mut keys = table_keys(&found);
    keys.sort();
    let expected: Vec<String> = (0..ITEMS).map(|i| format!("E{i:02}")).collect();
    assert_eq!(keys, expected, "every item exactly once");
}

/// batch_get returns the items that exist, whatever the order.
pub async fn table_batch_get(h: &dyn Harness) {
    let t = h.table(&[]).await;
    for i in 0..5 {
        put(&*t, item("BATCH", &format!("{i}")).with("i", i as i64)).await;
    }
    let keys = vec![
        key("BATCH", "3"),
        key("BATCH", "missing"),
        key("BATCH", "0"),
        key("OTHER", "1"),
    ];
    let mut found = t.batch_get(&keys).await.expect("batch_get");
    found.sort_by_key(Item::key);
    assert_eq!(
        found,
        vec![
            item("BATCH", "0").with("i", 0_i64),
            item("BATCH", "3").with("i", 3_i64)
        ]
    );
    assert!(t.batch_get(&[]).await.expect("empty batch_get").is_empty());
    let too_many: Vec<Key> = (0..=BATCH_GET_KEYS_MAX)
        .map(|i| key("BATCH", &format!("k{i}")))
        .collect();
    assert_invalid(t.batch_get(&too_many).await, "batch_get over 100 keys");
}

/// Requests that can never succeed are `Invalid`, not `Unavailable`.
pub async fn table_invalid_requests(h: &dyn Harness) {
    let t = h.table(&["gsi1"]).await;
    put(&*t, item("INV", "1")).await;
    assert_invalid(t.query(Query::partition("INV").limit(0)).await, "limit 0");
    assert_invalid(
        t.query(Query::partition("INV").limit(QUERY_PAGE_ITEMS_MAX + 1))
            .await,
        "limit over QUERY_PAGE_ITEMS_MAX",
    );
    assert_invalid(
        t.query(Query::partition("INV").on_index("no_such_index"))
            .await,
        "unknown index",
    );
    assert_invalid(
        t.query(Query::partition("INV").after(Some(Cursor("not a cursor".into()))))
            .await,
        "garbage cursor",
    );
    let mut no_sk = Item::default();
    no_sk.set("pk", "INV");
    assert_invalid(t.put(no_sk, None).await, "put without a sort key");
    let mut numeric_pk = Item::default();
    numeric_pk.set("pk", 1_i64);
    numeric_pk.set("sk", "1");
    assert_invalid(t.put(numeric_pk, None).await, "put with a numeric pk");
    assert_invalid(
        t.update(
            &key("INV", "1"),
            vec![UpdateAction::set("pk", "OTHER")],
            None,
        )
        .await,
        "update of a key attribute",
    );
    assert_invalid(
        t.update(
            &key("INV", "1"),
            vec![UpdateAction::set("a", 1_i64), UpdateAction::add("a", 1_i64)],
            None,
        )
        .await,
        "two actions on one attribute",
    );
    assert_eq!(get(&*t, &key("INV", "1")).await, Some(item("INV", "1")));
}
