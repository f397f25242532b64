//! The `Table` port on SQLite, with DynamoDB's semantics.
//!
//! Items live in `items (tbl, pk, sk, attrs)`: keys as BLOBs of their UTF-8 bytes, so SQLite's
//! `memcmp` ordering is DynamoDB's byte ordering; attributes as typed JSON in DynamoDB's own
//! shape (`{"amount":{"N":"12.30"}}`: numbers as exact decimal strings). Every secondary
//! index is a row per item in `index_entries`, kept in step with the item inside the same
//! transaction; an item without both index attributes has no row (a sparse index).
//! Conditions are evaluated inside the write's transaction, on the database's only writer.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use payops_app::ports::table::{PK, QUERY_PAGE_ITEMS_MAX, SK, TRANSACTION_WRITES_MAX};
use payops_app::ports::{
    CancelReason, Condition, Cursor, IndexSpec, Item, Key, Page, Query, SortKeyRange, Table,
    TableError, TableSpec, UpdateAction, Value, Write,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::{Value as Json, json};

use crate::sqlite::{Db, DbError};

/// DynamoDB's item size limit (the local adapter measures the encoded JSON, a close bound).
pub const ITEM_BYTES_MAX: usize = 400 * 1024;
/// DynamoDB's limit on a partition key value.
pub const PARTITION_KEY_BYTES_MAX: usize = 2048;
/// DynamoDB's limit on a sort key value.
pub const SORT_KEY_BYTES_MAX: usize = 1024;
pub use payops_app::ports::table::BATCH_GET_KEYS_MAX;
/// Nesting depth of lists and maps DynamoDB accepts.
pub const VALUE_NESTING_MAX: usize = 32;

pub(crate) const SCHEMA: &str = "
CREATE TABLE items (
    tbl   TEXT NOT NULL,
    pk    BLOB NOT NULL,
    sk    BLOB NOT NULL,
    attrs TEXT NOT NULL,
    PRIMARY KEY (tbl, pk, sk)
) WITHOUT ROWID;
CREATE TABLE index_entries (
    tbl TEXT NOT NULL,
    idx TEXT NOT NULL,
    ipk BLOB NOT NULL,
    isk BLOB NOT NULL,
    pk  BLOB NOT NULL,
    sk  BLOB NOT NULL,
    PRIMARY KEY (tbl, idx, ipk, isk, pk, sk)
) WITHOUT ROWID;
CREATE TABLE table_specs (
    tbl     TEXT PRIMARY KEY,
    indexes TEXT NOT NULL
);
";

/// One DynamoDB-shaped table in the shared database.
pub struct LocalTable {
    db: Db,
    spec: TableSpec,
}

impl LocalTable {
    /// Registers `spec` and brings its indexes in step with the stored items: entries of a
    /// newly declared index are built, entries of a dropped one removed. Blocking.
    pub(crate) fn open(db: Db, spec: TableSpec) -> Result<LocalTable, TableError> {
        validate_spec(&spec)?;
        let spec2 = spec.clone();
        db.call_blocking(move |conn| {
            let tx = conn.transaction()?;
            sync_indexes(&tx, &spec2)?;
            tx.commit()
        })
        .map_err(unavailable)?;
        Ok(LocalTable { db, spec })
    }

    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<Result<R, TableError>> + Send + 'static,
    ) -> Result<R, TableError> {
        self.db.write(f).await.map_err(unavailable)?
    }
}

pub(crate) fn unavailable(e: DbError) -> TableError {
    TableError::Unavailable(Box::new(e))
}

fn invalid(msg: impl Into<String>) -> TableError {
    TableError::Invalid(msg.into())
}

#[async_trait]
impl Table for LocalTable {
    fn spec(&self) -> &TableSpec {
        &self.spec
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        validate_key(key)?;
        let (tbl, key) = (self.spec.name.clone(), key.clone());
        self.db
            .read(move |c| read_item(c, &tbl, &key))
            .await
            .map_err(unavailable)
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        let key = validate_item(&self.spec, &item)?;
        if let Some(c) = &condition {
            validate_condition(c)?;
        }
        let attrs = encode_item(&item)?;
        let spec = self.spec.clone();
        self.write(move |tx| {
            let old = read_item(tx, &spec.name, &key)?;
            if !holds(condition.as_ref(), old.as_ref()) {
                return Ok(Err(TableError::ConditionFailed));
            }
            store(tx, &spec, &key, old.as_ref(), Some((&item, &attrs)))?;
            Ok(Ok(()))
        })
        .await
    }

    async fn update(
        &self,
        key: &Key,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        validate_key(key)?;
        validate_actions(&actions)?;
        if let Some(c) = &condition {
            validate_condition(c)?;
        }
        let (spec, key) = (self.spec.clone(), key.clone());
        self.write(move |tx| {
            let old = read_item(tx, &spec.name, &key)?;
            if !holds(condition.as_ref(), old.as_ref()) {
                return Ok(Err(TableError::ConditionFailed));
            }
            let new = match updated(&spec, &key, old.as_ref(), &actions) {
                Ok(new) => new,
                Err(e) => return Ok(Err(e)),
            };
            let attrs = match encode_item(&new) {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            store(tx, &spec, &key, old.as_ref(), Some((&new, &attrs)))?;
            Ok(Ok(new))
        })
        .await
    }

    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError> {
        validate_key(key)?;
        if let Some(c) = &condition {
            validate_condition(c)?;
        }
        let (spec, key) = (self.spec.clone(), key.clone());
        self.write(move |tx| {
            let old = read_item(tx, &spec.name, &key)?;
            if !holds(condition.as_ref(), old.as_ref()) {
                return Ok(Err(TableError::ConditionFailed));
            }
            if old.is_some() {
                store(tx, &spec, &key, old.as_ref(), None)?;
            }
            Ok(Ok(old))
        })
        .await
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let plan = QueryPlan::new(&self.spec, &query)?;
        let rows = self
            .db
            .read(move |c| plan.run(c))
            .await
            .map_err(unavailable)?;
        Ok(rows)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        validate_transaction(&self.spec, &writes)?;
        let spec = self.spec.clone();
        self.write(move |tx| run_transaction(tx, &spec, writes))
            .await
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, TableError> {
        if keys.len() > BATCH_GET_KEYS_MAX {
            return Err(invalid(format!(
                "batch_get takes at most {BATCH_GET_KEYS_MAX} keys, got {}",
                keys.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for k in keys {
            validate_key(k)?;
            if !seen.insert(k) {
                return Err(invalid(format!("batch_get has a duplicate key {k:?}")));
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (tbl, keys) = (self.spec.name.clone(), keys.to_vec());
        self.db
            .read(move |c| {
                let mut found = Vec::with_capacity(keys.len());
                for k in &keys {
                    found.extend(read_item(c, &tbl, k)?);
                }
                Ok(found)
            })
            .await
            .map_err(unavailable)
    }
}

// ---------------------------------------------------------------------------------------
// Storage

fn read_item(c: &rusqlite::Connection, tbl: &str, key: &Key) -> rusqlite::Result<Option<Item>> {
    let mut stmt =
        c.prepare_cached("SELECT attrs FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")?;
    let attrs: Option<String> = stmt
        .query_row(params![tbl, key.pk.as_bytes(), key.sk.as_bytes()], |r| {
            r.get(0)
        })
        .optional()?;
    attrs.map(|a| decode_item_sql(&a)).transpose()
}

fn decode_item_sql(attrs: &str) -> rusqlite::Result<Item> {
    decode_item(attrs).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

/// Writes (or deletes, when `new` is `None`) one item and keeps its index entries in step.
fn store(
    tx: &Connection,
    spec: &TableSpec,
    key: &Key,
    old: Option<&Item>,
    new: Option<(&Item, &str)>,
) -> rusqlite::Result<()> {
    let (pk, sk) = (key.pk.as_bytes(), key.sk.as_bytes());
    match new {
        Some((_, attrs)) => {
            tx.prepare_cached(
                "INSERT INTO items (tbl, pk, sk, attrs) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tbl, pk, sk) DO UPDATE SET attrs = excluded.attrs",
            )?
            .execute(params![spec.name, pk, sk, attrs])?;
        }
        None => {
            tx.prepare_cached("DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")?
                .execute(params![spec.name, pk, sk])?;
        }
    }
    for index in &spec.indexes {
        let before = old.and_then(|i| index_key(i, index));
        let after = new.and_then(|(i, _)| index_key(i, index));
        if before == after {
            continue;
        }
        if let Some((ipk, isk)) = before {
            tx.prepare_cached(
                "DELETE FROM index_entries
                 WHERE tbl = ?1 AND idx = ?2 AND ipk = ?3 AND isk = ?4 AND pk = ?5 AND sk = ?6",
            )?
            .execute(params![
                spec.name,
                index.name,
                ipk.as_bytes(),
                isk.as_bytes(),
                pk,
                sk
            ])?;
        }
        if let Some((ipk, isk)) = after {
            tx.prepare_cached(
                "INSERT INTO index_entries (tbl, idx, ipk, isk, pk, sk)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                spec.name,
                index.name,
                ipk.as_bytes(),
                isk.as_bytes(),
                pk,
                sk
            ])?;
        }
    }
    Ok(())
}

/// The item's key in `index`, if it has both index attributes (as strings).
fn index_key<'a>(item: &'a Item, index: &IndexSpec) -> Option<(&'a str, &'a str)> {
    Some((item.s(&index.pk_attr)?, item.s(&index.sk_attr)?))
}

/// Records the table's indexes and rebuilds the entries of any index that was not there.
fn sync_indexes(tx: &Connection, spec: &TableSpec) -> rusqlite::Result<()> {
    let stored: Option<String> = tx
        .query_row(
            "SELECT indexes FROM table_specs WHERE tbl = ?1",
            [&spec.name],
            |r| r.get(0),
        )
        .optional()?;
    let stored: Vec<IndexSpecRow> = stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let wanted: Vec<IndexSpecRow> = spec.indexes.iter().map(IndexSpecRow::from).collect();
    if stored == wanted {
        return Ok(());
    }
    for old in stored.iter().filter(|o| !wanted.contains(o)) {
        tx.execute(
            "DELETE FROM index_entries WHERE tbl = ?1 AND idx = ?2",
            params![spec.name, old.name],
        )?;
    }
    for new in spec
        .indexes
        .iter()
        .filter(|i| !stored.contains(&IndexSpecRow::from(*i)))
    {
        backfill_index(tx, &spec.name, new)?;
    }
    let rows = serde_json::to_string(&wanted)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute(
        "INSERT INTO table_specs (tbl, indexes) VALUES (?1, ?2)
         ON CONFLICT (tbl) DO UPDATE SET indexes = excluded.indexes",
        params![spec.name, rows],
    )?;
    Ok(())
}

fn backfill_index(tx: &Connection, tbl: &str, index: &IndexSpec) -> rusqlite::Result<()> {
    let mut select = tx.prepare("SELECT pk, sk, attrs FROM items WHERE tbl = ?1")?;
    let mut insert = tx.prepare(
        "INSERT OR IGNORE INTO index_entries (tbl, idx, ipk, isk, pk, sk)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut rows = select.query([tbl])?;
    while let Some(row) = rows.next()? {
        let (pk, sk, attrs): (Vec<u8>, Vec<u8>, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let item = decode_item_sql(&attrs)?;
        if let Some((ipk, isk)) = index_key(&item, index) {
            insert.execute(params![
                tbl,
                index.name,
                ipk.as_bytes(),
                isk.as_bytes(),
                pk,
                sk
            ])?;
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct IndexSpecRow {
    name: String,
    pk_attr: String,
    sk_attr: String,
}

impl From<&IndexSpec> for IndexSpecRow {
    fn from(i: &IndexSpec) -> Self {
        IndexSpecRow {
            name: i.name.clone(),
            pk_attr: i.pk_attr.clone(),
            sk_attr: i.sk_attr.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Transactions

enum Plan {
    Store(Item),
    Delete,
    Check,
}

fn run_transaction(
    tx: &Connection,
    spec: &TableSpec,
    writes: Vec<Write>,
) -> rusqlite::Result<Result<(), TableError>> {
    let mut reasons = Vec::with_capacity(writes.len());
    let mut plans = Vec::with_capacity(writes.len());
    for write in &writes {
        let key = write_key(write);
        let old = read_item(tx, &spec.name, &key)?;
        let (condition, plan) = match write {
            Write::Put { item, condition } => (condition.as_ref(), Ok(Plan::Store(item.clone()))),
            Write::Update {
                key,
                actions,
                condition,
            } => (
                condition.as_ref(),
                updated(spec, key, old.as_ref(), actions).map(Plan::Store),
            ),
            Write::Delete { condition, .. } => (condition.as_ref(), Ok(Plan::Delete)),
            Write::ConditionCheck { condition, .. } => (Some(condition), Ok(Plan::Check)),
        };
        let reason = if !holds(condition, old.as_ref()) {
            Some(CancelReason::ConditionalCheckFailed)
        } else if plan.is_err() {
            // DynamoDB cancels with a ValidationError reason (e.g. ADD to a string).
            Some(CancelReason::Other)
        } else {
            None
        };
        reasons.push(reason);
        plans.push((key, old, plan));
    }
    if reasons.iter().any(Option::is_some) {
        return Ok(Err(TableError::TransactionCanceled { reasons }));
    }
    for (key, old, plan) in plans {
        match plan {
            Ok(Plan::Store(item)) => {
                let attrs = match encode_item(&item) {
                    Ok(a) => a,
                    Err(e) => return Ok(Err(e)),
                };
                store(tx, spec, &key, old.as_ref(), Some((&item, &attrs)))?;
            }
            Ok(Plan::Delete) if old.is_some() => store(tx, spec, &key, old.as_ref(), None)?,
            Ok(Plan::Delete | Plan::Check) => {}
            // Every plan was checked above; an error would have cancelled the transaction.
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(()))
}

fn write_key(write: &Write) -> Key {
    match write {
        // Validated before the transaction: a put's item has a key.
        Write::Put { item, .. } => item.key().unwrap_or_else(|| Key::new("", "")),
        Write::Update { key, .. }
        | Write::Delete { key, .. }
        | Write::ConditionCheck { key, .. } => key.clone(),
    }
}

fn validate_transaction(spec: &TableSpec, writes: &[Write]) -> Result<(), TableError> {
    if writes.is_empty() {
        return Err(invalid("a transaction needs at least one write"));
    }
    if writes.len() > TRANSACTION_WRITES_MAX {
        return Err(invalid(format!(
            "a transaction takes at most {TRANSACTION_WRITES_MAX} writes, got {}",
            writes.len()
        )));
    }
    let mut keys = BTreeSet::new();
    for (i, write) in writes.iter().enumerate() {
        let (key, condition) = match write {
            Write::Put { item, condition } => (validate_item(spec, item)?, condition.as_ref()),
            Write::Update {
                key,
                actions,
                condition,
            } => {
                validate_actions(actions)?;
                (key.clone(), condition.as_ref())
            }
            Write::Delete { key, condition } => (key.clone(), condition.as_ref()),
            Write::ConditionCheck { key, condition } => (key.clone(), Some(condition)),
        };
        validate_key(&key)?;
        if let Some(c) = condition {
            validate_condition(c)?;
        }
        if !keys.insert(key.clone()) {
            return Err(invalid(format!(
                "transaction write {i} touches {key:?} again; one write per item"
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Updates and conditions

/// The item after `actions`, starting from `old` (or from the bare key when it is missing).
fn updated(
    spec: &TableSpec,
    key: &Key,
    old: Option<&Item>,
    actions: &[UpdateAction],
) -> Result<Item, TableError> {
    let mut item = old.cloned().unwrap_or_else(|| Item::new(key));
    for action in actions {
        match action {
            UpdateAction::Set(name, value) => item.set(name, value.clone()),
            UpdateAction::SetIfNotExists(name, value) => {
                if item.get(name).is_none() {
                    item.set(name, value.clone());
                }
            }
            UpdateAction::Add(name, delta) => {
                let sum = match item.get(name) {
                    None => *delta,
                    Some(Value::N(n)) => n
                        .checked_add(*delta)
                        .ok_or_else(|| invalid(format!("ADD {delta} to {name} overflows")))?,
                    Some(_) => {
                        return Err(invalid(format!(
                            "ADD on attribute {name:?}, which is not a number"
                        )));
                    }
                };
                item.set(name, sum);
            }
            UpdateAction::Remove(name) => {
                item.0.remove(name);
            }
        }
    }
    validate_item(spec, &item)?;
    Ok(item)
}

fn action_attr(a: &UpdateAction) -> &str {
    match a {
        UpdateAction::Set(n, _)
        | UpdateAction::SetIfNotExists(n, _)
        | UpdateAction::Add(n, _)
        | UpdateAction::Remove(n) => n,
    }
}

fn validate_actions(actions: &[UpdateAction]) -> Result<(), TableError> {
    let mut seen = BTreeSet::new();
    for a in actions {
        let name = action_attr(a);
        validate_attr_name(name)?;
        if name == PK || name == SK {
            return Err(invalid(format!(
                "cannot update attribute {name}: it is part of the key"
            )));
        }
        if !seen.insert(name) {
            return Err(invalid(format!("two update actions on attribute {name:?}")));
        }
        if let UpdateAction::Set(_, v) | UpdateAction::SetIfNotExists(_, v) = a {
            validate_value(v, 0)?;
        }
    }
    Ok(())
}

/// Whether `condition` holds on the item as it is (`None`: no condition, always true).
fn holds(condition: Option<&Condition>, item: Option<&Item>) -> bool {
    condition.is_none_or(|c| eval(c, item))
}

fn eval(c: &Condition, item: Option<&Item>) -> bool {
    let attr = |name: &str| item.and_then(|i| i.get(name));
    let cmp = |name: &str, v: &Value| attr(name).and_then(|a| compare(a, v));
    match c {
        Condition::ItemExists => item.is_some(),
        Condition::ItemNotExists => item.is_none(),
        Condition::AttributeExists(a) => attr(a).is_some(),
        Condition::AttributeNotExists(a) => attr(a).is_none(),
        Condition::Eq(a, v) => attr(a) == Some(v),
        // As DynamoDB: `a <> :v` is true when `a` is missing or of another type.
        Condition::Ne(a, v) => attr(a) != Some(v),
        Condition::Lt(a, v) => cmp(a, v) == Some(Ordering::Less),
        Condition::Le(a, v) => matches!(cmp(a, v), Some(Ordering::Less | Ordering::Equal)),
        Condition::Gt(a, v) => cmp(a, v) == Some(Ordering::Greater),
        Condition::Ge(a, v) => matches!(cmp(a, v), Some(Ordering::Greater | Ordering::Equal)),
        Condition::And(cs) => cs.iter().all(|c| eval(c, item)),
        Condition::Or(cs) => cs.iter().any(|c| eval(c, item)),
        Condition::Not(c) => !eval(c, item),
    }
}

/// DynamoDB orders numbers by value and strings and binaries by bytes; other types and
/// mixed types do not compare (the comparison is false).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::N(x), Value::N(y)) => Some(x.cmp(y)),
        (Value::S(x), Value::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::B(x), Value::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn validate_condition(c: &Condition) -> Result<(), TableError> {
    match c {
        Condition::ItemExists | Condition::ItemNotExists => Ok(()),
        Condition::AttributeExists(a) | Condition::AttributeNotExists(a) => validate_attr_name(a),
        Condition::Eq(a, v) | Condition::Ne(a, v) => {
            validate_attr_name(a)?;
            validate_value(v, 0)
        }
        Condition::Lt(a, v) | Condition::Le(a, v) | Condition::Gt(a, v) | Condition::Ge(a, v) => {
            validate_attr_name(a)?;
            match v {
                Value::N(_) | Value::S(_) | Value::B(_) => Ok(()),
                other => Err(invalid(format!(
                    "condition on {a:?}: only numbers, strings and binaries are ordered, not {other:?}"
                ))),
            }
        }
        Condition::And(cs) | Condition::Or(cs) => {
            if cs.is_empty() {
                return Err(invalid("an And/Or condition needs at least one operand"));
            }
            cs.iter().try_for_each(validate_condition)
        }
        Condition::Not(c) => validate_condition(c),
    }
}

// ---------------------------------------------------------------------------------------
// Validation of keys and items

fn validate_key(key: &Key) -> Result<(), TableError> {
    validate_key_part(PK, &key.pk, PARTITION_KEY_BYTES_MAX)?;
    validate_key_part(SK, &key.sk, SORT_KEY_BYTES_MAX)
}

fn validate_key_part(name: &str, value: &str, max: usize) -> Result<(), TableError> {
    if value.is_empty() {
        return Err(invalid(format!("key attribute {name} is empty")));
    }
    if value.len() > max {
        return Err(invalid(format!(
            "key attribute {name} has {} bytes, at most {max}",
            value.len()
        )));
    }
    Ok(())
}

fn validate_attr_name(name: &str) -> Result<(), TableError> {
    if name.is_empty() {
        return Err(invalid("attribute names cannot be empty"));
    }
    Ok(())
}

fn validate_value(v: &Value, depth: usize) -> Result<(), TableError> {
    if depth > VALUE_NESTING_MAX {
        return Err(invalid(format!(
            "values nest at most {VALUE_NESTING_MAX} levels deep"
        )));
    }
    match v {
        Value::L(items) => items.iter().try_for_each(|v| validate_value(v, depth + 1)),
        Value::M(map) => map.iter().try_for_each(|(k, v)| {
            validate_attr_name(k)?;
            validate_value(v, depth + 1)
        }),
        _ => Ok(()),
    }
}

/// Checks an item as DynamoDB would before writing it; returns its key.
fn validate_item(spec: &TableSpec, item: &Item) -> Result<Key, TableError> {
    for name in [PK, SK] {
        match item.get(name) {
            Some(Value::S(_)) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "key attribute {name} must be a string, got {other:?}"
                )));
            }
            None => return Err(invalid(format!("item has no key attribute {name}"))),
        }
    }
    let key = item
        .key()
        .ok_or_else(|| invalid("item has no string key attributes"))?;
    validate_key(&key)?;
    for (name, value) in &item.0 {
        validate_attr_name(name)?;
        validate_value(value, 0)?;
    }
    for index in &spec.indexes {
        for attr in [&index.pk_attr, &index.sk_attr] {
            match item.get(attr) {
                None => {}
                Some(Value::S(s)) if !s.is_empty() => {}
                Some(other) => {
                    return Err(invalid(format!(
                        "attribute {attr} keys index {} and must be a non-empty string, got {other:?}",
                        index.name
                    )));
                }
            }
        }
    }
    Ok(key)
}

fn validate_spec(spec: &TableSpec) -> Result<(), TableError> {
    if spec.name.is_empty() {
        return Err(invalid("a table needs a name"));
    }
    let mut names = BTreeSet::new();
    for index in &spec.indexes {
        if !names.insert(&index.name) {
            return Err(invalid(format!("index {} declared twice", index.name)));
        }
        if [PK, SK].contains(&index.pk_attr.as_str()) || [PK, SK].contains(&index.sk_attr.as_str())
        {
            return Err(invalid(format!(
                "index {} is keyed by the table's own key attributes",
                index.name
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Queries

/// A query turned into SQL and parameters, ready to run on the database thread.
struct QueryPlan {
    sql: String,
    params: Vec<SqlValue>,
    limit: usize,
    index: Option<String>,
    partition: String,
}

impl QueryPlan {
    fn new(spec: &TableSpec, q: &Query) -> Result<QueryPlan, TableError> {
        if q.limit == 0 || q.limit > QUERY_PAGE_ITEMS_MAX {
            return Err(invalid(format!(
                "query limit must be 1..={QUERY_PAGE_ITEMS_MAX}, got {}",
                q.limit
            )));
        }
        validate_key_part("partition", &q.partition, PARTITION_KEY_BYTES_MAX)?;
        let cursor = q
            .cursor
            .as_ref()
            .map(|c| CursorPos::decode(c, q.index.as_deref(), &q.partition))
            .transpose()?;
        let order = if q.forward { "ASC" } else { "DESC" };
        let after = if q.forward { ">" } else { "<" };
        let mut params: Vec<SqlValue> = vec![SqlValue::Text(spec.name.clone())];
        let mut sql = match &q.index {
            None => {
                params.push(blob(&q.partition));
                String::from("SELECT attrs, sk, NULL, NULL FROM items WHERE tbl = ?1 AND pk = ?2")
            }
            Some(name) => {
                if spec.index(name).is_none() {
                    return Err(invalid(format!(
                        "table {} has no index {name:?}",
                        spec.name
                    )));
                }
                params.push(SqlValue::Text(name.clone()));
                params.push(blob(&q.partition));
                String::from(
                    "SELECT i.attrs, e.isk, e.pk, e.sk FROM index_entries e
                     JOIN items i ON i.tbl = e.tbl AND i.pk = e.pk AND i.sk = e.sk
                     WHERE e.tbl = ?1 AND e.idx = ?2 AND e.ipk = ?3",
                )
            }
        };
        let column = if q.index.is_some() { "e.isk" } else { "sk" };
        sort_range_sql(&q.sort, column, &mut sql, &mut params)?;
        match (&cursor, &q.index) {
            (None, _) => {}
            (Some(c), None) => {
                params.push(blob(&c.sk));
                sql.push_str(&format!(" AND sk {after} ?{}", params.len()));
            }
            (Some(c), Some(_)) => {
                let n = params.len();
                params.push(blob(c.isk.as_deref().unwrap_or_default()));
                params.push(blob(c.pk.as_deref().unwrap_or_default()));
                params.push(blob(&c.sk));
                sql.push_str(&format!(
                    " AND (e.isk, e.pk, e.sk) {after} (?{}, ?{}, ?{})",
                    n + 1,
                    n + 2,
                    n + 3
                ));
            }
        }
        sql.push_str(&match q.index {
            None => format!(" ORDER BY sk {order}"),
            Some(_) => format!(" ORDER BY e.isk {order}, e.pk {order}, e.sk {order}"),
        });
        // One row more than the page tells whether a next page exists.
        params.push(SqlValue::Integer(q.limit as i64 + 1));
        sql.push_str(&format!(" LIMIT ?{}", params.len()));
        Ok(QueryPlan {
            sql,
            params,
            limit: q.limit,
            index: q.index.clone(),
            partition: q.partition.clone(),
        })
    }

    fn run(self, c: &rusqlite::Connection) -> rusqlite::Result<Page> {
        let mut stmt = c.prepare_cached(&self.sql)?;
        let mut rows = stmt.query(params_from_iter(self.params.iter()))?;
        let mut items = Vec::new();
        let mut last: Option<RowPosition> = None;
        let mut more = false;
        while let Some(row) = rows.next()? {
            if items.len() == self.limit {
                more = true;
                break;
            }
            let attrs: String = row.get(0)?;
            items.push(decode_item_sql(&attrs)?);
            last = Some((row.get(1)?, row.get(2)?, row.get(3)?));
        }
        let cursor = match (more, last) {
            (true, Some((first, pk, sk))) => Some(
                match self.index {
                    None => CursorPos {
                        sk: lossless(first)?,
                        isk: None,
                        pk: None,
                    },
                    Some(_) => CursorPos {
                        isk: Some(lossless(first)?),
                        pk: pk.map(lossless).transpose()?,
                        sk: sk.map(lossless).transpose()?.unwrap_or_default(),
                    },
                }
                .encode(self.index.as_deref(), &self.partition),
            ),
            _ => None,
        };
        Ok(Page { items, cursor })
    }
}

/// The sort key, and for index queries the table key, of a result row.
type RowPosition = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

fn lossless(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn blob(s: &str) -> SqlValue {
    SqlValue::Blob(s.as_bytes().to_vec())
}

fn sort_range_sql(
    range: &SortKeyRange,
    column: &str,
    sql: &mut String,
    params: &mut Vec<SqlValue>,
) -> Result<(), TableError> {
    let mut bound = |op: &str, v: Vec<u8>, sql: &mut String| {
        params.push(SqlValue::Blob(v));
        sql.push_str(&format!(" AND {column} {op} ?{}", params.len()));
    };
    match range {
        SortKeyRange::All => {}
        SortKeyRange::Eq(v) => bound("=", v.as_bytes().to_vec(), sql),
        SortKeyRange::BeginsWith(prefix) => {
            if !prefix.is_empty() {
                bound(">=", prefix.as_bytes().to_vec(), sql);
                if let Some(end) = prefix_successor(prefix.as_bytes()) {
                    bound("<", end, sql);
                }
            }
        }
        SortKeyRange::Between(low, high) => {
            if low.as_bytes() > high.as_bytes() {
                return Err(invalid(format!(
                    "BETWEEN bounds are reversed: {low:?} > {high:?}"
                )));
            }
            bound(">=", low.as_bytes().to_vec(), sql);
            bound("<=", high.as_bytes().to_vec(), sql);
        }
        SortKeyRange::Lt(v) => bound("<", v.as_bytes().to_vec(), sql),
        SortKeyRange::Le(v) => bound("<=", v.as_bytes().to_vec(), sql),
        SortKeyRange::Gt(v) => bound(">", v.as_bytes().to_vec(), sql),
        SortKeyRange::Ge(v) => bound(">=", v.as_bytes().to_vec(), sql),
    }
    Ok(())
}

/// The smallest byte string greater than every string that starts with `prefix`.
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Where a page ended. Encoded with the query's index and partition, so a cursor cannot be
/// replayed against another query.
struct CursorPos {
    sk: String,
    isk: Option<String>,
    pk: Option<String>,
}

impl CursorPos {
    fn encode(&self, index: Option<&str>, partition: &str) -> Cursor {
        let doc =
            json!({"i": index, "p": partition, "sk": self.sk, "isk": self.isk, "pk": self.pk});
        Cursor(URL_SAFE_NO_PAD.encode(doc.to_string()))
    }

    fn decode(cursor: &Cursor, index: Option<&str>, partition: &str) -> Result<Self, TableError> {
        let bad = || invalid("the cursor is not one this table returned");
        let bytes = URL_SAFE_NO_PAD.decode(&cursor.0).map_err(|_| bad())?;
        let doc: Json = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if doc["i"].as_str() != index || doc["p"].as_str() != Some(partition) {
            return Err(invalid("the cursor belongs to another query"));
        }
        let text = |f: &str| doc[f].as_str().map(str::to_owned);
        let pos = CursorPos {
            sk: text("sk").ok_or_else(bad)?,
            isk: text("isk"),
            pk: text("pk"),
        };
        if index.is_some() && (pos.isk.is_none() || pos.pk.is_none()) {
            return Err(bad());
        }
        Ok(pos)
    }
}

// ---------------------------------------------------------------------------------------
// Attribute encoding: DynamoDB JSON

/// Encodes an item as DynamoDB JSON; fails when it is over ITEM_BYTES_MAX.
pub fn encode_item(item: &Item) -> Result<String, TableError> {
    let text = crate::item_codec::to_text(item)
        .map_err(|e| invalid(format!("item not encodable: {e}")))?;
    if text.len() > ITEM_BYTES_MAX {
        return Err(invalid(format!(
            "item is {} bytes, at most {ITEM_BYTES_MAX}",
            text.len()
        )));
    }
    Ok(text)
}

pub fn decode_item(text: &str) -> Result<Item, String> {
    crate::item_codec::from_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn decimals_keep_their_scale_in_storage() {
        let item = Item::new(&Key::new("a", "b")).with("amount", Decimal::new(1230, 2));
        let text = encode_item(&item).expect("encode");
        assert!(text.contains(r#"{"N":"12.30"}"#), "{text}");
        let back = decode_item(&text).expect("decode");
        assert_eq!(
            back.n("amount").map(|d| d.to_string()),
            Some("12.30".to_owned())
        );
    }

    #[test]
    fn prefix_successor_is_the_next_byte_string() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[0x61, 0xFF]), Some(vec![0x62]));
        assert_eq!(prefix_successor(&[0xFF]), None);
    }
}
