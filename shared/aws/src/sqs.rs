//! The `Queue` port on SQS (standard and FIFO queues).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use payops_app::ports::queue::{
    QUEUE_BATCH_MESSAGES_MAX, QUEUE_MESSAGE_BYTES_MAX, VISIBILITY_TIMEOUT_SECONDS_MAX,
};
use payops_app::ports::{OutgoingMessage, Queue, QueueError, ReceiveOptions, ReceivedMessage};

use crate::sdk_error::{Fault, classify};

/// SQS's limit on long polling.
pub const RECEIVE_WAIT_SECONDS_MAX: u32 = 20;
/// SQS's limit on a message's delay.
pub const DELAY_SECONDS_MAX: u32 = 900;
/// SQS's limit on the message attributes of one message.
pub const MESSAGE_ATTRIBUTES_MAX: usize = 10;
/// Region assumed for a queue URL when neither the client nor the URL names one
/// (`https://queue.amazonaws.com/…` is the legacy us-east-1 endpoint).
const DEFAULT_REGION: &str = "us-east-1";

/// The parts of a queue URL, `https://sqs.{region}.amazonaws.com/{account}/{name}`
/// (or any host, e.g. an emulator's `http://127.0.0.1:5000/{account}/{name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrlParts {
    pub account: String,
    pub name: String,
    /// The region named by the host, if it names one.
    pub region: Option<String>,
}

/// Splits a queue URL into account, name and (when the host says) region.
pub fn parse_queue_url(url: &str) -> Option<QueueUrlParts> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let mut parts = rest.trim_end_matches('/').split('/');
    let host = parts.next()?;
    let account = parts.next()?;
    let name = parts.next()?;
    let well_formed = parts.next().is_none()
        && !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty();
    if !well_formed {
        return None;
    }
    let region = host
        .strip_prefix("sqs.")
        .and_then(|h| h.split('.').next())
        .map(str::to_owned);
    Some(QueueUrlParts {
        account: account.to_owned(),
        name: name.to_owned(),
        region,
    })
}

/// One SQS queue, addressed by its URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    name: String,
    arn: String,
    fifo: bool,
}

impl SqsQueue {
    /// The name and ARN are derived from the URL and the client's region. A URL that is not
    /// a queue URL gives a queue whose name is the whole URL: every call then fails at SQS;
    /// [`crate::AwsEnv::queue`] checks the URL first.
    pub fn new(client: Client, queue_url: String) -> Self {
        let client_region = client.config().region().map(|r| r.as_ref().to_owned());
        let (name, arn) = match parse_queue_url(&queue_url) {
            Some(parts) => {
                let region = client_region
                    .or(parts.region)
                    .unwrap_or_else(|| DEFAULT_REGION.to_owned());
                let arn = format!("arn:aws:sqs:{region}:{}:{}", parts.account, parts.name);
                (parts.name, arn)
            }
            None => (queue_url.clone(), queue_url.clone()),
        };
        let fifo = name.ends_with(".fifo");
        SqsQueue {
            client,
            url: queue_url,
            name,
            arn,
            fifo,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn entry(
        &self,
        index: usize,
        m: OutgoingMessage,
    ) -> Result<SendMessageBatchRequestEntry, QueueError> {
        let invalid = |why: String| QueueError::Invalid(format!("message {index}: {why}"));
        if m.body.len() > QUEUE_MESSAGE_BYTES_MAX {
            return Err(invalid(format!(
                "body is {} bytes; at most {QUEUE_MESSAGE_BYTES_MAX}",
                m.body.len()
            )));
        }
        if m.attributes.len() > MESSAGE_ATTRIBUTES_MAX {
            return Err(invalid(format!(
                "{} attributes; at most {MESSAGE_ATTRIBUTES_MAX}",
                m.attributes.len()
            )));
        }
        if m.delay_seconds > DELAY_SECONDS_MAX {
            return Err(invalid(format!(
                "delay is {} s; at most {DELAY_SECONDS_MAX}",
                m.delay_seconds
            )));
        }
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(m.body);
        if self.fifo {
            if m.group_id.is_none() {
                return Err(invalid("a FIFO queue needs a group id".into()));
            }
            if m.delay_seconds > 0 {
                return Err(invalid("a FIFO queue takes no per-message delay".into()));
            }
            entry = entry
                .set_message_group_id(m.group_id)
                .set_message_deduplication_id(m.deduplication_id);
        } else if m.delay_seconds > 0 {
            entry = entry.delay_seconds(i32::try_from(m.delay_seconds).unwrap_or(i32::MAX));
        }
        for (name, value) in m.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            entry = entry.message_attributes(name, value);
        }
        entry.build().map_err(|e| invalid(e.to_string()))
    }
}

fn queue_error<E>(err: SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(err) {
        Fault::Unavailable(e) => QueueError::Unavailable(e),
        Fault::Rejected(m) => QueueError::Invalid(m),
    }
}

/// A response that lacks what SQS always sends.
#[derive(Debug, thiserror::Error)]
#[error("SQS response is malformed: {0}")]
struct Malformed(String);

fn malformed(why: impl Into<String>) -> QueueError {
    QueueError::Unavailable(Box::new(Malformed(why.into())))
}

/// Some entries of a batch were not sent.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} messages were not sent: {detail}")]
struct BatchFailed {
    failed: usize,
    total: usize,
    detail: String,
}

fn received(m: &Message) -> Result<ReceivedMessage, QueueError> {
    let system = m.attributes();
    let system_attr = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name)).cloned();
    let receive_count = system_attr(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or_else(|| malformed("no ApproximateReceiveCount"))?;
    let sent_at = system_attr(MessageSystemAttributeName::SentTimestamp)
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or_else(|| malformed("no SentTimestamp"))?;
    let attributes: BTreeMap<String, String> = m
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
        .collect();
    Ok(ReceivedMessage {
        message_id: m
            .message_id()
            .ok_or_else(|| malformed("no MessageId"))?
            .to_owned(),
        receipt_handle: m
            .receipt_handle()
            .ok_or_else(|| malformed("no ReceiptHandle"))?
            .to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        receive_count,
        sent_at,
        group_id: system_attr(MessageSystemAttributeName::MessageGroupId),
        deduplication_id: system_attr(MessageSystemAttributeName::MessageDeduplicationId),
        attributes,
    })
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn arn(&self) -> &str {
        &self.arn
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        if messages.len() > QUEUE_BATCH_MESSAGES_MAX {
            return Err(QueueError::Invalid(format!(
                "a batch has {} messages; at most {QUEUE_BATCH_MESSAGES_MAX}",
                messages.len()
            )));
        }
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let total = messages.len();
        let entries = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| self.entry(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(queue_error)?;
        if !out.failed.is_empty() {
            let detail = out
                .failed
                .iter()
                .map(|f| {
                    format!(
                        "message {}: {} {}",
                        f.id(),
                        f.code(),
                        f.message().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let err = BatchFailed {
                failed: out.failed.len(),
                total,
                detail,
            };
            // The sender's fault never passes on retry; anything else (throttling, an
            // internal error) may. Messages that were sent stay sent (at-least-once).
            return Err(if out.failed.iter().all(|f| f.sender_fault()) {
                QueueError::Invalid(err.to_string())
            } else {
                QueueError::Unavailable(Box::new(err))
            });
        }
        let mut ids = vec![None; total];
        for ok in &out.successful {
            if let Some(slot) = ok.id().parse::<usize>().ok().and_then(|i| ids.get_mut(i)) {
                *slot = Some(ok.message_id().to_owned());
            }
        }
        ids.into_iter()
            .enumerate()
            .map(|(i, id)| id.ok_or_else(|| malformed(format!("no result for message {i}"))))
            .collect()
    }

    async fn receive(&self, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError> {
        if !(1..=QUEUE_BATCH_MESSAGES_MAX).contains(&options.max_messages) {
            return Err(QueueError::Invalid(format!(
                "max_messages is {}; it must be 1..={QUEUE_BATCH_MESSAGES_MAX}",
                options.max_messages
            )));
        }
        if options.wait_seconds > RECEIVE_WAIT_SECONDS_MAX {
            return Err(QueueError::Invalid(format!(
                "wait_seconds is {}; at most {RECEIVE_WAIT_SECONDS_MAX}",
                options.wait_seconds
            )));
        }
        if let Some(v) = options.visibility_timeout_seconds {
            check_visibility(v)?;
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(to_i32(options.max_messages))
            .set_visibility_timeout(options.visibility_timeout_seconds.map(to_i32))
            .wait_time_seconds(to_i32(options.wait_seconds))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(queue_error)?;
        out.messages().iter().map(received).collect()
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        let result = self
            .client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(DeleteMessageError::ReceiptHandleIsInvalid(_)) => {
                    Err(QueueError::InvalidReceipt)
                }
                _ => Err(queue_error(e)),
            },
        }
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility_timeout_seconds: u32,
    ) -> Result<(), QueueError> {
        check_visibility(visibility_timeout_seconds)?;
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(to_i32(visibility_timeout_seconds))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(
                    ChangeMessageVisibilityError::ReceiptHandleIsInvalid(_)
                    | ChangeMessageVisibilityError::MessageNotInflight(_),
                ) => Err(QueueError::InvalidReceipt),
                _ => Err(queue_error(e)),
            },
        }
    }

    async fn approximate_depth(&self) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(queue_error)?;
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| malformed("no ApproximateNumberOfMessages"))
    }
}

fn check_visibility(seconds: u32) -> Result<(), QueueError> {
    if seconds > VISIBILITY_TIMEOUT_SECONDS_MAX {
        return Err(QueueError::Invalid(format!(
            "visibility timeout is {seconds} s; at most {VISIBILITY_TIMEOUT_SECONDS_MAX}"
        )));
    }
    Ok(())
}

/// Every value passed here is bounded by a port limit far below `i32::MAX`.
fn to_i32(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_give_account_name_and_region() {
        assert_eq!(
            parse_queue_url("https://sqs.sa-east-1.amazonaws.com/123456789012/payments.fifo"),
            Some(QueueUrlParts {
                account: "123456789012".into(),
                name: "payments.fifo".into(),
                region: Some("sa-east-1".into()),
            })
        );
        assert_eq!(
            parse_queue_url("http://127.0.0.1:5000/123456789012/q"),
            Some(QueueUrlParts {
                account: "123456789012".into(),
                name: "q".into(),
                region: None,
            })
        );
        for bad in [
            "",
            "sqs.us-east-1.amazonaws.com/1/q",
            "https://host/q",
            "https://host/acct/q",
            "https://host/1/q/extra",
            "https://host/1/",
        ] {
            assert_eq!(parse_queue_url(bad), None, "{bad}");
        }
    }
}
