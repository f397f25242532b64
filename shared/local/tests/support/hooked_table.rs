//! A table that hands every call to the real one, with hooks where a test steps in: before a
//! get or a query (to make something happen between two reads), before a put (to count
//! them) and around a transaction (to fail chosen ones, or to count the refused ones). Shared by the test binaries that need it:
//! `#[path = "support/hooked_table.rs"] mod hooked_table;`.

use std::sync::Arc;

use async_trait::async_trait;
use payops_app::ports::{
    Condition, Item, Key, Page, Query, Table, TableError, TableSpec, UpdateAction, Write,
};

/// What a test does at the table's seams; each hook passes the call on unless overridden.
#[async_trait]
pub trait TableHook: Send + Sync {
    /// Runs before `get` is passed on.
    async fn before_get(&self, _key: &Key) {}

    /// Runs before `query` is passed on; what it returns is passed on.
    async fn before_query(&self, query: Query) -> Query {
        query
    }

    /// Runs before `put` is passed on.
    async fn before_put(&self, _item: &Item, _condition: Option<&Condition>) {}

    /// Runs the transaction: by default on the real table, unchanged.
    async fn transact(&self, inner: &dyn Table, writes: Vec<Write>) -> Result<(), TableError> {
        inner.transact(writes).await
    }
}

pub struct HookedTable<H> {
    pub inner: Arc<dyn Table>,
    pub hook: H,
}

#[async_trait]
impl<H: TableHook> Table for HookedTable<H> {
    fn spec(&self) -> &TableSpec {
        self.inner.spec()
    }
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.hook.before_get(key).await;
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), TableError> {
        self.hook.before_put(&item, condition.as_ref()).await;
        self.inner.put(item, condition).await
    }
    async fn update(
        &self,
        key: &Key,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    ) -> Result<Item, TableError> {
        self.inner.update(key, actions, condition).await
    }
    async fn delete(
        &self,
        key: &Key,
        condition: Option<Condition>,
    ) -> Result<Option<Item>, TableError> {
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        let query = self.hook.before_query(query).await;
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.hook.transact(self.inner.as_ref(), writes).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, TableError> {
        self.inner.batch_get(keys).await
    }
}
