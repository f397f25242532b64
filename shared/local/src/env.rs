//! `LocalEnv`: the [`Resources`] provider of the local runtime. It opens the embedded store and
//! creates the queues (with their dead-letter queues), tables and bucket notifications that
//! `template.yaml` declares, under the same logical ids.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use payops_app::ports::{Blobs, Clock, Events, Metrics, Queue, Table, Workflows};
use payops_app::resources::{QueueDef, ResourceError, Resources, TableDef, WEBHOOK_SECRET_ENV};
use payops_core::Secret;

use crate::queue::LocalQueue;
use crate::store::{DeadLetter, LocalStore, QueueConfig};
use crate::template::{Template, TemplateError};

/// The local data bucket's name (S3 events carry it).
pub const LOCAL_BUCKET: &str = "payops-local";
/// The local event bus's name.
pub const LOCAL_EVENT_BUS: &str = "payops-local";
/// Printed at `payops up` when `PAYOPS_WEBHOOK_SECRET` is not set. Never used in AWS, where the
/// template resolves the secret from Secrets Manager.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_dev_payops";
/// The key that masks user ids locally when PAYOPS_RECON_MASK_KEY is not set (development
/// only: with a known key, tokens of guessable ids can be recomputed).
pub const DEV_RECON_MASK_KEY: &str = "payops-dev-recon-mask-key";

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("local store at {dir}: {source}")]
    Store {
        dir: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub struct LocalEnv {
    pub store: LocalStore,
    pub template: Template,
    clock: Arc<dyn Clock>,
    data_dir: PathBuf,
    workflows: Option<Arc<dyn Workflows>>,
    /// Values `payops up` decides at start (the provider sandbox's URL), returned by
    /// `secret` ahead of the environment.
    settings: std::collections::BTreeMap<&'static str, String>,
}

impl LocalEnv {
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<LocalEnv, EnvError> {
        let template = Template::builtin()?;
        let store_err = |e: Box<dyn std::error::Error + Send + Sync>| EnvError::Store {
            dir: data_dir.to_owned(),
            source: e,
        };
        let store =
            LocalStore::open(data_dir, clock.clone()).map_err(|e| store_err(Box::new(e)))?;
        // Dead-letter queues first, so a redrive target always exists.
        let mut queues = template.queues.clone();
        queues.sort_by_key(|q| q.dead_letter.is_some());
        for q in &queues {
            store
                .queue(QueueConfig {
                    name: q.logical_id.clone(),
                    fifo: q.fifo,
                    visibility_timeout_seconds: q.visibility_timeout_seconds,
                    dead_letter: q.dead_letter.as_ref().map(|(dlq, count)| DeadLetter {
                        queue_name: dlq.clone(),
                        max_receive_count: *count,
                    }),
                })
                .map_err(|e| store_err(Box::new(e)))?;
        }
        let blobs = store.blobs(LOCAL_BUCKET);
        for n in &template.notifications {
            let target = store.queue_named(&n.queue).ok_or_else(|| {
                store_err(format!("notification target {} is not a queue", n.queue).into())
            })?;
            blobs.notify_on_create(&n.prefix, &n.suffix, target);
        }
        Ok(LocalEnv {
            store,
            template,
            clock,
            data_dir: data_dir.to_owned(),
            workflows: None,
            settings: std::collections::BTreeMap::new(),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Makes `secret(env_var)` return `value`, ahead of the environment.
    pub fn set_setting(&mut self, env_var: &'static str, value: String) {
        self.settings.insert(env_var, value);
    }

    pub fn set_workflows(&mut self, workflows: Arc<dyn Workflows>) {
        self.workflows = Some(workflows);
    }

    /// A queue declared in the template, by logical id.
    pub fn local_queue(&self, logical_id: &str) -> Option<Arc<LocalQueue>> {
        self.store.queue_named(logical_id)
    }
}

impl Resources for LocalEnv {
    fn table(&self, def: &TableDef) -> Result<Arc<dyn Table>, ResourceError> {
        self.store
            .table(def.spec(def.logical_id))
            .map_err(|e| ResourceError::Unavailable {
                name: def.logical_id.to_owned(),
                source: Box::new(e),
            })
    }

    fn queue(&self, def: &QueueDef) -> Result<Arc<dyn Queue>, ResourceError> {
        self.local_queue(def.logical_id)
            .map(|q| q as Arc<dyn Queue>)
            .ok_or_else(|| ResourceError::Unavailable {
                name: def.logical_id.to_owned(),
                source: "not declared in template.yaml".into(),
            })
    }

    fn blobs(&self) -> Result<Arc<dyn Blobs>, ResourceError> {
        Ok(self.store.blobs(LOCAL_BUCKET))
    }

    fn events(&self) -> Result<Arc<dyn Events>, ResourceError> {
        Ok(self.store.events(LOCAL_EVENT_BUS))
    }

    fn metrics(&self) -> Result<Arc<dyn Metrics>, ResourceError> {
        Ok(self.store.metrics())
    }

    fn workflows(&self) -> Result<Arc<dyn Workflows>, ResourceError> {
        self.workflows
            .clone()
            .ok_or_else(|| ResourceError::Unavailable {
                name: "workflows".into(),
                source: "the local workflow executor is not running in this process".into(),
            })
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    fn secret(&self, env_var: &'static str) -> Result<Secret<String>, ResourceError> {
        if let Some(v) = self.settings.get(env_var) {
            return Ok(Secret::new(v.clone()));
        }
        match std::env::var(env_var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ if env_var == WEBHOOK_SECRET_ENV => Ok(Secret::new(DEV_WEBHOOK_SECRET.to_owned())),
            _ if env_var == payops_app::recon::MASK_KEY_ENV => {
                Ok(Secret::new(DEV_RECON_MASK_KEY.to_owned()))
            }
            // Without a sandbox started by `payops up`, the client points at where
            // `payops sandbox` listens by default.
            _ if env_var == payops_app::ports::provider::PROVIDER_URL_ENV => Ok(Secret::new(
                format!("http://127.0.0.1:{}", crate::sandbox::DEFAULT_SANDBOX_PORT),
            )),
            _ if env_var == payops_app::ports::provider::PROVIDER_API_KEY_ENV => {
                Ok(Secret::new(crate::sandbox::DEV_PROVIDER_API_KEY.to_owned()))
            }
            _ => Err(ResourceError::MissingEnv(env_var)),
        }
    }
}
