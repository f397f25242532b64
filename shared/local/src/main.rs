//! `payops`: the local runtime and the offline commands. See `payops --help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = payops_local::cli::Cli::parse();
    payops_local::logging::init(cli.default_log_level());
    payops_local::cli::run(cli).await
}
