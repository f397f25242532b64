//! `payops`: the local runtime and the offline commands. See `payops --help`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: in the payroll end-to-end run (many threads, many
/// short-lived JSON values) glibc's allocator took about a fifth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = payops_local::cli::Cli::parse();
    payops_local::logging::init(cli.default_log_level());
    payops_local::cli::run(cli).await
}
