//! The context object (`$$`): facts about the execution, the current state, the task token and
//! the current Map item. Built lazily: `$$.Execution.Input…` and `$$.Map.Item.Value…` read the
//! values in place instead of copying them into a fresh object per state.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::env::ContextSource;
use super::path::{Path, Segment, select_segments};

/// Facts about one execution that do not change while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    /// The execution ARN (or local id).
    pub id: String,
    pub name: String,
    pub state_machine_id: String,
    pub state_machine_name: String,
    pub role_arn: String,
    pub start_time: DateTime<Utc>,
    pub input: Value,
}

/// The context of one state attempt.
#[derive(Debug, Clone, Copy)]
pub struct StateContext<'a> {
    pub execution: &'a ExecutionInfo,
    pub state_name: &'a str,
    pub entered_time: DateTime<Utc>,
    pub retry_count: u32,
    pub task_token: Option<&'a str>,
    /// Index and value of the current Map item, inside an item selector or iteration.
    pub map_item: Option<(usize, &'a Value)>,
}

/// Timestamps in the context object look like `2024-01-31T12:00:00.123Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl StateContext<'_> {
    /// The whole context object, for the rare paths that need more than one leaf.
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "Execution": {
                "Id": self.execution.id,
                "Input": self.execution.input,
                "Name": self.execution.name,
                "RoleArn": self.execution.role_arn,
                "StartTime": format_time(self.execution.start_time),
                "RedriveCount": 0,
            },
            "State": {
                "EnteredTime": format_time(self.entered_time),
                "Name": self.state_name,
                "RetryCount": self.retry_count,
            },
            "StateMachine": {
                "Id": self.execution.state_machine_id,
                "Name": self.execution.state_machine_name,
            },
        });
        if let Some(token) = self.task_token {
            v["Task"] = json!({ "Token": token });
        }
        if let Some((index, value)) = self.map_item {
            v["Map"] = json!({ "Item": { "Index": index, "Value": value } });
        }
        v
    }
}

fn field(segments: &[Segment], i: usize) -> Option<&str> {
    match segments.get(i) {
        Some(Segment::Field(f)) => Some(f.as_str()),
        _ => None,
    }
}

impl StateContext<'_> {
    /// One top-level section of the context object, without the (possibly large) execution
    /// input or Map item unless `with_bulk`.
    fn section(&self, name: &str, with_bulk: bool) -> Option<Value> {
        Some(match name {
            "Execution" => {
                let mut v = json!({
                    "Id": self.execution.id,
                    "Name": self.execution.name,
                    "RoleArn": self.execution.role_arn,
                    "StartTime": format_time(self.execution.start_time),
                    "RedriveCount": 0,
                });
                if with_bulk {
                    v["Input"] = self.execution.input.clone();
                }
                v
            }
            "State" => json!({
                "EnteredTime": format_time(self.entered_time),
                "Name": self.state_name,
                "RetryCount": self.retry_count,
            }),
            "StateMachine" => json!({
                "Id": self.execution.state_machine_id,
                "Name": self.execution.state_machine_name,
            }),
            "Task" => json!({ "Token": self.task_token? }),
            "Map" => {
                let (index, value) = self.map_item?;
                let mut item = json!({ "Index": index });
                if with_bulk {
                    item["Value"] = value.clone();
                }
                json!({ "Item": item })
            }
            _ => return None,
        })
    }
}

impl ContextSource for StateContext<'_> {
    fn select_context(&self, path: &Path) -> Option<Cow<'_, Value>> {
        let segments = path.segments();
        let definite = path.is_definite();
        match (field(segments, 0), field(segments, 1), field(segments, 2)) {
            (Some("Execution"), Some("Input"), _) => {
                select_segments(&segments[2..], definite, &self.execution.input)
            }
            (Some("Map"), Some("Item"), Some("Value")) => {
                let (_, value) = self.map_item?;
                select_segments(&segments[3..], definite, value)
            }
            (Some(section), rest, _) => {
                // Only a path that stops at the section (or at Map.Item) needs the bulk.
                let with_bulk = rest.is_none() || (section == "Map" && segments.len() == 2);
                let value = self.section(section, with_bulk)?;
                select_segments(&segments[1..], definite, &value)
                    .map(|v| Cow::Owned(v.into_owned()))
            }
            _ => {
                let whole = self.to_value();
                select_segments(segments, definite, &whole).map(|v| Cow::Owned(v.into_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_and_full_lookups_agree() {
        let exec = ExecutionInfo {
            id: "arn:exec".into(),
            name: "run-1".into(),
            state_machine_id: "arn:sm".into(),
            state_machine_name: "sm".into(),
            role_arn: "arn:role".into(),
            start_time: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
            input: json!({"batch": {"id": 7}}),
        };
        let item = json!({"n": 3});
        let ctx = StateContext {
            execution: &exec,
            state_name: "S",
            entered_time: DateTime::from_timestamp(1_700_000_001, 500_000_000).expect("valid"),
            retry_count: 2,
            task_token: Some("tok"),
            map_item: Some((4, &item)),
        };
        let get = |p: &str| {
            ctx.select_context(&Path::parse(p).expect("parses"))
                .map(Cow::into_owned)
        };
        assert_eq!(get("$$.Execution.Input.batch.id"), Some(json!(7)));
        assert_eq!(get("$$.Map.Item.Value.n"), Some(json!(3)));
        assert_eq!(get("$$.Map.Item.Index"), Some(json!(4)));
        assert_eq!(get("$$.Task.Token"), Some(json!("tok")));
        assert_eq!(get("$$.State.RetryCount"), Some(json!(2)));
        assert_eq!(
            get("$$.State.EnteredTime"),
            Some(json!("2023-11-14T22:13:21.500Z"))
        );
        assert_eq!(get("$$.Execution.Name"), Some(json!("run-1")));
        assert_eq!(get("$$.Nope"), None);
        assert_eq!(get("$$.Execution.Input"), Some(json!({"batch": {"id": 7}})));
        assert_eq!(
            get("$$.Execution").expect("exists").get("Input").cloned(),
            Some(json!({"batch": {"id": 7}}))
        );
        assert_eq!(
            get("$$.Map.Item"),
            Some(json!({"Index": 4, "Value": {"n": 3}}))
        );
        assert_eq!(get("$$.StateMachine.Name"), Some(json!("sm")));
        assert_eq!(
            get("$$").expect("exists").pointer("/Task/Token").cloned(),
            Some(json!("tok"))
        );
    }
}
