//! Logs: human-readable on a terminal, JSON otherwise (`PAYOPS_LOG_FORMAT=json` forces it).
//! `RUST_LOG` filters, `info` by default.

use tracing_subscriber::EnvFilter;

/// `default_level` applies when `RUST_LOG` is not set: `info` for `payops up`, `warn` for
/// commands whose output is the point (the demo, benchmarks).
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("PAYOPS_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
