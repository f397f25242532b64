//! Receiving a file: the batch is created (idempotently, by its id) and its execution started
//! (idempotently, by name). Shared by the file picker, the upload and the submissions.

use payops_core::debts::{DEFAULT_FORMAT, builtin_named};
use serde_json::json;

use super::batch::{Batch, BatchStatus, Source};
use super::layout;
use super::{Debts, DebtsError};
use crate::ports::{Condition, TableError, WorkflowError};

impl Debts {
    /// The format a client's files are in (the default unless the client set one).
    pub async fn client_format(&self, client_id: &str) -> Result<String, DebtsError> {
        Ok(self
            .table
            .get(&layout::settings_key(client_id))
            .await?
            .and_then(|i| i.s("format").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_FORMAT.to_owned()))
    }

    /// Sets the format of a client's files (one of the shipped formats).
    pub async fn set_client_format(&self, client_id: &str, format: &str) -> Result<(), DebtsError> {
        if !layout::valid_client_id(client_id) {
            return Err(DebtsError::invalid(
                "client_id",
                "must be 1-64 letters, digits, '-', '_' or '.'",
            ));
        }
        builtin_named(format).map_err(|e| DebtsError::invalid("format", e.to_string()))?;
        let item = crate::ports::Item::new(&layout::settings_key(client_id))
            .with("format", format)
            .with("updated_at", self.clock.now().to_rfc3339());
        self.table.put(item, None).await?;
        Ok(())
    }

    /// Creates the batch for a stored file unless it exists, and starts its execution unless
    /// it is running or done. Safe to call again for the same `batch_id` (a redelivered S3
    /// event, a retried request).
    pub async fn receive_file(
        &self,
        batch_id: &str,
        client_id: &str,
        source: Source,
        format: Option<String>,
        file_keys: Vec<String>,
    ) -> Result<Batch, DebtsError> {
        let format = match format {
            Some(f) => f,
            None => self.client_format(client_id).await?,
        };
        let batch = Batch::new(
            batch_id.to_owned(),
            client_id.to_owned(),
            source,
            format,
            file_keys,
            self.clock.now(),
        );
        let batch = match self
            .table
            .put(batch.to_item(), Some(Condition::ItemNotExists))
            .await
        {
            Ok(()) => {
                tracing::info!(
                    batch_id,
                    client_id,
                    source = source.as_str(),
                    "debt batch received"
                );
                batch
            }
            Err(TableError::ConditionFailed) => self.require_batch(batch_id).await?,
            Err(e) => return Err(e.into()),
        };
        if batch.status == BatchStatus::Received {
            self.start_execution(&batch).await?;
        }
        Ok(batch)
    }

    async fn start_execution(&self, batch: &Batch) -> Result<(), DebtsError> {
        let input = json!({ "batch_id": batch.batch_id, "client_id": batch.client_id });
        match self
            .workflows
            .start_execution(&self.config.state_machine, &batch.batch_id, input)
            .await
        {
            Ok(_) | Err(WorkflowError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
