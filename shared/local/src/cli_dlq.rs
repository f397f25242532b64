//! `payops dlq list|redrive`: the dead-letter queues of the embedded store, for ops. Every
//! queue of `template.yaml` with a redrive policy has one; `list` shows what is in each
//! (without receiving it), `redrive` moves a dead-letter queue's messages back to the queue
//! they came from, to be handled again (the handlers are idempotent).

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use payops_app::ports::SystemClock;
use serde::Serialize;

use crate::env::LocalEnv;

/// Messages shown per dead-letter queue by default.
pub const LIST_DEFAULT: usize = 20;
/// Longest body excerpt shown (bodies can be large; `--json` shows them whole).
pub const BODY_EXCERPT_CHARS_MAX: usize = 160;

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Every dead-letter queue with its depth and first messages.
    List {
        /// Only this queue (the source queue's or the dead-letter queue's logical id).
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = LIST_DEFAULT)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Moves every message of a dead-letter queue back to its source queue.
    Redrive {
        /// The source queue's logical id (e.g. PayrollPaymentsQueue) or its dead-letter queue's.
        queue: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DlqCliError {
    #[error("no queue {0:?} with a dead-letter queue in template.yaml")]
    UnknownQueue(String),
    #[error("--limit must be 1 to {max}")]
    Limit { max: usize },
}

#[derive(Debug, Serialize)]
struct DlqView {
    queue: String,
    dead_letter_queue: String,
    max_receive_count: u32,
    depth: u64,
    messages: Vec<MessageView>,
}

#[derive(Debug, Serialize)]
struct MessageView {
    message_id: String,
    receive_count: u32,
    sent_at: String,
    body: String,
}

/// (source queue, dead-letter queue, max receive count) of every redrive policy.
fn pairs(env: &LocalEnv) -> Vec<(String, String, u32)> {
    env.template
        .queues
        .iter()
        .filter_map(|q| {
            q.dead_letter
                .as_ref()
                .map(|(dlq, n)| (q.logical_id.clone(), dlq.clone(), *n))
        })
        .collect()
}

pub async fn run(cmd: DlqCommand, data: &Path) -> Result<(), Box<dyn Error + Send + Sync>> {
    let env = LocalEnv::open(data, Arc::new(SystemClock))?;
    match cmd {
        DlqCommand::List { queue, limit, json } => {
            let max = crate::queue::PEEK_MESSAGES_MAX;
            if limit == 0 || limit > max {
                return Err(DlqCliError::Limit { max }.into());
            }
            let mut views = Vec::new();
            for (source, dlq, max_receive_count) in pairs(&env) {
                if queue.as_deref().is_some_and(|q| q != source && q != dlq) {
                    continue;
                }
                let Some(dead) = env.local_queue(&dlq) else {
                    continue;
                };
                let messages = dead.peek(limit).await?;
                views.push(DlqView {
                    queue: source,
                    dead_letter_queue: dlq,
                    max_receive_count,
                    depth: dead.total_messages().await?,
                    messages: messages
                        .into_iter()
                        .map(|m| MessageView {
                            message_id: m.message_id,
                            receive_count: m.receive_count,
                            sent_at: m.sent_at.to_rfc3339(),
                            body: m.body,
                        })
                        .collect(),
                });
            }
            if let Some(q) = &queue
                && views.is_empty()
            {
                return Err(DlqCliError::UnknownQueue(q.clone()).into());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                print_views(&views);
            }
        }
        DlqCommand::Redrive { queue } => {
            let (source, dlq, _) = pairs(&env)
                .into_iter()
                .find(|(s, d, _)| *s == queue || *d == queue)
                .ok_or_else(|| DlqCliError::UnknownQueue(queue.clone()))?;
            let (Some(to), Some(from)) = (env.local_queue(&source), env.local_queue(&dlq)) else {
                return Err(DlqCliError::UnknownQueue(queue).into());
            };
            let moved = from.redrive_all(&to).await?;
            println!("moved {moved} message(s) from {dlq} back to {source}");
        }
    }
    Ok(())
}

fn print_views(views: &[DlqView]) {
    for v in views {
        println!(
            "{} -> {} (after {} receives): {} message(s)",
            v.queue, v.dead_letter_queue, v.max_receive_count, v.depth
        );
        for m in &v.messages {
            // Bodies hold ids, never personal data (the messages name batches and rows).
            let excerpt: String = m.body.chars().take(BODY_EXCERPT_CHARS_MAX).collect();
            println!(
                "  {}  received {}x  sent {}  {}",
                m.message_id, m.receive_count, m.sent_at, excerpt
            );
        }
    }
}
