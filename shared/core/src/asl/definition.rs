//! The state machine model, parsed from its JSON definition with strict validation: unknown
//! fields and state types, missing or dangling transitions, unreachable states, bad paths,
//! templates, rules, retriers and catchers are rejected at load time, each error naming the
//! state and the field.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::choice::{Condition, parse_timestamp};
use super::intrinsic::{Intrinsic, looks_like_intrinsic};
use super::path::Path;
use super::resource::{Pattern, Resource, required_parameters};
use super::retry::{
    Catcher, DEFAULT_BACKOFF_RATE, DEFAULT_INTERVAL_SECONDS, DEFAULT_MAX_ATTEMPTS,
    INTERVAL_SECONDS_MAX, Jitter, MAX_ATTEMPTS_MAX, MAX_DELAY_SECONDS_MAX, Retrier,
    check_error_equals, whole_number,
};
use super::template::Template;

/// Step Functions' limit on state names.
pub const STATE_NAME_CHARS_MAX: usize = 80;
/// Largest `TimeoutSeconds`/`HeartbeatSeconds`/`Seconds` accepted.
pub const SECONDS_MAX: u64 = 99_999_999;
/// Deepest nesting of Parallel/Map blocks accepted.
pub const BLOCK_DEPTH_MAX: usize = 16;
/// Largest `MaxConcurrency`.
pub const MAX_CONCURRENCY_MAX: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    /// The state the error is in, when there is one.
    pub state: Option<String>,
    /// Where in the document: `States.Approve.Retry[0].BackoffRate`.
    pub location: String,
    pub reason: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(s) => write!(f, "state '{s}' ({}): {}", self.location, self.reason),
            None => write!(f, "{}: {}", self.location, self.reason),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub root: Block,
}

/// A `StartAt` + `States` scope: the top level, a Parallel branch or a Map item processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub start_at: usize,
    pub states: Vec<State>,
    index: HashMap<String, usize>,
}

impl Block {
    pub fn state(&self, index: usize) -> &State {
        &self.states[index]
    }
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
    pub fn start(&self) -> &State {
        &self.states[self.start_at]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub comment: Option<String>,
    /// `None` when the field is JSON null (the input becomes `{}`).
    pub input_path: Option<Path>,
    /// `None` when the field is JSON null (the output becomes `{}`).
    pub output_path: Option<Path>,
    /// The next state in the same block; `None` for `End: true` and for terminal states.
    pub next: Option<usize>,
    pub kind: StateKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StateType {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

impl StateType {
    pub fn name(self) -> &'static str {
        match self {
            StateType::Pass => "Pass",
            StateType::Task => "Task",
            StateType::Choice => "Choice",
            StateType::Wait => "Wait",
            StateType::Succeed => "Succeed",
            StateType::Fail => "Fail",
            StateType::Parallel => "Parallel",
            StateType::Map => "Map",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateKind {
    Pass(PassState),
    Task(Box<TaskState>),
    Choice(ChoiceState),
    Wait(WaitState),
    Succeed,
    Fail(FailState),
    Parallel(Box<ParallelState>),
    Map(Box<MapState>),
}

impl StateKind {
    pub fn state_type(&self) -> StateType {
        match self {
            StateKind::Pass(_) => StateType::Pass,
            StateKind::Task(_) => StateType::Task,
            StateKind::Choice(_) => StateType::Choice,
            StateKind::Wait(_) => StateType::Wait,
            StateKind::Succeed => StateType::Succeed,
            StateKind::Fail(_) => StateType::Fail,
            StateKind::Parallel(_) => StateType::Parallel,
            StateKind::Map(_) => StateType::Map,
        }
    }
}

/// Where a state's result goes.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultPath {
    /// `$` (the default): the result replaces the input.
    Replace,
    /// `null`: the result is discarded and the input passes through.
    Discard,
    /// The result is written into the input at this reference path.
    At(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Percentage {
    /// Exact: a percentage is compared, never rounded.
    Fixed(rust_decimal::Decimal),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Fixed(String),
    Path(Path),
    Intrinsic(Intrinsic),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PassState {
    pub parameters: Option<Template>,
    pub result: Option<Value>,
    pub result_path: ResultPath,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub resource: Resource,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub timeout: Option<Count>,
    pub heartbeat: Option<Count>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceState {
    pub choices: Vec<ChoiceRule>,
    pub default: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(u64),
    Timestamp(DateTime<FixedOffset>),
    SecondsPath(Path),
    TimestampPath(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitState {
    pub wait: WaitFor,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailState {
    pub error: Option<Text>,
    pub cause: Option<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParallelState {
    pub branches: Vec<Block>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMode {
    Inline,
    Distributed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderSource {
    /// `arn:aws:states:::s3:getObject`: the items are in one object.
    GetObject,
    /// `arn:aws:states:::s3:listObjectsV2`: one item per object under a prefix.
    ListObjects,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    Json,
    Jsonl,
    Csv,
    Manifest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CsvHeaders {
    FirstRow,
    Given(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemReader {
    pub source: ReaderSource,
    /// `Bucket` and `Key` (getObject) or `Prefix` (listObjectsV2).
    pub parameters: Template,
    pub input_type: Option<InputType>,
    pub csv_headers: CsvHeaders,
    pub csv_delimiter: u8,
    pub max_items: Option<Count>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemBatcher {
    pub max_items_per_batch: Option<Count>,
    pub max_input_bytes_per_batch: Option<Count>,
    pub batch_input: Option<Template>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResultWriter {
    /// `Bucket` and `Prefix`.
    pub parameters: Template,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    pub processor: Block,
    pub mode: MapMode,
    pub items_path: Path,
    pub item_selector: Option<Template>,
    /// 0 means no limit.
    pub max_concurrency: Count,
    pub tolerated_failure_percentage: Option<Percentage>,
    pub tolerated_failure_count: Option<Count>,
    pub item_reader: Option<ItemReader>,
    pub item_batcher: Option<ItemBatcher>,
    pub result_writer: Option<ResultWriter>,
    pub label: Option<String>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl StateMachine {
    /// Parses definition text (after `DefinitionSubstitutions` were applied).
    pub fn from_json_str(text: &str) -> Result<StateMachine, DefinitionError> {
        let value: Value = serde_json::from_str(text).map_err(|e| DefinitionError {
            state: None,
            location: format!("line {} column {}", e.line(), e.column()),
            reason: format!("not valid JSON: {e}"),
        })?;
        StateMachine::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<StateMachine, DefinitionError> {
        let top_err = |location: &str, reason: String| DefinitionError {
            state: None,
            location: location.to_owned(),
            reason,
        };
        let map = value
            .as_object()
            .ok_or_else(|| top_err("(root)", "the definition must be a JSON object".into()))?;
        for key in map.keys() {
            if ![
                "StartAt",
                "States",
                "Comment",
                "Version",
                "TimeoutSeconds",
                "QueryLanguage",
            ]
            .contains(&key.as_str())
            {
                return Err(top_err(key, format!("unknown top-level field '{key}'")));
            }
        }
        check_query_language(map).map_err(|r| top_err("QueryLanguage", r))?;
        if let Some(v) = map.get("Version")
            && !v.is_string()
        {
            return Err(top_err("Version", "'Version' must be a string".into()));
        }
        let timeout_seconds = match map.get("TimeoutSeconds") {
            Some(v) => Some(
                whole_number(v, "TimeoutSeconds", 1, SECONDS_MAX)
                    .map_err(|r| top_err("TimeoutSeconds", r))?,
            ),
            None => None,
        };
        let comment = optional_string(map, "Comment").map_err(|r| top_err("Comment", r))?;
        let root = parse_block(map, "", 0, false)?;
        Ok(StateMachine {
            comment,
            timeout_seconds,
            root,
        })
    }
}

/// Applies `DefinitionSubstitutions`: every `${Name}` with a known name is replaced by its value.
/// Unknown placeholders are an error (SAM would fail the deployment too).
pub fn substitute(
    text: &str,
    substitutions: &HashMap<String, String>,
) -> Result<String, DefinitionError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| DefinitionError {
            state: None,
            location: "DefinitionSubstitutions".into(),
            reason: "unterminated '${' placeholder".into(),
        })?;
        let name = &after[..end];
        let value = substitutions.get(name).ok_or_else(|| DefinitionError {
            state: None,
            location: "DefinitionSubstitutions".into(),
            reason: format!("no substitution is defined for '${{{name}}}'"),
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn check_query_language(map: &Map<String, Value>) -> Result<(), String> {
    match map.get("QueryLanguage") {
        None => Ok(()),
        Some(Value::String(s)) if s == "JSONPath" => Ok(()),
        Some(Value::String(s)) if s == "JSONata" => {
            Err("the JSONata query language is not supported; use JSONPath".into())
        }
        Some(other) => Err(format!("unknown QueryLanguage {other}")),
    }
}

fn optional_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("'{key}' must be a string")),
    }
}

/// Parses `StartAt` + `States` at `prefix` (`""` for the top level).
fn parse_block(
    map: &Map<String, Value>,
    prefix: &str,
    depth: usize,
    is_processor: bool,
) -> Result<Block, DefinitionError> {
    let loc = |field: &str| {
        if prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{prefix}.{field}")
        }
    };
    let err = |field: &str, reason: String| DefinitionError {
        state: None,
        location: loc(field),
        reason,
    };
    if depth > BLOCK_DEPTH_MAX {
        return Err(err(
            "States",
            format!("Parallel/Map blocks are nested more than {BLOCK_DEPTH_MAX} deep"),
        ));
    }
    if !prefix.is_empty() {
        for key in map.keys() {
            let ok = ["StartAt", "States", "Comment"].contains(&key.as_str())
                || (is_processor && key == "ProcessorConfig");
            if !ok {
                return Err(err(key, format!("unknown field '{key}'")));
            }
        }
    }
    let start_name = map.get("StartAt").and_then(Value::as_str).ok_or_else(|| {
        err(
            "StartAt",
            "'StartAt' is required and must be a string".into(),
        )
    })?;
    let states_map = map
        .get("States")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            err(
                "States",
                "'States' is required and must be a non-empty object".into(),
            )
        })?;
    let names: HashMap<String, usize> = states_map
        .keys()
        .enumerate()
        .map(|(i, k)| (k.clone(), i))
        .collect();
    let start_at = *names.get(start_name).ok_or_else(|| {
        err(
            "StartAt",
            format!("'StartAt' names '{start_name}', which is not a state in this scope"),
        )
    })?;
    let mut states = Vec::with_capacity(states_map.len());
    for (name, body) in states_map {
        let ctx = StateCtx {
            name,
            location: loc(&format!("States.{name}")),
            names: &names,
            depth,
        };
        states.push(ctx.parse(body)?);
    }
    let block = Block {
        start_at,
        states,
        index: names,
    };
    check_reachable(&block, prefix)?;
    Ok(block)
}

fn successors(state: &State) -> Vec<usize> {
    let mut out: Vec<usize> = state.next.into_iter().collect();
    match &state.kind {
        StateKind::Choice(c) => {
            out.extend(c.choices.iter().map(|r| r.next));
            out.extend(c.default);
        }
        StateKind::Task(t) => out.extend(t.catch.iter().map(|c| c.next)),
        StateKind::Parallel(p) => out.extend(p.catch.iter().map(|c| c.next)),
        StateKind::Map(m) => out.extend(m.catch.iter().map(|c| c.next)),
        _ => {}
    }
    out
}

fn check_reachable(block: &Block, prefix: &str) -> Result<(), DefinitionError> {
    let mut seen = vec![false; block.states.len()];
    let mut stack = vec![block.start_at];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        stack.extend(successors(&block.states[i]));
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        let name = &block.states[i].name;
        return Err(DefinitionError {
            state: Some(name.clone()),
            location: if prefix.is_empty() {
                format!("States.{name}")
            } else {
                format!("{prefix}.States.{name}")
            },
            reason: "the state is not reachable from StartAt".into(),
        });
    }
    Ok(())
}

struct StateCtx<'a> {
    name: &'a str,
    location: String,
    names: &'a HashMap<String, usize>,
    depth: usize,
}

const COMMON_FIELDS: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed_fields(t: StateType) -> &'static [&'static str] {
    match t {
        StateType::Pass => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "Result",
        ],
        StateType::Task => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ],
        StateType::Choice => &["Choices", "Default", "InputPath", "OutputPath"],
        StateType::Wait => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
        ],
        StateType::Succeed => &["InputPath", "OutputPath"],
        StateType::Fail => &["Error", "Cause", "ErrorPath", "CausePath"],
        StateType::Parallel => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Branches",
        ],
        StateType::Map => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "ItemSelector",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
        ],
    }
}

fn parse_type(text: &str) -> Option<StateType> {
    Some(match text {
        "Pass" => StateType::Pass,
        "Task" => StateType::Task,
        "Choice" => StateType::Choice,
        "Wait" => StateType::Wait,
        "Succeed" => StateType::Succeed,
        "Fail" => StateType::Fail,
        "Parallel" => StateType::Parallel,
        "Map" => StateType::Map,
        _ => return None,
    })
}

impl StateCtx<'_> {
    fn err(&self, field: &str, reason: impl Into<String>) -> DefinitionError {
        DefinitionError {
            state: Some(self.name.to_owned()),
            location: if field.is_empty() {
                self.location.clone()
            } else {
                format!("{}.{field}", self.location)
            },
            reason: reason.into(),
        }
    }

    fn target(&self, field: &str, name: &Value) -> Result<usize, DefinitionError> {
        let name = name
            .as_str()
            .ok_or_else(|| self.err(field, format!("'{field}' must be a state name")))?;
        self.names.get(name).copied().ok_or_else(|| {
            self.err(
                field,
                format!("'{field}' names '{name}', which is not a state in this scope"),
            )
        })
    }

    fn parse(&self, body: &Value) -> Result<State, DefinitionError> {
        let n = self.name.chars().count();
        if n == 0 || n > STATE_NAME_CHARS_MAX {
            return Err(self.err(
                "",
                format!("a state name must be 1 to {STATE_NAME_CHARS_MAX} characters"),
            ));
        }
        let map = body
            .as_object()
            .ok_or_else(|| self.err("", "a state must be a JSON object"))?;
        let type_text = map
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| self.err("Type", "'Type' is required and must be a string"))?;
        let state_type = parse_type(type_text).ok_or_else(|| {
            self.err(
                "Type",
                format!(
                    "unknown state type '{type_text}' (expected Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)"
                ),
            )
        })?;
        let allowed = allowed_fields(state_type);
        for key in map.keys() {
            if COMMON_FIELDS.contains(&key.as_str()) || allowed.contains(&key.as_str()) {
                continue;
            }
            let hint = match key.as_str() {
                "Assign" => " (workflow variables are not supported)",
                "Arguments" | "Output" => " (JSONata fields are not supported; use JSONPath)",
                _ => "",
            };
            return Err(self.err(
                key,
                format!("field '{key}' is not allowed in a {type_text} state{hint}"),
            ));
        }
        check_query_language(map).map_err(|r| self.err("QueryLanguage", r))?;
        let comment = optional_string(map, "Comment").map_err(|r| self.err("Comment", r))?;
        let next = self.transition(map, state_type)?;
        let input_path = self.path_field(map, "InputPath")?;
        let output_path = self.path_field(map, "OutputPath")?;
        let kind = match state_type {
            StateType::Pass => StateKind::Pass(self.pass(map)?),
            StateType::Task => StateKind::Task(Box::new(self.task(map)?)),
            StateType::Choice => StateKind::Choice(self.choice(map)?),
            StateType::Wait => StateKind::Wait(self.wait(map)?),
            StateType::Succeed => StateKind::Succeed,
            StateType::Fail => StateKind::Fail(self.fail(map)?),
            StateType::Parallel => StateKind::Parallel(Box::new(self.parallel(map)?)),
            StateType::Map => StateKind::Map(Box::new(self.map(map)?)),
        };
        Ok(State {
            name: self.name.to_owned(),
            comment,
            input_path,
            output_path,
            next,
            kind,
        })
    }

    fn transition(
        &self,
        map: &Map<String, Value>,
        t: StateType,
    ) -> Result<Option<usize>, DefinitionError> {
        if matches!(t, StateType::Choice | StateType::Succeed | StateType::Fail) {
            return Ok(None);
        }
        let end = match map.get("End") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(self.err("End", "'End' must be a boolean")),
        };
        match (map.get("Next"), end) {
            (Some(_), true) => {
                Err(self.err("Next", "a state cannot have both 'Next' and 'End: true'"))
            }
            (Some(next), false) => self.target("Next", next).map(Some),
            (None, true) => Ok(None),
            (None, false) => Err(self.err(
                "",
                format!("a {} state needs 'Next' or 'End: true'", t.name()),
            )),
        }
    }

    /// InputPath/OutputPath: absent means `$`, null means "empty object".
    fn path_field(
        &self,
        map: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<Path>, DefinitionError> {
        match map.get(key) {
            None => Ok(Some(Path::root_input())),
            Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Path::parse(s)
                .map(Some)
                .map_err(|e| self.err(key, e.to_string())),
            Some(_) => Err(self.err(key, format!("'{key}' must be a path string or null"))),
        }
    }

    fn reference_path(
        &self,
        key: &str,
        v: &Value,
        allow_context: bool,
    ) -> Result<Path, DefinitionError> {
        let text = v
            .as_str()
            .ok_or_else(|| self.err(key, format!("'{key}' must be a path string")))?;
        Path::parse_reference(text, allow_context).map_err(|e| self.err(key, e.to_string()))
    }

    fn result_path(
        &self,
        map: &Map<String, Value>,
        key: &str,
    ) -> Result<ResultPath, DefinitionError> {
        result_path_of(map.get(key)).map_err(|r| self.err(key, r))
    }

    fn template(
        &self,
        map: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<Template>, DefinitionError> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => Template::compile(v).map(Some).map_err(|r| self.err(key, r)),
        }
    }

    fn object_template(
        &self,
        map: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<Template>, DefinitionError> {
        if let Some(v) = map.get(key)
            && !v.is_object()
        {
            return Err(self.err(key, format!("'{key}' must be a JSON object")));
        }
        self.template(map, key)
    }

    fn pass(&self, map: &Map<String, Value>) -> Result<PassState, DefinitionError> {
        Ok(PassState {
            parameters: self.template(map, "Parameters")?,
            result: map.get("Result").cloned(),
            result_path: self.result_path(map, "ResultPath")?,
        })
    }

    fn seconds(
        &self,
        map: &Map<String, Value>,
        fixed: &str,
        path: &str,
    ) -> Result<Option<Count>, DefinitionError> {
        match (map.get(fixed), map.get(path)) {
            (Some(_), Some(_)) => {
                Err(self.err(fixed, format!("'{fixed}' and '{path}' cannot both be set")))
            }
            (Some(v), None) => whole_number(v, fixed, 1, SECONDS_MAX)
                .map(|s| Some(Count::Fixed(s)))
                .map_err(|r| self.err(fixed, r)),
            (None, Some(v)) => self
                .reference_path(path, v, true)
                .map(|p| Some(Count::Path(p))),
            (None, None) => Ok(None),
        }
    }

    fn task(&self, map: &Map<String, Value>) -> Result<TaskState, DefinitionError> {
        let arn = map
            .get("Resource")
            .and_then(Value::as_str)
            .ok_or_else(|| self.err("Resource", "'Resource' is required and must be a string"))?;
        let resource = Resource::parse(arn).map_err(|r| self.err("Resource", r))?;
        let parameters = self.object_template(map, "Parameters")?;
        for required in required_parameters(&resource.service) {
            let present = map
                .get("Parameters")
                .and_then(Value::as_object)
                .is_some_and(|p| {
                    p.contains_key(*required) || p.contains_key(&format!("{required}.$"))
                });
            if !present {
                return Err(self.err(
                    "Parameters",
                    format!("'{}' requires the parameter '{required}'", resource.arn),
                ));
            }
        }
        if resource.pattern == Pattern::WaitForTaskToken
            && !parameters
                .as_ref()
                .is_some_and(Template::references_task_token)
        {
            return Err(self.err(
                "Parameters",
                "a .waitForTaskToken task must pass '$$.Task.Token' in its Parameters",
            ));
        }
        let timeout = self.seconds(map, "TimeoutSeconds", "TimeoutSecondsPath")?;
        let heartbeat = self.seconds(map, "HeartbeatSeconds", "HeartbeatSecondsPath")?;
        if let (Some(Count::Fixed(t)), Some(Count::Fixed(h))) = (&timeout, &heartbeat)
            && h >= t
        {
            return Err(self.err(
                "HeartbeatSeconds",
                format!("'HeartbeatSeconds' ({h}) must be smaller than 'TimeoutSeconds' ({t})"),
            ));
        }
        Ok(TaskState {
            resource,
            parameters,
            result_selector: self.object_template(map, "ResultSelector")?,
            result_path: self.result_path(map, "ResultPath")?,
            retry: self.retriers(map)?,
            catch: self.catchers(map)?,
            timeout,
            heartbeat,
        })
    }

    fn retriers(&self, map: &Map<String, Value>) -> Result<Vec<Retrier>, DefinitionError> {
        let Some(v) = map.get("Retry") else {
            return Ok(Vec::new());
        };
        let list = v
            .as_array()
            .ok_or_else(|| self.err("Retry", "'Retry' must be an array"))?;
        let mut out = Vec::with_capacity(list.len());
        for (i, r) in list.iter().enumerate() {
            let at = format!("Retry[{i}]");
            let retrier = self.retrier(r).map_err(|(f, reason)| {
                self.err(
                    &if f.is_empty() {
                        at.clone()
                    } else {
                        format!("{at}.{f}")
                    },
                    reason,
                )
            })?;
            if retrier.error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
                return Err(self.err(&at, "a retrier with 'States.ALL' must be the last one"));
            }
            out.push(retrier);
        }
        Ok(out)
    }

    fn retrier(&self, v: &Value) -> Result<Retrier, (String, String)> {
        let e = |f: &str, r: String| (f.to_owned(), r);
        let map = v
            .as_object()
            .ok_or_else(|| e("", "a retrier must be an object".into()))?;
        for key in map.keys() {
            if ![
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ]
            .contains(&key.as_str())
            {
                return Err(e(key, format!("unknown retrier field '{key}'")));
            }
        }
        let error_equals = error_equals(map).map_err(|r| e("ErrorEquals", r))?;
        let interval_seconds = match map.get("IntervalSeconds") {
            Some(v) => whole_number(v, "IntervalSeconds", 1, INTERVAL_SECONDS_MAX)
                .map_err(|r| e("IntervalSeconds", r))?,
            None => DEFAULT_INTERVAL_SECONDS,
        };
        let max_attempts = match map.get("MaxAttempts") {
            Some(v) => whole_number(v, "MaxAttempts", 0, u64::from(MAX_ATTEMPTS_MAX))
                .map_err(|r| e("MaxAttempts", r))? as u32,
            None => DEFAULT_MAX_ATTEMPTS,
        };
        let backoff_rate = match map.get("BackoffRate") {
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|r| *r >= 1.0 && r.is_finite())
                .ok_or_else(|| {
                    e(
                        "BackoffRate",
                        format!("'BackoffRate' must be a number of at least 1.0, got {n}"),
                    )
                })?,
            Some(other) => {
                return Err(e(
                    "BackoffRate",
                    format!("'BackoffRate' must be a number, got {other}"),
                ));
            }
            None => DEFAULT_BACKOFF_RATE,
        };
        let max_delay_seconds = match map.get("MaxDelaySeconds") {
            Some(v) => Some(
                whole_number(v, "MaxDelaySeconds", 1, MAX_DELAY_SECONDS_MAX)
                    .map_err(|r| e("MaxDelaySeconds", r))?,
            ),
            None => None,
        };
        let jitter = match map.get("JitterStrategy").map(|v| v.as_str()) {
            None | Some(Some("NONE")) => Jitter::None,
            Some(Some("FULL")) => Jitter::Full,
            Some(_) => {
                return Err(e(
                    "JitterStrategy",
                    "'JitterStrategy' must be \"FULL\" or \"NONE\"".into(),
                ));
            }
        };
        Ok(Retrier {
            error_equals,
            interval_seconds,
            max_attempts,
            backoff_rate,
            max_delay_seconds,
            jitter,
        })
    }

    fn catchers(&self, map: &Map<String, Value>) -> Result<Vec<Catcher>, DefinitionError> {
        let Some(v) = map.get("Catch") else {
            return Ok(Vec::new());
        };
        let list = v
            .as_array()
            .ok_or_else(|| self.err("Catch", "'Catch' must be an array"))?;
        let mut out = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            let at = format!("Catch[{i}]");
            let m = c
                .as_object()
                .ok_or_else(|| self.err(&at, "a catcher must be an object"))?;
            for key in m.keys() {
                if !["ErrorEquals", "Next", "ResultPath", "Comment"].contains(&key.as_str()) {
                    let hint = if key == "Assign" || key == "Output" {
                        " (not supported)"
                    } else {
                        ""
                    };
                    return Err(self.err(
                        &format!("{at}.{key}"),
                        format!("unknown catcher field '{key}'{hint}"),
                    ));
                }
            }
            let error_equals =
                error_equals(m).map_err(|r| self.err(&format!("{at}.ErrorEquals"), r))?;
            if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
                return Err(self.err(&at, "a catcher with 'States.ALL' must be the last one"));
            }
            let next_value = m
                .get("Next")
                .ok_or_else(|| self.err(&format!("{at}.Next"), "a catcher needs 'Next'"))?;
            let next = self.target(&format!("{at}.Next"), next_value)?;
            let result_path = match result_path_of(m.get("ResultPath"))
                .map_err(|r| self.err(&format!("{at}.ResultPath"), r))?
            {
                ResultPath::Replace => Some(Path::root_input()),
                ResultPath::Discard => None,
                ResultPath::At(p) => Some(p),
            };
            out.push(Catcher {
                error_equals,
                next,
                next_name: next_value.as_str().unwrap_or_default().to_owned(),
                result_path,
            });
        }
        Ok(out)
    }

    fn choice(&self, map: &Map<String, Value>) -> Result<ChoiceState, DefinitionError> {
        let list = map
            .get("Choices")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                self.err(
                    "Choices",
                    "'Choices' is required and must be a non-empty array",
                )
            })?;
        let mut choices = Vec::with_capacity(list.len());
        for (i, rule) in list.iter().enumerate() {
            let at = format!("Choices[{i}]");
            let obj = rule
                .as_object()
                .ok_or_else(|| self.err(&at, "a choice rule must be an object"))?;
            let next_value = obj.get("Next").ok_or_else(|| {
                self.err(
                    &format!("{at}.Next"),
                    "a top-level choice rule needs 'Next'",
                )
            })?;
            let next = self.target(&format!("{at}.Next"), next_value)?;
            let mut rule_only = obj.clone();
            rule_only.remove("Next");
            if rule_only.contains_key("Assign") {
                return Err(self.err(
                    &format!("{at}.Assign"),
                    "workflow variables are not supported",
                ));
            }
            let condition = Condition::parse(&rule_only).map_err(|r| self.err(&at, r))?;
            choices.push(ChoiceRule { condition, next });
        }
        let default = match map.get("Default") {
            Some(v) => Some(self.target("Default", v)?),
            None => None,
        };
        Ok(ChoiceState { choices, default })
    }

    fn wait(&self, map: &Map<String, Value>) -> Result<WaitState, DefinitionError> {
        let set: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| map.contains_key(*k))
            .collect();
        let [key] = set.as_slice() else {
            return Err(self.err(
                "",
                "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath",
            ));
        };
        let v = &map[*key];
        let wait = match *key {
            "Seconds" => WaitFor::Seconds(
                whole_number(v, "Seconds", 0, SECONDS_MAX).map_err(|r| self.err("Seconds", r))?,
            ),
            "Timestamp" => {
                let ts = v
                    .as_str()
                    .and_then(parse_timestamp)
                    .ok_or_else(|| self.err("Timestamp", format!("'Timestamp' must be an RFC 3339 timestamp such as 2024-01-31T12:00:00Z, got {v}")))?;
                WaitFor::Timestamp(ts)
            }
            "SecondsPath" => WaitFor::SecondsPath(self.reference_path("SecondsPath", v, true)?),
            _ => WaitFor::TimestampPath(self.reference_path("TimestampPath", v, true)?),
        };
        Ok(WaitState { wait })
    }

    fn text(
        &self,
        map: &Map<String, Value>,
        fixed: &str,
        path: &str,
    ) -> Result<Option<Text>, DefinitionError> {
        match (map.get(fixed), map.get(path)) {
            (Some(_), Some(_)) => {
                Err(self.err(fixed, format!("'{fixed}' and '{path}' cannot both be set")))
            }
            (Some(Value::String(s)), None) => Ok(Some(Text::Fixed(s.clone()))),
            (Some(_), None) => Err(self.err(fixed, format!("'{fixed}' must be a string"))),
            (None, Some(Value::String(s))) => {
                if looks_like_intrinsic(s) {
                    Intrinsic::parse(s)
                        .map(|c| Some(Text::Intrinsic(c)))
                        .map_err(|r| self.err(path, r))
                } else {
                    Path::parse(s)
                        .map(|p| Some(Text::Path(p)))
                        .map_err(|e| self.err(path, e.to_string()))
                }
            }
            (None, Some(_)) => Err(self.err(path, format!("'{path}' must be a path string"))),
            (None, None) => Ok(None),
        }
    }

    fn fail(&self, map: &Map<String, Value>) -> Result<FailState, DefinitionError> {
        Ok(FailState {
            error: self.text(map, "Error", "ErrorPath")?,
            cause: self.text(map, "Cause", "CausePath")?,
        })
    }

    fn parallel(&self, map: &Map<String, Value>) -> Result<ParallelState, DefinitionError> {
        let list = map
            .get("Branches")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                self.err(
                    "Branches",
                    "'Branches' is required and must be a non-empty array",
                )
            })?;
        let mut branches = Vec::with_capacity(list.len());
        for (i, b) in list.iter().enumerate() {
            let at = format!("{}.Branches[{i}]", self.location);
            let obj = b
                .as_object()
                .ok_or_else(|| self.err(&format!("Branches[{i}]"), "a branch must be an object"))?;
            branches.push(parse_block(obj, &at, self.depth + 1, false)?);
        }
        Ok(ParallelState {
            branches,
            parameters: self.template(map, "Parameters")?,
            result_selector: self.object_template(map, "ResultSelector")?,
            result_path: self.result_path(map, "ResultPath")?,
            retry: self.retriers(map)?,
            catch: self.catchers(map)?,
        })
    }

    fn count_field(
        &self,
        map: &Map<String, Value>,
        fixed: &str,
        path: &str,
        max: u64,
    ) -> Result<Option<Count>, DefinitionError> {
        match (map.get(fixed), map.get(path)) {
            (Some(_), Some(_)) => {
                Err(self.err(fixed, format!("'{fixed}' and '{path}' cannot both be set")))
            }
            (Some(v), None) => whole_number(v, fixed, 0, max)
                .map(|n| Some(Count::Fixed(n)))
                .map_err(|r| self.err(fixed, r)),
            (None, Some(v)) => self
                .reference_path(path, v, true)
                .map(|p| Some(Count::Path(p))),
            (None, None) => Ok(None),
        }
    }

    fn map(&self, map: &Map<String, Value>) -> Result<MapState, DefinitionError> {
        let (proc_key, proc_value) = match (map.get("ItemProcessor"), map.get("Iterator")) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "ItemProcessor",
                    "use 'ItemProcessor' or the older 'Iterator', not both",
                ));
            }
            (Some(v), None) => ("ItemProcessor", v),
            (None, Some(v)) => ("Iterator", v),
            (None, None) => {
                return Err(self.err("ItemProcessor", "a Map state needs 'ItemProcessor'"));
            }
        };
        let proc_obj = proc_value
            .as_object()
            .ok_or_else(|| self.err(proc_key, format!("'{proc_key}' must be an object")))?;
        let mode = processor_mode(proc_obj)
            .map_err(|r| self.err(&format!("{proc_key}.ProcessorConfig"), r))?;
        let processor = parse_block(
            proc_obj,
            &format!("{}.{proc_key}", self.location),
            self.depth + 1,
            true,
        )?;
        let item_selector = match (map.get("ItemSelector"), map.get("Parameters")) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "ItemSelector",
                    "use 'ItemSelector' or the older 'Parameters', not both",
                ));
            }
            (Some(_), None) => self.object_template(map, "ItemSelector")?,
            (None, Some(_)) => self.object_template(map, "Parameters")?,
            (None, None) => None,
        };
        let items_path = match map.get("ItemsPath") {
            Some(v) => self.reference_path("ItemsPath", v, true)?,
            None => Path::root_input(),
        };
        let max_concurrency = self
            .count_field(
                map,
                "MaxConcurrency",
                "MaxConcurrencyPath",
                MAX_CONCURRENCY_MAX,
            )?
            .unwrap_or(Count::Fixed(0));
        let tolerated_failure_percentage = match (map.get("ToleratedFailurePercentage"), map.get("ToleratedFailurePercentagePath")) {
            (Some(_), Some(_)) => return Err(self.err("ToleratedFailurePercentage", "'ToleratedFailurePercentage' and 'ToleratedFailurePercentagePath' cannot both be set")),
            (Some(v), None) => Some(Percentage::Fixed(
                crate::asl::engine::percentage_of(v)
                    .ok_or_else(|| self.err("ToleratedFailurePercentage", format!("'ToleratedFailurePercentage' must be a number from 0 to 100, got {v}")))?,
            )),
            (None, Some(v)) => Some(Percentage::Path(self.reference_path("ToleratedFailurePercentagePath", v, true)?)),
            (None, None) => None,
        };
        let tolerated_failure_count = self.count_field(
            map,
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            u64::MAX,
        )?;
        let item_reader = match map.get("ItemReader") {
            Some(v) => Some(
                self.item_reader(v)
                    .map_err(|(f, r)| self.err(&format!("ItemReader{f}"), r))?,
            ),
            None => None,
        };
        let result_writer = match map.get("ResultWriter") {
            Some(v) => Some(
                self.result_writer(v)
                    .map_err(|(f, r)| self.err(&format!("ResultWriter{f}"), r))?,
            ),
            None => None,
        };
        let item_batcher = match map.get("ItemBatcher") {
            Some(v) => Some(
                self.item_batcher(v)
                    .map_err(|(f, r)| self.err(&format!("ItemBatcher{f}"), r))?,
            ),
            None => None,
        };
        if mode == MapMode::Inline {
            for (key, present) in [
                ("ItemReader", item_reader.is_some()),
                ("ResultWriter", result_writer.is_some()),
                ("ItemBatcher", item_batcher.is_some()),
            ] {
                if present {
                    return Err(self.err(
                        key,
                        format!("'{key}' needs ProcessorConfig.Mode DISTRIBUTED"),
                    ));
                }
            }
        }
        let label = optional_string(map, "Label").map_err(|r| self.err("Label", r))?;
        Ok(MapState {
            processor,
            mode,
            items_path,
            item_selector,
            max_concurrency,
            tolerated_failure_percentage,
            tolerated_failure_count,
            item_reader,
            item_batcher,
            result_writer,
            label,
            result_selector: self.object_template(map, "ResultSelector")?,
            result_path: self.result_path(map, "ResultPath")?,
            retry: self.retriers(map)?,
            catch: self.catchers(map)?,
        })
    }

    fn item_reader(&self, v: &Value) -> Result<ItemReader, (String, String)> {
        let e = |f: &str, r: String| {
            (
                if f.is_empty() {
                    String::new()
                } else {
                    format!(".{f}")
                },
                r,
            )
        };
        let map = v
            .as_object()
            .ok_or_else(|| e("", "'ItemReader' must be an object".into()))?;
        for key in map.keys() {
            if !["Resource", "Parameters", "ReaderConfig"].contains(&key.as_str()) {
                return Err(e(key, format!("unknown ItemReader field '{key}'")));
            }
        }
        let source = match map.get("Resource").and_then(Value::as_str) {
            Some("arn:aws:states:::s3:getObject") => ReaderSource::GetObject,
            Some("arn:aws:states:::s3:listObjectsV2") => ReaderSource::ListObjects,
            other => {
                return Err(e(
                    "Resource",
                    format!(
                        "the ItemReader resource must be arn:aws:states:::s3:getObject or arn:aws:states:::s3:listObjectsV2, got {other:?}"
                    ),
                ));
            }
        };
        let params_value = map
            .get("Parameters")
            .filter(|p| p.is_object())
            .ok_or_else(|| {
                e(
                    "Parameters",
                    "'Parameters' with 'Bucket' is required".into(),
                )
            })?;
        let params_obj = params_value
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        let has = |k: &str| params_obj.iter().any(|p| p == k || *p == format!("{k}.$"));
        if !has("Bucket") {
            return Err(e("Parameters", "'Bucket' is required".into()));
        }
        if source == ReaderSource::GetObject && !has("Key") {
            return Err(e("Parameters", "'Key' is required for s3:getObject".into()));
        }
        let parameters = Template::compile(params_value).map_err(|r| e("Parameters", r))?;
        let mut input_type = None;
        let mut csv_headers = CsvHeaders::FirstRow;
        let mut csv_delimiter = b',';
        let mut max_items = None;
        if let Some(cfg) = map.get("ReaderConfig") {
            let cfg = cfg
                .as_object()
                .ok_or_else(|| e("ReaderConfig", "'ReaderConfig' must be an object".into()))?;
            for key in cfg.keys() {
                if ![
                    "InputType",
                    "CSVHeaderLocation",
                    "CSVHeaders",
                    "CSVDelimiter",
                    "MaxItems",
                    "MaxItemsPath",
                ]
                .contains(&key.as_str())
                {
                    return Err(e(
                        &format!("ReaderConfig.{key}"),
                        format!("unknown ReaderConfig field '{key}'"),
                    ));
                }
            }
            input_type = match cfg.get("InputType").map(|v| v.as_str()) {
                None => None,
                Some(Some("JSON")) => Some(InputType::Json),
                Some(Some("JSONL")) => Some(InputType::Jsonl),
                Some(Some("CSV")) => Some(InputType::Csv),
                Some(Some("MANIFEST")) => Some(InputType::Manifest),
                Some(_) => {
                    return Err(e(
                        "ReaderConfig.InputType",
                        "'InputType' must be JSON, JSONL, CSV or MANIFEST".into(),
                    ));
                }
            };
            csv_headers = match (
                cfg.get("CSVHeaderLocation").map(|v| v.as_str()),
                cfg.get("CSVHeaders"),
            ) {
                (None | Some(Some("FIRST_ROW")), None) => CsvHeaders::FirstRow,
                (Some(Some("GIVEN")), Some(Value::Array(h))) if !h.is_empty() => CsvHeaders::Given(
                    h.iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            e(
                                "ReaderConfig.CSVHeaders",
                                "'CSVHeaders' must be strings".into(),
                            )
                        })?,
                ),
                _ => return Err(e(
                    "ReaderConfig.CSVHeaderLocation",
                    "use CSVHeaderLocation FIRST_ROW, or GIVEN with a non-empty CSVHeaders list"
                        .into(),
                )),
            };
            csv_delimiter = match cfg.get("CSVDelimiter").map(|v| v.as_str()) {
                None | Some(Some("COMMA")) => b',',
                Some(Some("PIPE")) => b'|',
                Some(Some("SEMICOLON")) => b';',
                Some(Some("SPACE")) => b' ',
                Some(Some("TAB")) => b'\t',
                Some(_) => {
                    return Err(e(
                        "ReaderConfig.CSVDelimiter",
                        "'CSVDelimiter' must be COMMA, PIPE, SEMICOLON, SPACE or TAB".into(),
                    ));
                }
            };
            max_items = match (cfg.get("MaxItems"), cfg.get("MaxItemsPath")) {
                (Some(_), Some(_)) => {
                    return Err(e(
                        "ReaderConfig.MaxItems",
                        "'MaxItems' and 'MaxItemsPath' cannot both be set".into(),
                    ));
                }
                (Some(v), None) => Some(Count::Fixed(
                    whole_number(v, "MaxItems", 1, 100_000_000)
                        .map_err(|r| e("ReaderConfig.MaxItems", r))?,
                )),
                (None, Some(Value::String(s))) => Some(Count::Path(
                    Path::parse_reference(s, true)
                        .map_err(|x| e("ReaderConfig.MaxItemsPath", x.to_string()))?,
                )),
                (None, Some(_)) => {
                    return Err(e(
                        "ReaderConfig.MaxItemsPath",
                        "'MaxItemsPath' must be a path".into(),
                    ));
                }
                (None, None) => None,
            };
        }
        if source == ReaderSource::GetObject && input_type.is_none() {
            return Err(e(
                "ReaderConfig.InputType",
                "s3:getObject needs ReaderConfig.InputType".into(),
            ));
        }
        Ok(ItemReader {
            source,
            parameters,
            input_type,
            csv_headers,
            csv_delimiter,
            max_items,
        })
    }

    fn result_writer(&self, v: &Value) -> Result<ResultWriter, (String, String)> {
        let e = |f: &str, r: String| {
            (
                if f.is_empty() {
                    String::new()
                } else {
                    format!(".{f}")
                },
                r,
            )
        };
        let map = v
            .as_object()
            .ok_or_else(|| e("", "'ResultWriter' must be an object".into()))?;
        for key in map.keys() {
            if !["Resource", "Parameters"].contains(&key.as_str()) {
                return Err(e(key, format!("unknown ResultWriter field '{key}'")));
            }
        }
        if map.get("Resource").and_then(Value::as_str) != Some("arn:aws:states:::s3:putObject") {
            return Err(e(
                "Resource",
                "the ResultWriter resource must be arn:aws:states:::s3:putObject".into(),
            ));
        }
        let params = map
            .get("Parameters")
            .filter(|p| p.is_object())
            .ok_or_else(|| {
                e(
                    "Parameters",
                    "'Parameters' with 'Bucket' and 'Prefix' is required".into(),
                )
            })?;
        Ok(ResultWriter {
            parameters: Template::compile(params).map_err(|r| e("Parameters", r))?,
        })
    }

    fn item_batcher(&self, v: &Value) -> Result<ItemBatcher, (String, String)> {
        let e = |f: &str, r: String| {
            (
                if f.is_empty() {
                    String::new()
                } else {
                    format!(".{f}")
                },
                r,
            )
        };
        let map = v
            .as_object()
            .ok_or_else(|| e("", "'ItemBatcher' must be an object".into()))?;
        let count = |fixed: &str, path: &str| -> Result<Option<Count>, (String, String)> {
            match (map.get(fixed), map.get(path)) {
                (Some(_), Some(_)) => Err(e(
                    fixed,
                    format!("'{fixed}' and '{path}' cannot both be set"),
                )),
                (Some(v), None) => whole_number(v, fixed, 1, u64::from(u32::MAX))
                    .map(|n| Some(Count::Fixed(n)))
                    .map_err(|r| e(fixed, r)),
                (None, Some(Value::String(s))) => Path::parse_reference(s, true)
                    .map(|p| Some(Count::Path(p)))
                    .map_err(|x| e(path, x.to_string())),
                (None, Some(_)) => Err(e(path, format!("'{path}' must be a path"))),
                (None, None) => Ok(None),
            }
        };
        for key in map.keys() {
            if ![
                "MaxItemsPerBatch",
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatch",
                "MaxInputBytesPerBatchPath",
                "BatchInput",
            ]
            .contains(&key.as_str())
            {
                return Err(e(key, format!("unknown ItemBatcher field '{key}'")));
            }
        }
        let max_items_per_batch = count("MaxItemsPerBatch", "MaxItemsPerBatchPath")?;
        let max_input_bytes_per_batch =
            count("MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath")?;
        if max_items_per_batch.is_none() && max_input_bytes_per_batch.is_none() {
            return Err(e(
                "",
                "'ItemBatcher' needs MaxItemsPerBatch or MaxInputBytesPerBatch".into(),
            ));
        }
        let batch_input = match map.get("BatchInput") {
            Some(v) if v.is_object() => Some(Template::compile(v).map_err(|r| e("BatchInput", r))?),
            Some(_) => return Err(e("BatchInput", "'BatchInput' must be an object".into())),
            None => None,
        };
        Ok(ItemBatcher {
            max_items_per_batch,
            max_input_bytes_per_batch,
            batch_input,
        })
    }
}

fn processor_mode(proc_obj: &Map<String, Value>) -> Result<MapMode, String> {
    let Some(cfg) = proc_obj.get("ProcessorConfig") else {
        return Ok(MapMode::Inline);
    };
    let cfg = cfg
        .as_object()
        .ok_or("'ProcessorConfig' must be an object")?;
    for key in cfg.keys() {
        if !["Mode", "ExecutionType"].contains(&key.as_str()) {
            return Err(format!("unknown ProcessorConfig field '{key}'"));
        }
    }
    let mode = match cfg.get("Mode").map(|v| v.as_str()) {
        None | Some(Some("INLINE")) => MapMode::Inline,
        Some(Some("DISTRIBUTED")) => MapMode::Distributed,
        Some(_) => return Err("'Mode' must be INLINE or DISTRIBUTED".into()),
    };
    match (mode, cfg.get("ExecutionType").map(|v| v.as_str())) {
        (MapMode::Inline, None) => Ok(mode),
        (MapMode::Inline, Some(_)) => {
            Err("'ExecutionType' is only allowed with Mode DISTRIBUTED".into())
        }
        (MapMode::Distributed, Some(Some("STANDARD" | "EXPRESS"))) => Ok(mode),
        (MapMode::Distributed, _) => {
            Err("Mode DISTRIBUTED needs 'ExecutionType' STANDARD or EXPRESS".into())
        }
    }
}

fn error_equals(map: &Map<String, Value>) -> Result<Vec<String>, String> {
    let list = map
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .ok_or("'ErrorEquals' is required and must be an array of error names")?;
    let names = list
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or("'ErrorEquals' must hold strings")?;
    check_error_equals(&names)?;
    Ok(names)
}

fn result_path_of(v: Option<&Value>) -> Result<ResultPath, String> {
    match v {
        None => Ok(ResultPath::Replace),
        Some(Value::Null) => Ok(ResultPath::Discard),
        Some(Value::String(s)) => {
            let p = Path::parse_reference(s, false).map_err(|e| e.to_string())?;
            Ok(if p.is_root() {
                ResultPath::Replace
            } else {
                ResultPath::At(p)
            })
        }
        Some(_) => Err("'ResultPath' must be a reference path string or null".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(v: Value) -> Result<StateMachine, DefinitionError> {
        StateMachine::from_value(&v)
    }

    fn rejects(v: Value, state: Option<&str>, reason_part: &str) {
        let e = load(v).expect_err("definition must be rejected");
        assert_eq!(e.state.as_deref(), state, "{e}");
        assert!(
            e.to_string().contains(reason_part),
            "'{e}' should mention '{reason_part}'"
        );
    }

    #[test]
    fn loads_every_state_type() {
        let sm = load(json!({
            "StartAt": "P",
            "TimeoutSeconds": 60,
            "States": {
                "P": {"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$.r", "Next": "C"},
                "C": {"Type": "Choice", "Choices": [{"Variable": "$.r.a", "NumericEquals": 1, "Next": "W"}], "Default": "F"},
                "W": {"Type": "Wait", "Seconds": 0, "Next": "T"},
                "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": "f", "Payload.$": "$"},
                      "Retry": [{"ErrorEquals": ["Retryable"], "MaxAttempts": 2}, {"ErrorEquals": ["States.ALL"]}],
                      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F", "ResultPath": "$.error"}],
                      "TimeoutSeconds": 30, "HeartbeatSeconds": 10, "Next": "Par"},
                "Par": {"Type": "Parallel", "Branches": [
                    {"StartAt": "B1", "States": {"B1": {"Type": "Succeed"}}},
                    {"StartAt": "B2", "States": {"B2": {"Type": "Pass", "End": true}}}
                ], "Next": "M"},
                "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ToleratedFailurePercentage": 10,
                      "ItemSelector": {"v.$": "$$.Map.Item.Value"},
                      "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
                      "Next": "S"},
                "S": {"Type": "Succeed"},
                "F": {"Type": "Fail", "Error": "Boom", "CausePath": "$.error.Cause"}
            }
        }))
        .expect("valid definition");
        assert_eq!(sm.root.states.len(), 8);
        assert_eq!(sm.root.start().name, "P");
        assert_eq!(sm.timeout_seconds, Some(60));
        let StateKind::Task(t) = &sm.root.state(sm.root.find("T").expect("T exists")).kind else {
            panic!("T is a Task");
        };
        assert_eq!(t.retry.len(), 2);
        assert_eq!(t.catch[0].next_name, "F");
    }

    #[test]
    fn rejects_structural_errors_with_state_and_reason() {
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Bogus", "End": true}}}),
            Some("A"),
            "unknown state type 'Bogus'",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}),
            Some("A"),
            "needs 'Next' or 'End: true'",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}),
            Some("A"),
            "'Nope'",
        );
        rejects(
            json!({"StartAt": "X", "States": {"A": {"Type": "Pass", "End": true}}}),
            None,
            "StartAt",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Bogus": 1}}}),
            Some("A"),
            "field 'Bogus'",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "B": {"Type": "Succeed"}}}),
            Some("B"),
            "not reachable",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "InputPath": "a.b"}}}),
            Some("A"),
            "InputPath",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "ResultPath": "$.a[*]"}}}),
            Some("A"),
            "reference path",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Parameters": {"x.$": "States.Nope()"}}}}),
            Some("A"),
            "States.Nope",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": 1, "Next": "A"}]}}}),
            Some("A"),
            "StringEquals",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 1, "Timestamp": "2024-01-01T00:00:00Z", "End": true}}}),
            Some("A"),
            "exactly one",
        );
        rejects(
            json!({"StartAt": "A", "QueryLanguage": "JSONata", "States": {"A": {"Type": "Succeed"}}}),
            None,
            "JSONata",
        );
        rejects(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Assign": {}}}}),
            Some("A"),
            "variables",
        );
    }

    #[test]
    fn rejects_task_policy_errors() {
        let task = |extra: Value| {
            let mut t = json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true});
            if let (Some(t), Some(e)) = (t.as_object_mut(), extra.as_object()) {
                t.extend(e.clone());
            }
            json!({"StartAt": "T", "States": {"T": t, "Other": {"Type": "Succeed"}}})
        };
        let without_other = |v: Value| {
            let mut v = v;
            if let Some(s) = v.get_mut("States").and_then(Value::as_object_mut) {
                s.remove("Other");
            }
            v
        };
        rejects(
            without_other(task(
                json!({"Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}),
            )),
            Some("T"),
            "last",
        );
        rejects(
            without_other(task(json!({"Retry": [{"ErrorEquals": []}]}))),
            Some("T"),
            "ErrorEquals",
        );
        rejects(
            without_other(task(
                json!({"Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]}),
            )),
            Some("T"),
            "BackoffRate",
        );
        rejects(
            without_other(task(
                json!({"Retry": [{"ErrorEquals": ["X"], "MaxAttempts": -1}]}),
            )),
            Some("T"),
            "MaxAttempts",
        );
        rejects(
            without_other(task(
                json!({"Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}]}),
            )),
            Some("T"),
            "JitterStrategy",
        );
        rejects(
            without_other(task(json!({"Catch": [{"ErrorEquals": ["X"]}]}))),
            Some("T"),
            "Next",
        );
        rejects(
            without_other(task(json!({"TimeoutSeconds": 5, "HeartbeatSeconds": 5}))),
            Some("T"),
            "HeartbeatSeconds",
        );
        rejects(
            without_other(task(
                json!({"Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "Parameters": {"FunctionName": "f"}}),
            )),
            Some("T"),
            "Task.Token",
        );
        rejects(
            without_other(task(
                json!({"Resource": "arn:aws:states:::sqs:sendMessage", "Parameters": {"QueueUrl": "q"}}),
            )),
            Some("T"),
            "MessageBody",
        );
        rejects(
            without_other(task(
                json!({"Resource": "arn:aws:states:::batch:submitJob"}),
            )),
            Some("T"),
            "unsupported resource",
        );
        // A catcher makes "Other" reachable.
        assert!(
            load(task(
                json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Other"}]})
            ))
            .is_ok()
        );
    }

    #[test]
    fn nested_blocks_are_validated_with_their_location() {
        let e = load(
            json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Outside"}}}
        ]}, "Outside": {"Type": "Succeed"}}}),
        )
        .expect_err("branch cannot jump out");
        assert_eq!(e.state.as_deref(), Some("A"));
        assert!(
            e.location.starts_with("States.P.Branches[0].States.A"),
            "{e}"
        );
        rejects(
            json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}, "ReaderConfig": {"InputType": "JSON"}},
            "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}}}}),
            Some("M"),
            "DISTRIBUTED",
        );
        assert!(load(json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}, "ReaderConfig": {"InputType": "CSV"}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b", "Prefix": "out"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}}}})).is_ok());
    }

    #[test]
    fn substitutions() {
        let subs: HashMap<String, String> = [(
            "Fn".to_string(),
            "arn:aws:lambda:us-east-1:1:function:f".to_string(),
        )]
        .into();
        assert_eq!(
            substitute("x ${Fn} y", &subs).expect("known"),
            "x arn:aws:lambda:us-east-1:1:function:f y"
        );
        assert!(
            substitute("${Nope}", &subs)
                .expect_err("unknown")
                .reason
                .contains("Nope")
        );
    }
}
