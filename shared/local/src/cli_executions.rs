//! `payops executions …`: the state machine executions of a running `payops up`, through its
//! ops endpoints (`/ops/executions`). Going through the running process keeps one executor per
//! data directory: a second process must not drive the same executions.

use std::path::PathBuf;

use bytes::Bytes;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::HttpClient;
use crate::runtime::DEFAULT_PORT;

#[derive(Subcommand, Debug)]
pub enum ExecutionsCommand {
    /// Executions, newest first.
    List {
        #[arg(long)]
        state_machine: Option<String>,
        /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
    },
    /// One execution and its event history: states entered and exited, inputs and outputs,
    /// errors, durations.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
    },
    /// Starts an execution of a state machine with the JSON in a file.
    Start {
        state_machine: String,
        #[arg(long)]
        input: PathBuf,
        /// The execution's name (idempotent per name); a fresh UUID by default.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutionsCliError {
    #[error("cannot reach payops up on port {port} (is it running?): {source}")]
    Unreachable {
        port: u16,
        #[source]
        source: crate::client::ClientError,
    },
    #[error("payops up answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{file}: {reason}")]
    Input { file: PathBuf, reason: String },
    #[error("the response is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Percent-encodes a query or path value (ids are ARNs with `:`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn call(
    port: u16,
    method: http::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, ExecutionsCliError> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let client = HttpClient::default();
    let response = match body {
        None => client.request(method, &url, &[], Bytes::new()).await,
        Some(b) => {
            client
                .post_json(&url, &[], Bytes::from(b.to_string()))
                .await
        }
    }
    .map_err(|source| ExecutionsCliError::Unreachable { port, source })?;
    if response.status != 200 {
        return Err(ExecutionsCliError::Status {
            status: response.status,
            body: String::from_utf8_lossy(&response.body).into_owned(),
        });
    }
    Ok(serde_json::from_slice(&response.body)?)
}

pub async fn run(cmd: ExecutionsCommand) -> Result<(), ExecutionsCliError> {
    match cmd {
        ExecutionsCommand::List {
            state_machine,
            status,
            json,
            port,
        } => {
            let mut query = Vec::new();
            if let Some(s) = state_machine {
                query.push(format!("state_machine={}", encode(&s)));
            }
            if let Some(s) = status {
                query.push(format!("status={}", encode(&s)));
            }
            let path = format!("/ops/executions?{}", query.join("&"));
            let list = call(port, http::Method::GET, &path, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_list(&list);
            }
        }
        ExecutionsCommand::Show { id, json, port } => {
            let path = format!("/ops/executions/{}", encode(&id));
            let shown = call(port, http::Method::GET, &path, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                print_show(&shown);
            }
        }
        ExecutionsCommand::Start {
            state_machine,
            input,
            name,
            port,
        } => {
            let text = std::fs::read_to_string(&input).map_err(|e| ExecutionsCliError::Input {
                file: input.clone(),
                reason: e.to_string(),
            })?;
            let value: Value =
                serde_json::from_str(&text).map_err(|e| ExecutionsCliError::Input {
                    file: input.clone(),
                    reason: format!("not JSON: {e}"),
                })?;
            let body = json!({"state_machine": state_machine, "name": name, "input": value});
            let started = call(port, http::Method::POST, "/ops/executions", Some(body)).await?;
            println!("{}", serde_json::to_string_pretty(&started)?);
        }
    }
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn print_list(list: &Value) {
    let rows = list["executions"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<10} {:<24} {:<26} {:<26} ID",
        "STATUS", "STATE MACHINE", "STARTED", "STOPPED"
    );
    for e in &rows {
        println!(
            "{:<10} {:<24} {:<26} {:<26} {}",
            text(&e["status"]),
            text(&e["state_machine"]),
            text(&e["start_time"]),
            text(&e["stop_time"]),
            text(&e["id"]),
        );
    }
    println!("{} execution(s)", rows.len());
}

fn print_show(shown: &Value) {
    let e = &shown["execution"];
    println!("execution {}", text(&e["id"]));
    println!("  status  {}", text(&e["status"]));
    println!(
        "  started {}  stopped {}",
        text(&e["start_time"]),
        text(&e["stop_time"])
    );
    println!("  input   {}", e["input"]);
    if !e["output"].is_null() {
        println!("  output  {}", e["output"]);
    }
    if !e["error"].is_null() {
        println!("  error   {}: {}", text(&e["error"]), text(&e["cause"]));
    }
    println!();
    println!(
        "{:>4} {:>9} {:>9}  {:<28} {:<20} DETAILS",
        "ID", "+MS", "TOOK MS", "TYPE", "SCOPE"
    );
    for ev in shown["history"].as_array().into_iter().flatten() {
        let took = ev["duration_ms"]
            .as_i64()
            .map_or_else(String::new, |d| d.to_string());
        println!(
            "{:>4} {:>9} {:>9}  {:<28} {:<20} {}",
            ev["id"],
            ev["elapsed_ms"],
            took,
            text(&ev["type"]),
            ev["scope"].as_str().unwrap_or(""),
            ev["event"],
        );
    }
}
