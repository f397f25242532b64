//! The `Table` port on DynamoDB: a thin mapping of each call onto one SDK operation.

mod cursor;
mod expr;
mod value;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem,
    Update,
};
use payops_app::ports::table::{PK, QUERY_PAGE_ITEMS_MAX, SK, TRANSACTION_WRITES_MAX};
use payops_app::ports::{
    CancelReason, Condition, Cursor, Item, Key, Page, Query, Table, TableError, TableSpec,
    UpdateAction, Write,
};

use crate::sdk_error::{Fault, classify};
use expr::Placeholders;
use value::{AttrMap, from_attr_map, key_map, to_attr_map};

pub use cursor::CURSOR_BYTES_MAX;

pub use payops_app::ports::table::BATCH_GET_KEYS_MAX;
/// How many `BatchGetItem` calls one `batch_get` makes at most while DynamoDB keeps
/// returning `UnprocessedKeys` (it does so under throttling).
pub const BATCH_GET_ROUNDS_MAX: u32 = 6;
/// Back-off before the second round; doubled each round after (25, 50, … 400 ms).
pub const BATCH_GET_BACKOFF_BASE_MS: u64 = 25;

/// A DynamoDB table whose items are keyed by the string attributes `pk` and `sk`.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    spec: TableSpec,
}

impl DynamoTable {
    pub fn new(client: Client, spec: TableSpec) -> Self {
        DynamoTable { client, spec }
    }

    /// The partition and sort attributes that key the table or one of its indexes.
    fn key_attrs(&self, index: Option<&str>) -> Result<(&str, &str), TableError> {
        match index {
            None => Ok((PK, SK)),
            Some(name) => self
                .spec
                .index(name)
                .map(|i| (i.pk_attr.as_str(), i.sk_attr.as_str()))
                .ok_or_else(|| {
                    TableError::Invalid(format!(
                        "table {} has no index named {name:?}",
                        self.spec.name
                    ))
                }),
        }
    }

    /// The attributes of a start key: the table key plus, on an index, the index key
    /// (what DynamoDB itself puts in `LastEvaluatedKey`).
    fn start_key_attrs(&self, index: Option<&str>) -> Result<Vec<&str>, TableError> {
        let mut attrs = vec![PK, SK];
        if index.is_some() {
            let (ipk, isk) = self.key_attrs(index)?;
            attrs.extend([ipk, isk]);
        }
        Ok(attrs)
    }

    /// The `ExclusiveStartKey` that resumes a query right after `item`.
    fn start_key_after(&self, item: &AttrMap, index: Option<&str>) -> Result<AttrMap, TableError> {
        self.start_key_attrs(index)?
            .into_iter()
            .map(|a| {
                let v = item.get(a).cloned().ok_or_else(|| {
                    TableError::Invalid(format!("query returned an item without {a}"))
                })?;
                Ok((a.to_owned(), v))
            })
            .collect()
    }

    /// Decodes a cursor and checks that it belongs to this query: exactly the key attributes
    /// of the table (and index) and the same partition. DynamoDB rejects a foreign start key
    /// too, but moto fails on one with an internal error, and a clear message helps.
    fn start_key(
        &self,
        cursor: &Cursor,
        index: Option<&str>,
        partition: &str,
    ) -> Result<AttrMap, TableError> {
        let key = cursor::decode(cursor)?;
        let (pk_attr, _) = self.key_attrs(index)?;
        let expected = self.start_key_attrs(index)?;
        let same_attrs =
            key.len() == expected.len() && expected.iter().all(|a| key.contains_key(*a));
        let same_partition =
            matches!(key.get(pk_attr), Some(AttributeValue::S(p)) if p == partition);
        if !(same_attrs && same_partition) {
            return Err(TableError::Invalid(
                "cursor does not belong to this query (another index or partition)".into(),
            ));
        }
        Ok(key)
    }
}

/// Maps an SDK error of any single-item operation.
fn table_error<E>(err: SdkError<E, HttpResponse>) -> TableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if err.code() == Some("ConditionalCheckFailedException") {
        return TableError::ConditionFailed;
    }
    match classify(err) {
        Fault::Unavailable(e) => TableError::Unavailable(e),
        Fault::Rejected(m) => TableError::Invalid(m),
    }
}

/// The port's reason for one entry of `CancellationReasons`.
pub(crate) fn cancel_reason(code: Option<&str>) -> Option<CancelReason> {
    match code {
        None | Some("None") => None,
        Some("ConditionalCheckFailed") => Some(CancelReason::ConditionalCheckFailed),
        Some("TransactionConflict") => Some(CancelReason::Conflict),
        Some(_) => Some(CancelReason::Other),
    }
}

fn transact_error(
    err: SdkError<TransactWriteItemsError, HttpResponse>,
    writes: usize,
) -> TableError {
    if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
        let mut reasons: Vec<Option<CancelReason>> = e
            .cancellation_reasons()
            .iter()
            .map(|r| cancel_reason(r.code()))
            .collect();
        // DynamoDB sends one reason per write; keep `reasons[i]` ↔ write `i` even if not.
        reasons.resize(writes, None);
        return TableError::TransactionCanceled { reasons };
    }
    table_error(err)
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> TableError {
    TableError::Invalid(format!("request could not be built: {e}"))
}

/// A condition and the placeholders it uses, ready for a request.
struct Expressions {
    condition: Option<String>,
    /// Only for updates.
    update: Option<String>,
    names: Option<expr::NameMap>,
    values: Option<AttrMap>,
}

fn expressions(condition: Option<&Condition>, actions: Option<&[UpdateAction]>) -> Expressions {
    let mut p = Placeholders::default();
    let update = actions.map(|a| expr::update(a, &mut p));
    let condition = condition.map(|c| expr::condition(c, &mut p));
    let (names, values) = p.into_maps();
    Expressions {
        condition,
        update,
        names,
        values,
    }
}

fn item_key(item: &Item) -> Result<Key, TableError> {
    item.key().ok_or_else(|| {
        TableError::Invalid(format!("an item needs string attributes {PK} and {SK}"))
    })
}

impl DynamoTable {
    fn transact_item(&self, write: &Write) -> Result<TransactWriteItem, TableError> {
        let table = self.spec.name.clone();
        let item = match write {
            Write::Put { item, condition } => {
                item_key(item)?;
                let e = expressions(condition.as_ref(), None);
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(to_attr_map(item)))
                    .set_condition_expression(e.condition)
                    .set_expression_attribute_names(e.names)
                    .set_expression_attribute_values(e.values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().put(put).build()
            }
            Write::Update {
                key,
                actions,
                condition,
            } => {
                let e = expressions(condition.as_ref(), Some(actions));
                let update = Update::builder()
                    .table_name(table)
                    .set_key(Some(key_map(key)))
                    .set_update_expression(e.update)
                    .set_condition_expression(e.condition)
                    .set_expression_attribute_names(e.names)
                    .set_expression_attribute_values(e.values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().update(update).build()
            }
            Write::Delete { key, condition } => {
                let e = expressions(condition.as_ref(), None);
                let delete = Delete::builder()
                    .table_name(table)
                    .set_key(Some(key_map(key)))
                    .set_condition_expression(e.condition)
                    .set_expression_attribute_names(e.names)
                    .set_expression_attribute_values(e.values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().delete(delete).build()
            }
            Write::ConditionCheck { key, condition } => {
                let e = expressions(Some(condition), None);
                let check = ConditionCheck::builder()
                    .table_name(table)
                    .set_key(Some(key_map(key)))
                    .set_condition_expression(e.condition)
                    .set_expression_attribute_names(e.names)
                    .set_expression_attribute_values(e.values)
                    .build()
                    .map_err(build_error)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        };
        Ok(item)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{keys} keys still unprocessed after {rounds} BatchGetItem calls")]
struct KeysUnprocessed {
    keys: usize,
    rounds: u32,
}

#[async_trait]
impl Table for DynamoTable {
    fn spec(&self) -> &TableSpec {
        &self.spec
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.spec.name)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(table_error)?;
        out.item.as_ref().map(from_attr_map).transpose()
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        item_key(&item)?;
        let e = expressions(condition.as_ref(), None);
        self.client
            .put_item()
            .table_name(&self.spec.name)
            .set_item(Some(to_attr_map(&item)))
            .set_condition_expression(e.condition)
            .set_expression_attribute_names(e.names)
            .set_expression_attribute_values(e.values)
            .send()
            .await
            .map_err(table_error)?;
        Ok(())
    }

    async fn update(
        &self,
        key: &Key,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        let e = expressions(condition.as_ref(), Some(&actions));
        let out = self
            .client
            .update_item()
            .table_name(&self.spec.name)
            .set_key(Some(key_map(key)))
            .set_update_expression(e.update)
            .set_condition_expression(e.condition)
            .set_expression_attribute_names(e.names)
            .set_expression_attribute_values(e.values)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(table_error)?;
        match out.attributes.as_ref() {
            Some(attrs) => from_attr_map(attrs),
            // ALL_NEW always returns at least the key; be safe if a service omits it.
            None => Ok(Item::new(key)),
        }
    }

    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError> {
        let e = expressions(condition.as_ref(), None);
        let out = self
            .client
            .delete_item()
            .table_name(&self.spec.name)
            .set_key(Some(key_map(key)))
            .set_condition_expression(e.condition)
            .set_expression_attribute_names(e.names)
            .set_expression_attribute_values(e.values)
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(table_error)?;
        out.attributes
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(from_attr_map)
            .transpose()
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        if !(1..=QUERY_PAGE_ITEMS_MAX).contains(&query.limit) {
            return Err(TableError::Invalid(format!(
                "query limit is {}; it must be 1..={QUERY_PAGE_ITEMS_MAX}",
                query.limit
            )));
        }
        let index = query.index.as_deref();
        let (pk_attr, sk_attr) = self.key_attrs(index)?;
        let mut p = Placeholders::default();
        let key_condition =
            expr::key_condition(pk_attr, sk_attr, &query.partition, &query.sort, &mut p);
        let (names, values) = p.into_maps();
        let start = match &query.cursor {
            Some(c) => Some(self.start_key(c, index, &query.partition)?),
            None => None,
        };
        // One item more than asked: if it comes back there is a next page, and if it does
        // not, the cursor is `None` as the port promises (DynamoDB alone would return a
        // LastEvaluatedKey after a full last page, and the caller would fetch an empty page).
        let fetch = i32::try_from(query.limit + 1).unwrap_or(i32::MAX);
        let out = self
            .client
            .query()
            .table_name(&self.spec.name)
            .set_index_name(query.index.clone())
            .key_condition_expression(key_condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .scan_index_forward(query.forward)
            .limit(fetch)
            .set_exclusive_start_key(start)
            // Strong consistency exists on the table only; an index rejects it.
            .consistent_read(index.is_none())
            .send()
            .await
            .map_err(table_error)?;
        let mut raw = out.items.unwrap_or_default();
        let cursor = if raw.len() > query.limit {
            raw.truncate(query.limit);
            let last = raw.last().ok_or_else(|| {
                TableError::Invalid("query returned more items than its limit".into())
            })?;
            Some(cursor::encode(&self.start_key_after(last, index)?))
        } else {
            // Fewer items than asked with a LastEvaluatedKey: DynamoDB stopped at 1 MB.
            out.last_evaluated_key.as_ref().map(cursor::encode)
        };
        let items = raw
            .iter()
            .map(from_attr_map)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, cursor })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        if writes.len() > TRANSACTION_WRITES_MAX {
            return Err(TableError::Invalid(format!(
                "a transaction has {} writes; at most {TRANSACTION_WRITES_MAX} are allowed",
                writes.len()
            )));
        }
        if writes.is_empty() {
            // DynamoDB rejects an empty TransactWriteItems; nothing to do is not an error.
            return Ok(());
        }
        let items = writes
            .iter()
            .map(|w| self.transact_item(w))
            .collect::<Result<Vec<_>, _>>()?;
        // The SDK fills ClientRequestToken itself, so its own retries are idempotent.
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| transact_error(e, writes.len()))?;
        Ok(())
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, TableError> {
        let mut unique: Vec<&Key> = Vec::with_capacity(keys.len());
        for key in keys {
            // DynamoDB rejects a batch with duplicate keys; reading one twice is pointless.
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        if unique.len() > BATCH_GET_KEYS_MAX {
            return Err(TableError::Invalid(format!(
                "batch_get of {} keys; at most {BATCH_GET_KEYS_MAX} are allowed",
                unique.len()
            )));
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(unique.iter().map(|k| key_map(k)).collect()))
                .consistent_read(true)
                .build()
                .map_err(build_error)?,
        );
        let mut found: Vec<Item> = Vec::with_capacity(unique.len());
        let mut round = 0;
        while let Some(request) = pending.take() {
            if round == BATCH_GET_ROUNDS_MAX {
                let keys = request.keys().len();
                return Err(TableError::Unavailable(Box::new(KeysUnprocessed {
                    keys,
                    rounds: round,
                })));
            }
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(
                    BATCH_GET_BACKOFF_BASE_MS << (round - 1),
                ))
                .await;
            }
            round += 1;
            let mut out = self
                .client
                .batch_get_item()
                .request_items(&self.spec.name, request)
                .send()
                .await
                .map_err(table_error)?;
            if let Some(items) = out
                .responses
                .as_mut()
                .and_then(|r| r.remove(&self.spec.name))
            {
                for attrs in &items {
                    found.push(from_attr_map(attrs)?);
                }
            }
            pending = out
                .unprocessed_keys
                .as_mut()
                .and_then(|u| u.remove(&self.spec.name))
                .filter(|k| !k.keys().is_empty());
        }
        // DynamoDB returns items in no particular order; give them in the order asked.
        let position = |item: &Item| {
            item.key()
                .and_then(|k| unique.iter().position(|u| **u == k))
                .unwrap_or(usize::MAX)
        };
        found.sort_by_key(position);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellation_codes_map_to_port_reasons() {
        assert_eq!(cancel_reason(None), None);
        assert_eq!(cancel_reason(Some("None")), None);
        assert_eq!(
            cancel_reason(Some("ConditionalCheckFailed")),
            Some(CancelReason::ConditionalCheckFailed)
        );
        assert_eq!(
            cancel_reason(Some("TransactionConflict")),
            Some(CancelReason::Conflict)
        );
        assert_eq!(
            cancel_reason(Some("ThrottlingError")),
            Some(CancelReason::Other)
        );
        assert_eq!(
            cancel_reason(Some("ValidationError")),
            Some(CancelReason::Other)
        );
    }
}
