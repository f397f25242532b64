//! The step engine: pure decisions about one state. Given a state, its raw input, the context
//! and (for Task, Parallel and Map) the outcome of the work, it computes the data flow
//! (InputPath → Parameters → work → ResultSelector → ResultPath → OutputPath), applies Retry
//! and Catch, picks the next state and records the history events. The async executor in
//! `payops-local` performs the work, the waits and the persistence, and calls back in here.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::choice::parse_timestamp;
use super::context::{StateContext, format_time};
use super::definition::{
    Count, ItemBatcher, MapState, Percentage, ReaderSource, ResultPath, State, StateKind, Text,
    WaitFor,
};
use super::entropy::Entropy;
use super::env::Env;
use super::errors::{Failure, names};
use super::events::{EventKind, EventSink};
use super::path::{Path, type_name};
use super::resource::{Pattern, Resource};
use super::retry::{Catcher, Retrier, RetryCounts, RetryPlan, find_catcher, plan_retry};
use super::template::Template;

/// Default task timeout when a Task sets none (the Step Functions default: effectively never).
pub const TASK_TIMEOUT_DEFAULT_SECONDS: u64 = 99_999_999;

/// Where a state leads.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Continue at another state of the same block with this input.
    Next { state: usize, output: Value },
    /// The block (execution, branch or iteration) ended successfully with this output.
    End { output: Value },
    /// The block failed with this error.
    Fail(Failure),
}

/// What to do for one attempt of a state.
#[derive(Debug)]
pub enum Attempt<'d> {
    Done(Step),
    /// Run the same state again after the delay (the retry counts were updated).
    Retry(RetryPlan),
    /// Sleep until `until`, then call [`finish_wait`] with `then`.
    Wait {
        until: DateTime<Utc>,
        then: Step,
    },
    Task(TaskRequest<'d>),
    /// Run every branch on `input`; complete with the array of branch outputs.
    Parallel {
        input: Value,
        branches: usize,
    },
    Map(MapRun),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest<'d> {
    pub resource: &'d Resource,
    /// The effective parameters (after InputPath and Parameters).
    pub parameters: Value,
    pub timeout_seconds: u64,
    pub heartbeat_seconds: Option<u64>,
}

/// Map failure tolerance: the Map fails once failures exceed either limit. With neither set,
/// the first failed item fails the Map.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tolerance {
    pub count: Option<u64>,
    pub percentage: Option<Decimal>,
}

impl Tolerance {
    pub fn exceeded(&self, failed: usize, total: usize) -> bool {
        if self.count.is_none() && self.percentage.is_none() {
            return failed > 0;
        }
        let over_count = self.count.is_some_and(|c| failed as u64 > c);
        let over_pct = self.percentage.is_some_and(|p| {
            total > 0 && Decimal::from(failed) * Decimal::ONE_HUNDRED > p * Decimal::from(total)
        });
        over_count || over_pct
    }
}

/// A percentage from 0 to 100 read exactly from a JSON number's text (the workspace keeps
/// numbers as text), or `None` when the value is not such a number.
pub fn percentage_of(v: &Value) -> Option<Decimal> {
    let text = v.as_number()?.to_string();
    let p = Decimal::from_str_exact(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()?;
    (Decimal::ZERO..=Decimal::ONE_HUNDRED)
        .contains(&p)
        .then_some(p)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadRequest {
    pub source: ReaderSource,
    pub bucket: String,
    /// The object key (getObject) or the key prefix (listObjectsV2).
    pub key: String,
    pub max_items: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MapItems {
    Ready(Vec<Value>),
    /// Read the items from S3 first (distributed mode), then call [`parse_items`]/[`object_item`].
    Read(ReadRequest),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapRun {
    /// The effective input (after InputPath); ItemSelector reads it.
    pub input: Value,
    pub items: MapItems,
    /// 0 means no limit.
    pub max_concurrency: usize,
    pub tolerance: Tolerance,
    pub batch: Option<BatchSpec>,
    /// Bucket and prefix to write results to (ResultWriter).
    pub writer: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchSpec {
    pub max_items: Option<u64>,
    pub max_bytes: Option<u64>,
    pub batch_input: Option<Value>,
}

/// Records entry into a state (once per entry, not per retry).
pub fn enter(state: &State, raw_input: &Value, sink: &mut dyn EventSink) {
    sink.record(EventKind::StateEntered {
        state: state.name.clone(),
        state_type: state.kind.state_type(),
        input: raw_input.clone(),
    });
}

/// Whether an attempt of this state needs a task token in its context.
pub fn needs_task_token(state: &State) -> bool {
    matches!(&state.kind, StateKind::Task(t) if t.resource.pattern == Pattern::WaitForTaskToken)
}

/// Applies an InputPath/OutputPath field: `None` (null) gives `{}`, `$` the value itself.
pub fn select_io<'v>(
    path: Option<&Path>,
    value: &'v Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
    field: &str,
) -> Result<Cow<'v, Value>, Failure> {
    let Some(path) = path else {
        return Ok(Cow::Owned(Value::Object(Map::new())));
    };
    if path.is_root() {
        return Ok(Cow::Borrowed(value));
    }
    let env = Env::new(value, ctx, entropy);
    env.select(path)
        .map(|v| Cow::Owned(v.into_owned()))
        .ok_or_else(|| {
            Failure::runtime(format!(
                "Invalid path '{path}' for {field}: the path does not exist in the input {}",
                preview(value)
            ))
        })
}

/// Like [`select_io`], consuming the value: `$` hands it back without a copy.
pub fn select_io_owned(
    path: Option<&Path>,
    value: Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
    field: &str,
) -> Result<Value, Failure> {
    match path {
        Some(p) if p.is_root() => Ok(value),
        _ => select_io(path, &value, ctx, entropy, field).map(Cow::into_owned),
    }
}

/// A short rendering of a value for error causes.
fn preview(v: &Value) -> String {
    const PREVIEW_CHARS_MAX: usize = 200;
    let text = v.to_string();
    if text.chars().count() <= PREVIEW_CHARS_MAX {
        text
    } else {
        let cut: String = text.chars().take(PREVIEW_CHARS_MAX).collect();
        format!("{cut}…")
    }
}

/// Merges `result` into `raw_input` as ResultPath says.
pub fn apply_result_path(
    raw_input: &Value,
    result: Value,
    result_path: &ResultPath,
) -> Result<Value, Failure> {
    match result_path {
        ResultPath::Replace => Ok(result),
        ResultPath::Discard => Ok(raw_input.clone()),
        ResultPath::At(path) => {
            let mut doc = raw_input.clone();
            path.set(&mut doc, result).map_err(|reason| {
                Failure::new(
                    names::RESULT_PATH_MATCH_FAILURE,
                    format!("Unable to apply ResultPath '{path}' to the input: {reason}"),
                )
            })?;
            Ok(doc)
        }
    }
}

fn eval_template(
    template: Option<&Template>,
    input: Cow<'_, Value>,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
) -> Result<Value, Failure> {
    match template {
        Some(t) => t.eval(&Env::new(&input, ctx, entropy)),
        None => Ok(input.into_owned()),
    }
}

/// The output after ResultSelector, ResultPath and OutputPath.
fn finish_output(
    state: &State,
    raw_input: &Value,
    result: Value,
    result_selector: Option<&Template>,
    result_path: &ResultPath,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
) -> Result<Value, Failure> {
    let selected = eval_template(result_selector, Cow::Owned(result), ctx, entropy)?;
    let merged = apply_result_path(raw_input, selected, result_path)?;
    select_io_owned(
        state.output_path.as_ref(),
        merged,
        ctx,
        entropy,
        "OutputPath",
    )
}

/// Leaves the state with `output`: records the exit and picks `Next` or the end of the block.
fn transition(state: &State, output: Value, sink: &mut dyn EventSink) -> Step {
    sink.record(EventKind::StateExited {
        state: state.name.clone(),
        state_type: state.kind.state_type(),
        output: output.clone(),
    });
    match state.next {
        Some(next) => Step::Next {
            state: next,
            output,
        },
        None => Step::End { output },
    }
}

struct Policy<'d> {
    retry: &'d [Retrier],
    catch: &'d [Catcher],
}

fn policy(state: &State) -> Policy<'_> {
    match &state.kind {
        StateKind::Task(t) => Policy {
            retry: &t.retry,
            catch: &t.catch,
        },
        StateKind::Parallel(p) => Policy {
            retry: &p.retry,
            catch: &p.catch,
        },
        StateKind::Map(m) => Policy {
            retry: &m.retry,
            catch: &m.catch,
        },
        _ => Policy {
            retry: &[],
            catch: &[],
        },
    }
}

/// Retry, else Catch, else fail the block. Terminal errors skip both.
pub fn handle_failure<'d>(
    state: &State,
    raw_input: &Value,
    failure: Failure,
    retries: &mut RetryCounts,
    entropy: &dyn Entropy,
    sink: &mut dyn EventSink,
) -> Attempt<'d> {
    if failure.is_terminal() {
        return Attempt::Done(Step::Fail(failure));
    }
    let Policy { retry, catch } = policy(state);
    if let Some(plan) = plan_retry(retry, retries, &failure, entropy) {
        sink.record(EventKind::RetryScheduled {
            error: failure.error.clone(),
            retrier: plan.retrier,
            attempt: plan.attempt,
            delay_ms: plan.delay_ms,
        });
        return Attempt::Retry(plan);
    }
    let Some((_, catcher)) = find_catcher(catch, &failure) else {
        return Attempt::Done(Step::Fail(failure));
    };
    let output = match &catcher.result_path {
        None => raw_input.clone(),
        Some(p) if p.is_root() => failure.to_error_output(),
        Some(p) => {
            let mut doc = raw_input.clone();
            if let Err(reason) = p.set(&mut doc, failure.to_error_output()) {
                return Attempt::Done(Step::Fail(Failure::new(
                    names::RESULT_PATH_MATCH_FAILURE,
                    format!("Unable to apply the Catch ResultPath '{p}' to the input: {reason}"),
                )));
            }
            doc
        }
    };
    sink.record(EventKind::ErrorCaught {
        error: failure.error,
        cause: failure.cause,
        next: catcher.next_name.clone(),
    });
    sink.record(EventKind::StateExited {
        state: state.name.clone(),
        state_type: state.kind.state_type(),
        output: output.clone(),
    });
    Attempt::Done(Step::Next {
        state: catcher.next,
        output,
    })
}

/// One attempt of `state` on `raw_input` at time `now`. `retries` holds the counts for the
/// current entry (empty on entry). Call [`enter`] once before the first attempt.
pub fn attempt<'d>(
    state: &'d State,
    raw_input: &Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
    now: DateTime<Utc>,
    retries: &mut RetryCounts,
    sink: &mut dyn EventSink,
) -> Attempt<'d> {
    let outcome = match &state.kind {
        StateKind::Pass(_) | StateKind::Choice(_) | StateKind::Succeed | StateKind::Fail(_) => {
            return Attempt::Done(match immediate(state, raw_input, ctx, entropy, sink) {
                Ok(step) => step,
                Err(f) => Step::Fail(f),
            });
        }
        StateKind::Wait(_) => {
            return match wait(state, raw_input, ctx, entropy, now) {
                Ok((until, then)) => {
                    sink.record(EventKind::WaitScheduled {
                        until: format_time(until),
                    });
                    Attempt::Wait { until, then }
                }
                Err(f) => Attempt::Done(Step::Fail(f)),
            };
        }
        StateKind::Task(_) => task(state, raw_input, ctx, entropy, sink),
        StateKind::Parallel(p) => {
            effective_input(state, raw_input, p.parameters.as_ref(), ctx, entropy).map(|input| {
                Attempt::Parallel {
                    input,
                    branches: p.branches.len(),
                }
            })
        }
        StateKind::Map(m) => map_run(state, m, raw_input, ctx, entropy).map(Attempt::Map),
    };
    match outcome {
        Ok(a) => a,
        Err(f) => handle_failure(state, raw_input, f, retries, entropy, sink),
    }
}

fn effective_input(
    state: &State,
    raw_input: &Value,
    parameters: Option<&Template>,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
) -> Result<Value, Failure> {
    let input = select_io(
        state.input_path.as_ref(),
        raw_input,
        ctx,
        entropy,
        "InputPath",
    )?;
    eval_template(parameters, input, ctx, entropy)
}

/// Pass, Choice, Succeed and Fail: no external work.
fn immediate(
    state: &State,
    raw_input: &Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
    sink: &mut dyn EventSink,
) -> Result<Step, Failure> {
    match &state.kind {
        StateKind::Pass(p) => {
            let result = match &p.result {
                Some(r) => r.clone(),
                None => effective_input(state, raw_input, p.parameters.as_ref(), ctx, entropy)?,
            };
            let merged = apply_result_path(raw_input, result, &p.result_path)?;
            let output = select_io_owned(
                state.output_path.as_ref(),
                merged,
                ctx,
                entropy,
                "OutputPath",
            )?;
            Ok(transition(state, output, sink))
        }
        StateKind::Choice(c) => {
            let input = select_io(
                state.input_path.as_ref(),
                raw_input,
                ctx,
                entropy,
                "InputPath",
            )?;
            let env = Env::new(&input, ctx, entropy);
            let mut target = None;
            for rule in &c.choices {
                if rule.condition.eval(&env)? {
                    target = Some(rule.next);
                    break;
                }
            }
            let next = target.or(c.default).ok_or_else(|| {
                Failure::new(
                    names::NO_CHOICE_MATCHED,
                    format!(
                        "No Choice Rules matched the input of state '{}' and there is no Default",
                        state.name
                    ),
                )
            })?;
            let output = select_io(
                state.output_path.as_ref(),
                &input,
                ctx,
                entropy,
                "OutputPath",
            )?;
            let output = output.into_owned();
            sink.record(EventKind::StateExited {
                state: state.name.clone(),
                state_type: state.kind.state_type(),
                output: output.clone(),
            });
            Ok(Step::Next {
                state: next,
                output,
            })
        }
        StateKind::Succeed => {
            let input = select_io(
                state.input_path.as_ref(),
                raw_input,
                ctx,
                entropy,
                "InputPath",
            )?;
            let output = select_io(
                state.output_path.as_ref(),
                &input,
                ctx,
                entropy,
                "OutputPath",
            )?;
            Ok(transition(state, output.into_owned(), sink))
        }
        StateKind::Fail(f) => {
            let env = Env::new(raw_input, ctx, entropy);
            let error = text(f.error.as_ref(), &env, "ErrorPath")?;
            let cause = text(f.cause.as_ref(), &env, "CausePath")?;
            Ok(Step::Fail(Failure::new(error, cause)))
        }
        // attempt() only calls immediate() for the four kinds above.
        _ => Err(Failure::runtime(format!(
            "state '{}' cannot complete without work",
            state.name
        ))),
    }
}

fn text(t: Option<&Text>, env: &Env<'_>, field: &str) -> Result<String, Failure> {
    let value = match t {
        None => return Ok(String::new()),
        Some(Text::Fixed(s)) => return Ok(s.clone()),
        Some(Text::Path(p)) => env.select(p).map(Cow::into_owned).ok_or_else(|| {
            Failure::runtime(format!(
                "Invalid path '{p}' for {field}: the path does not exist"
            ))
        })?,
        Some(Text::Intrinsic(call)) => call.eval(env)?,
    };
    match value {
        Value::String(s) => Ok(s),
        other => Err(Failure::runtime(format!(
            "{field} must resolve to a string, got {}",
            type_name(&other)
        ))),
    }
}

fn wait(
    state: &State,
    raw_input: &Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, Step), Failure> {
    let StateKind::Wait(w) = &state.kind else {
        return Err(Failure::runtime("not a Wait state"));
    };
    let input = select_io(
        state.input_path.as_ref(),
        raw_input,
        ctx,
        entropy,
        "InputPath",
    )?;
    let env = Env::new(&input, ctx, entropy);
    let until = match &w.wait {
        WaitFor::Seconds(s) => now + seconds(*s),
        WaitFor::Timestamp(t) => t.with_timezone(&Utc),
        WaitFor::SecondsPath(p) => {
            let v = env.select(p).ok_or_else(|| missing(p, "SecondsPath"))?;
            let s = v
                .as_ref()
                .as_number()
                .and_then(super::number::to_i64)
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "SecondsPath '{p}' must point to a non-negative integer, got {}",
                        v.as_ref()
                    ))
                })?;
            now + seconds(s)
        }
        WaitFor::TimestampPath(p) => {
            let v = env.select(p).ok_or_else(|| missing(p, "TimestampPath"))?;
            v.as_ref()
                .as_str()
                .and_then(parse_timestamp)
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "TimestampPath '{p}' must point to an RFC 3339 timestamp, got {}",
                        v.as_ref()
                    ))
                })?
        }
    };
    let output = select_io(
        state.output_path.as_ref(),
        &input,
        ctx,
        entropy,
        "OutputPath",
    )?
    .into_owned();
    let then = match state.next {
        Some(next) => Step::Next {
            state: next,
            output,
        },
        None => Step::End { output },
    };
    Ok((until, then))
}

fn seconds(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

fn missing(p: &Path, field: &str) -> Failure {
    Failure::runtime(format!(
        "Invalid path '{p}' for {field}: the path does not exist"
    ))
}

/// After a Wait state's sleep: records the exit and returns the step.
pub fn finish_wait(state: &State, then: Step, sink: &mut dyn EventSink) -> Step {
    if let Step::Next { output, .. } | Step::End { output } = &then {
        sink.record(EventKind::StateExited {
            state: state.name.clone(),
            state_type: state.kind.state_type(),
            output: output.clone(),
        });
    }
    then
}

fn resolve_count(c: &Count, env: &Env<'_>, field: &str) -> Result<u64, Failure> {
    match c {
        Count::Fixed(n) => Ok(*n),
        Count::Path(p) => {
            let v = env.select(p).ok_or_else(|| missing(p, field))?;
            v.as_ref()
                .as_number()
                .and_then(super::number::to_i64)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "{field} '{p}' must point to a non-negative integer, got {}",
                        v.as_ref()
                    ))
                })
        }
    }
}

fn task<'d>(
    state: &'d State,
    raw_input: &Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
    sink: &mut dyn EventSink,
) -> Result<Attempt<'d>, Failure> {
    let StateKind::Task(t) = &state.kind else {
        return Err(Failure::runtime("not a Task state"));
    };
    let input = select_io(
        state.input_path.as_ref(),
        raw_input,
        ctx,
        entropy,
        "InputPath",
    )?;
    let env = Env::new(&input, ctx, entropy);
    let timeout_seconds = match &t.timeout {
        Some(c) => resolve_count(c, &env, "TimeoutSecondsPath")?,
        None => TASK_TIMEOUT_DEFAULT_SECONDS,
    };
    let heartbeat_seconds = match &t.heartbeat {
        Some(c) => Some(resolve_count(c, &env, "HeartbeatSecondsPath")?),
        None => None,
    };
    if timeout_seconds == 0 || heartbeat_seconds == Some(0) {
        return Err(Failure::runtime("task timeouts must be positive"));
    }
    let parameters = eval_template(t.parameters.as_ref(), input, ctx, entropy)?;
    sink.record(EventKind::TaskScheduled {
        resource: t.resource.arn.clone(),
        parameters: parameters.clone(),
        timeout_seconds: t.timeout.as_ref().map(|_| timeout_seconds),
        heartbeat_seconds,
    });
    sink.record(EventKind::TaskStarted {
        resource: t.resource.arn.clone(),
    });
    Ok(Attempt::Task(TaskRequest {
        resource: &t.resource,
        parameters,
        timeout_seconds,
        heartbeat_seconds,
    }))
}

fn map_run(
    state: &State,
    m: &MapState,
    raw_input: &Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
) -> Result<MapRun, Failure> {
    let input = select_io(
        state.input_path.as_ref(),
        raw_input,
        ctx,
        entropy,
        "InputPath",
    )?
    .into_owned();
    let env = Env::new(&input, ctx, entropy);
    let max_concurrency = usize::try_from(resolve_count(
        &m.max_concurrency,
        &env,
        "MaxConcurrencyPath",
    )?)
    .unwrap_or(usize::MAX);
    let tolerance = Tolerance {
        count: match &m.tolerated_failure_count {
            Some(c) => Some(resolve_count(c, &env, "ToleratedFailureCountPath")?),
            None => None,
        },
        percentage: match &m.tolerated_failure_percentage {
            Some(Percentage::Fixed(p)) => Some(*p),
            Some(Percentage::Path(p)) => {
                let v = env
                    .select(p)
                    .ok_or_else(|| missing(p, "ToleratedFailurePercentagePath"))?;
                Some(percentage_of(v.as_ref()).ok_or_else(|| {
                    Failure::runtime(format!(
                        "ToleratedFailurePercentagePath '{p}' must point to a number from 0 to 100"
                    ))
                })?)
            }
            None => None,
        },
    };
    let items = match &m.item_reader {
        Some(reader) => {
            let params = reader.parameters.eval(&env)?;
            let field = |k: &str| {
                params
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Failure::new(
                            names::ITEM_READER_FAILED,
                            format!("ItemReader parameter '{k}' must be a string"),
                        )
                    })
            };
            let key = match reader.source {
                ReaderSource::GetObject => field("Key")?,
                ReaderSource::ListObjects => params
                    .get("Prefix")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            };
            MapItems::Read(ReadRequest {
                source: reader.source,
                bucket: field("Bucket")?,
                key,
                max_items: match &reader.max_items {
                    Some(c) => Some(resolve_count(c, &env, "MaxItemsPath")?),
                    None => None,
                },
            })
        }
        None => {
            let items = env
                .select(&m.items_path)
                .ok_or_else(|| missing(&m.items_path, "ItemsPath"))?;
            match items.into_owned() {
                Value::Array(a) => MapItems::Ready(a),
                other => {
                    return Err(Failure::runtime(format!(
                        "ItemsPath '{}' must point to an array, got {}",
                        m.items_path,
                        type_name(&other)
                    )));
                }
            }
        }
    };
    let batch = match &m.item_batcher {
        Some(b) => Some(batch_spec(b, &env)?),
        None => None,
    };
    let writer = match &m.result_writer {
        Some(w) => {
            let params = w.parameters.eval(&env)?;
            let bucket = params.get("Bucket").and_then(Value::as_str);
            let prefix = params
                .get("Prefix")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let bucket = bucket.ok_or_else(|| {
                Failure::new(
                    names::RESULT_WRITER_FAILED,
                    "ResultWriter parameter 'Bucket' must be a string",
                )
            })?;
            Some((bucket.to_owned(), prefix.to_owned()))
        }
        None => None,
    };
    Ok(MapRun {
        input,
        items,
        max_concurrency,
        tolerance,
        batch,
        writer,
    })
}

fn batch_spec(b: &ItemBatcher, env: &Env<'_>) -> Result<BatchSpec, Failure> {
    Ok(BatchSpec {
        max_items: match &b.max_items_per_batch {
            Some(c) => Some(resolve_count(c, env, "MaxItemsPerBatchPath")?.max(1)),
            None => None,
        },
        max_bytes: match &b.max_input_bytes_per_batch {
            Some(c) => Some(resolve_count(c, env, "MaxInputBytesPerBatchPath")?.max(1)),
            None => None,
        },
        batch_input: match &b.batch_input {
            Some(t) => Some(t.eval(env)?),
            None => None,
        },
    })
}

/// The input of Map item `index`: ItemSelector (with `$$.Map.Item`) or the item itself.
pub fn map_item_input(
    state: &State,
    effective_input: &Value,
    index: usize,
    item: Value,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
) -> Result<Value, Failure> {
    let StateKind::Map(m) = &state.kind else {
        return Ok(item);
    };
    let Some(selector) = &m.item_selector else {
        return Ok(item);
    };
    let item_ctx = StateContext {
        map_item: Some((index, &item)),
        ..*ctx
    };
    selector.eval(&Env::new(effective_input, &item_ctx, entropy))
}

/// Groups item inputs into batches `{"Items": [...], "BatchInput": {...}}`.
pub fn batch_items(items: Vec<Value>, spec: &BatchSpec) -> Vec<Value> {
    let mut batches = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = 0u64;
    let wrap = |items: Vec<Value>| {
        let mut b = Map::new();
        if let Some(bi) = &spec.batch_input {
            b.insert("BatchInput".into(), bi.clone());
        }
        b.insert("Items".into(), Value::Array(items));
        Value::Object(b)
    };
    for item in items {
        let size = item.to_string().len() as u64;
        let full_by_count = spec.max_items.is_some_and(|m| current.len() as u64 >= m);
        let full_by_bytes = spec
            .max_bytes
            .is_some_and(|m| !current.is_empty() && bytes + size > m);
        if full_by_count || full_by_bytes {
            batches.push(wrap(std::mem::take(&mut current)));
            bytes = 0;
        }
        bytes += size;
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(wrap(current));
    }
    batches
}

/// Completes a Task, Parallel or Map attempt with the outcome of its work.
pub fn complete<'d>(
    state: &State,
    raw_input: &Value,
    outcome: Result<Value, Failure>,
    retries: &mut RetryCounts,
    ctx: &StateContext<'_>,
    entropy: &dyn Entropy,
    sink: &mut dyn EventSink,
) -> Attempt<'d> {
    let (result_selector, result_path) = match &state.kind {
        StateKind::Task(t) => (t.result_selector.as_ref(), &t.result_path),
        StateKind::Parallel(p) => (p.result_selector.as_ref(), &p.result_path),
        StateKind::Map(m) => (m.result_selector.as_ref(), &m.result_path),
        _ => (None, &ResultPath::Replace),
    };
    record_outcome(state, &outcome, sink);
    match outcome.and_then(|result| {
        finish_output(
            state,
            raw_input,
            result,
            result_selector,
            result_path,
            ctx,
            entropy,
        )
    }) {
        Ok(output) => Attempt::Done(transition(state, output, sink)),
        Err(f) => handle_failure(state, raw_input, f, retries, entropy, sink),
    }
}

fn record_outcome(state: &State, outcome: &Result<Value, Failure>, sink: &mut dyn EventSink) {
    let event = match (&state.kind, outcome) {
        (StateKind::Task(t), Ok(v)) => EventKind::TaskSucceeded {
            resource: t.resource.arn.clone(),
            output: v.clone(),
        },
        (StateKind::Task(t), Err(f))
            if f.error == names::TIMEOUT || f.error == names::HEARTBEAT_TIMEOUT =>
        {
            EventKind::TaskTimedOut {
                resource: t.resource.arn.clone(),
                error: f.error.clone(),
                cause: f.cause.clone(),
            }
        }
        (StateKind::Task(t), Err(f)) => EventKind::TaskFailed {
            resource: t.resource.arn.clone(),
            error: f.error.clone(),
            cause: f.cause.clone(),
        },
        (StateKind::Parallel(_), Ok(_)) => EventKind::ParallelStateSucceeded,
        (StateKind::Parallel(_), Err(f)) => EventKind::ParallelStateFailed {
            error: f.error.clone(),
            cause: f.cause.clone(),
        },
        (StateKind::Map(_), Ok(_)) => EventKind::MapStateSucceeded,
        (StateKind::Map(_), Err(f)) => EventKind::MapStateFailed {
            error: f.error.clone(),
            cause: f.cause.clone(),
        },
        _ => return,
    };
    sink.record(event);
}

/// The failure a Map reports when its tolerance is exceeded.
pub fn tolerance_failure(failed: usize, total: usize) -> Failure {
    Failure::new(
        names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
        format!("The Map failed because {failed} of {total} items failed, more than tolerated"),
    )
}

/// The result of one Map item, for ResultWriter files.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemResult {
    pub index: usize,
    pub input: Value,
    pub outcome: Result<Value, Failure>,
}

/// The objects a ResultWriter writes (key, JSON body) and the Map's result that points at them.
/// Layout: `<prefix>/<map_run_id>/manifest.json`, `SUCCEEDED_0.json`, `FAILED_0.json`.
pub fn result_writer_files(
    bucket: &str,
    prefix: &str,
    map_run_id: &str,
    execution_id: &str,
    results: &[ItemResult],
) -> (Vec<(String, Value)>, Value) {
    let dir = if prefix.is_empty() {
        map_run_id.to_owned()
    } else {
        format!("{}/{map_run_id}", prefix.trim_end_matches('/'))
    };
    let entry = |r: &ItemResult| {
        let mut e = json!({
            "ExecutionArn": format!("{execution_id}/item-{}", r.index),
            "Input": r.input.to_string(),
            "InputDetails": {"Included": true},
            "Name": format!("item-{}", r.index),
        });
        match &r.outcome {
            Ok(out) => {
                e["Output"] = Value::String(out.to_string());
                e["OutputDetails"] = json!({"Included": true});
                e["Status"] = json!("SUCCEEDED");
            }
            Err(f) => {
                e["Error"] = json!(f.error);
                e["Cause"] = json!(f.cause);
                e["Status"] = json!("FAILED");
            }
        }
        e
    };
    let succeeded: Vec<Value> = results
        .iter()
        .filter(|r| r.outcome.is_ok())
        .map(entry)
        .collect();
    let failed: Vec<Value> = results
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(entry)
        .collect();
    let mut files = Vec::new();
    let mut result_files = json!({"FAILED": [], "PENDING": [], "SUCCEEDED": []});
    for (status, list) in [("SUCCEEDED", succeeded), ("FAILED", failed)] {
        if list.is_empty() {
            continue;
        }
        let key = format!("{dir}/{status}_0.json");
        let size = Value::Array(list.clone()).to_string().len();
        result_files[status] = json!([{"Key": key, "Size": size}]);
        files.push((key, Value::Array(list)));
    }
    let manifest_key = format!("{dir}/manifest.json");
    let map_run_arn = format!("{execution_id}:map-run/{map_run_id}");
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn,
        "ResultFiles": result_files,
    });
    files.push((manifest_key.clone(), manifest));
    let output = json!({
        "MapRunArn": map_run_arn,
        "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key},
    });
    (files, output)
}

#[cfg(test)]
mod tolerance_tests {
    use super::*;

    fn pct(s: &str) -> Tolerance {
        Tolerance {
            count: None,
            percentage: Some(Decimal::from_str_exact(s).unwrap()),
        }
    }

    #[test]
    fn percentage_tolerance_is_exact_at_the_boundary() {
        // 1 of 3 is 33.333…%: over 33.33, within 33.34; exactly 50% of 2 is not over 50.
        assert!(pct("33.33").exceeded(1, 3));
        assert!(!pct("33.34").exceeded(1, 3));
        assert!(!pct("50").exceeded(1, 2));
        assert!(pct("0").exceeded(1, 1000));
    }

    #[test]
    fn percentage_is_read_from_the_number_text() {
        let v: Value = serde_json::from_str("12.5").unwrap();
        assert_eq!(percentage_of(&v), Some(Decimal::new(125, 1)));
        assert_eq!(
            percentage_of(&serde_json::from_str("100.01").unwrap()),
            None
        );
        assert_eq!(percentage_of(&serde_json::from_str("\"5\"").unwrap()), None);
    }
}
