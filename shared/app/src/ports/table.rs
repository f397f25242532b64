//! The `Table` port: a DynamoDB-shaped key-value table.
//!
//! Every table has a string partition key attribute `pk` and a string sort key attribute `sk`.
//! Secondary indexes are declared once (in `template.yaml` and in a [`TableSpec`]) by name and
//! by the two string attributes that key them. Items hold typed attributes; numbers are exact
//! decimals, never floats. The DynamoDB adapter is a thin mapping onto the SDK; the SQLite
//! adapter gives the same semantics. Both pass the conformance suite in `crate::conformance`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rust_decimal::Decimal;

/// Name of the partition-key attribute of every table.
pub const PK: &str = "pk";
/// Name of the sort-key attribute of every table.
pub const SK: &str = "sk";
/// DynamoDB's limit on the writes in one `TransactWriteItems` call.
pub const TRANSACTION_WRITES_MAX: usize = 100;
/// DynamoDB's limit on the keys of one `BatchGetItem` call: the most keys one
/// [`Table::batch_get`] takes.
pub const BATCH_GET_KEYS_MAX: usize = 100;
/// Upper bound on a query page (DynamoDB stops at 1 MB anyway).
pub const QUERY_PAGE_ITEMS_MAX: usize = 1000;

/// A typed attribute value. `N` is an exact decimal (DynamoDB numbers are decimal strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    S(String),
    N(Decimal),
    Bool(bool),
    Null,
    B(Vec<u8>),
    L(Vec<Value>),
    M(BTreeMap<String, Value>),
}

impl Value {
    pub fn as_s(&self) -> Option<&str> {
        match self {
            Value::S(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_n(&self) -> Option<Decimal> {
        match self {
            Value::N(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::S(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::S(s)
    }
}
impl From<Decimal> for Value {
    fn from(n: Decimal) -> Self {
        Value::N(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::N(Decimal::from(n))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// An item: attribute name → value. Always contains `pk` and `sk` when stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item(pub BTreeMap<String, Value>);

impl Item {
    pub fn new(key: &Key) -> Self {
        let mut item = Item::default();
        item.set(PK, key.pk.clone());
        item.set(SK, key.sk.clone());
        item
    }
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.0.insert(name.to_owned(), value.into());
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    pub fn s(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_s)
    }
    pub fn n(&self, name: &str) -> Option<Decimal> {
        self.get(name).and_then(Value::as_n)
    }
    /// The item's primary key, if it has one.
    pub fn key(&self) -> Option<Key> {
        Some(Key::new(self.s(PK)?, self.s(SK)?))
    }
}

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// A secondary index: a name and the two string attributes that key it. An item without both
/// attributes is not in the index (DynamoDB's sparse index behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub pk_attr: String,
    pub sk_attr: String,
}

/// What an adapter needs to know about a table: its name and its secondary indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub indexes: Vec<IndexSpec>,
}

impl TableSpec {
    pub fn new(name: impl Into<String>) -> Self {
        TableSpec {
            name: name.into(),
            indexes: Vec::new(),
        }
    }
    /// Adds an index named `name` keyed by `{name}_pk` and `{name}_sk`, the convention that
    /// `template.yaml` follows for every GSI.
    pub fn with_index(mut self, name: &str) -> Self {
        self.indexes.push(IndexSpec {
            name: name.to_owned(),
            pk_attr: format!("{name}_pk"),
            sk_attr: format!("{name}_sk"),
        });
        self
    }
    pub fn index(&self, name: &str) -> Option<&IndexSpec> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

/// A condition on the item as it is before the write (DynamoDB ConditionExpression).
/// Comparisons against a missing attribute are false, as in DynamoDB, except `Ne`, which is
/// true there (`a <> :v` holds when `a` is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The item exists (`attribute_exists(pk)`).
    ItemExists,
    /// The item does not exist (`attribute_not_exists(pk)`).
    ItemNotExists,
    AttributeExists(String),
    AttributeNotExists(String),
    Eq(String, Value),
    Ne(String, Value),
    Lt(String, Value),
    Le(String, Value),
    Gt(String, Value),
    Ge(String, Value),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn eq(attr: &str, v: impl Into<Value>) -> Self {
        Condition::Eq(attr.to_owned(), v.into())
    }
    pub fn ne(attr: &str, v: impl Into<Value>) -> Self {
        Condition::Ne(attr.to_owned(), v.into())
    }
    pub fn lt(attr: &str, v: impl Into<Value>) -> Self {
        Condition::Lt(attr.to_owned(), v.into())
    }
    pub fn le(attr: &str, v: impl Into<Value>) -> Self {
        Condition::Le(attr.to_owned(), v.into())
    }
    pub fn gt(attr: &str, v: impl Into<Value>) -> Self {
        Condition::Gt(attr.to_owned(), v.into())
    }
    pub fn ge(attr: &str, v: impl Into<Value>) -> Self {
        Condition::Ge(attr.to_owned(), v.into())
    }
    pub fn exists(attr: &str) -> Self {
        Condition::AttributeExists(attr.to_owned())
    }
    pub fn not_exists(attr: &str) -> Self {
        Condition::AttributeNotExists(attr.to_owned())
    }
}

/// One change of an update (DynamoDB UpdateExpression clauses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateAction {
    /// `SET attr = value`
    Set(String, Value),
    /// `SET attr = if_not_exists(attr, value)`
    SetIfNotExists(String, Value),
    /// `ADD attr delta`: atomic add to a number; a missing attribute counts as 0.
    Add(String, Decimal),
    /// `REMOVE attr`
    Remove(String),
}

impl UpdateAction {
    pub fn set(attr: &str, v: impl Into<Value>) -> Self {
        UpdateAction::Set(attr.to_owned(), v.into())
    }
    pub fn set_if_not_exists(attr: &str, v: impl Into<Value>) -> Self {
        UpdateAction::SetIfNotExists(attr.to_owned(), v.into())
    }
    pub fn add(attr: &str, delta: impl Into<Decimal>) -> Self {
        UpdateAction::Add(attr.to_owned(), delta.into())
    }
    pub fn remove(attr: &str) -> Self {
        UpdateAction::Remove(attr.to_owned())
    }
}

/// One write of a transaction (or a single conditional write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    /// Creates the item if it does not exist (as DynamoDB's UpdateItem does).
    Update {
        key: Key,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    /// Writes nothing; cancels the transaction when the condition is false.
    ConditionCheck { key: Key, condition: Condition },
}

/// How to select sort keys within one partition of a query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortKeyRange {
    #[default]
    All,
    Eq(String),
    BeginsWith(String),
    /// Inclusive on both ends, as DynamoDB's BETWEEN.
    Between(String, String),
    Lt(String),
    Le(String),
    Gt(String),
    Ge(String),
}

/// A query over one partition of the table or of a secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `None` queries the table itself.
    pub index: Option<String>,
    pub partition: String,
    pub sort: SortKeyRange,
    /// Items per page, 1..=QUERY_PAGE_ITEMS_MAX.
    pub limit: usize,
    /// Ascending sort-key order when true.
    pub forward: bool,
    /// The cursor of the previous page, if this is not the first.
    pub cursor: Option<Cursor>,
}

impl Query {
    pub fn partition(partition: impl Into<String>) -> Self {
        Query {
            index: None,
            partition: partition.into(),
            sort: SortKeyRange::All,
            limit: QUERY_PAGE_ITEMS_MAX,
            forward: true,
            cursor: None,
        }
    }
    pub fn on_index(mut self, index: &str) -> Self {
        self.index = Some(index.to_owned());
        self
    }
    pub fn sort(mut self, sort: SortKeyRange) -> Self {
        self.sort = sort;
        self
    }
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }
    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// An opaque position after which the next page starts. Adapters encode what they need
/// (DynamoDB's LastEvaluatedKey as JSON, SQLite the last key); callers only pass it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Item>,
    /// `None` when there is nothing after this page.
    pub cursor: Option<Cursor>,
}

/// Why one write of a cancelled transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    ConditionalCheckFailed,
    /// A concurrent transaction touched the same item; retrying may succeed.
    Conflict,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The write's condition was false; nothing was written.
    #[error("condition failed")]
    ConditionFailed,
    /// The transaction wrote nothing. `reasons[i]` is `Some` for each write that failed.
    #[error("transaction cancelled: {reasons:?}")]
    TransactionCanceled { reasons: Vec<Option<CancelReason>> },
    /// The request itself is wrong (too many writes, an unknown index, a bad cursor, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Throttling, a network failure, a busy database: the caller may retry.
    #[error("table unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl TableError {
    /// True when the request may succeed if simply retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            TableError::Unavailable(_) => true,
            TableError::TransactionCanceled { reasons } => {
                reasons.contains(&Some(CancelReason::Conflict))
                    && !reasons.contains(&Some(CancelReason::ConditionalCheckFailed))
            }
            _ => false,
        }
    }
    /// For a cancelled transaction: did write `index` fail its condition?
    pub fn failed_condition_at(&self, index: usize) -> bool {
        matches!(self, TableError::TransactionCanceled { reasons }
            if reasons.get(index).copied().flatten() == Some(CancelReason::ConditionalCheckFailed))
    }
}

/// A DynamoDB-shaped table. Reads are strongly consistent on the table, eventually
/// consistent on secondary indexes (as in DynamoDB; the SQLite adapter is always consistent).
#[async_trait]
pub trait Table: Send + Sync {
    fn spec(&self) -> &TableSpec;

    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError>;

    /// Writes the whole item; fails with `ConditionFailed` if `condition` is false.
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError>;

    /// Applies `actions` (creating the item if absent) and returns the item as it is after.
    async fn update(
        &self,
        key: &Key,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    ) -> Result<Item, TableError>;

    /// Deletes the item and returns it as it was, if it existed.
    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError>;

    async fn query(&self, query: Query) -> Result<Page, TableError>;

    /// All or nothing: up to `TRANSACTION_WRITES_MAX` writes on distinct items.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError>;

    /// Reads up to 100 items by key; missing items are absent from the result.
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, TableError>;
}
