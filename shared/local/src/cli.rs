//! The `payops` command line. Every command keeps its state under `./.payops/` unless given
//! `--data DIR`; commands meant for scripts take `--json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use payops_app::ports::SystemClock;

use crate::{bench, bench_transfers, demo, runtime};

#[derive(Parser, Debug)]
#[command(
    name = "payops",
    version,
    about = "A back office for money movement, on one machine or on AWS Lambda."
)]
pub struct Cli {
    /// Directory of the embedded store.
    #[arg(long, global = true, default_value = ".payops", env = "PAYOPS_DATA")]
    pub data: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every function on 127.0.0.1: HTTP APIs, queue pollers, schedules, the inbox.
    Up {
        #[arg(long, default_value_t = runtime::DEFAULT_PORT)]
        port: u16,
        #[command(flatten)]
        provider: crate::cli_sandbox::SandboxArgs,
    },
    /// The payment provider's sandbox on its own (`payops up` starts one itself).
    Sandbox(crate::cli_sandbox::SandboxCommand),
    /// Generate data for every flow, run it end to end, and print where the reports are.
    Demo {
        #[arg(long, default_value_t = 1000)]
        events_per_day: usize,
        #[arg(long, default_value_t = 3)]
        days: u64,
        #[arg(long)]
        json: bool,
    },
    /// Run a scheduled function now, as its EventBridge rule would.
    Trigger {
        /// The function, e.g. payment-events-report.
        name: String,
        /// Passed as the event's detail.date (e.g. the report's day).
        #[arg(long)]
        date: Option<String>,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The payroll file, offline: summarise one, or generate a large one.
    #[command(subcommand)]
    Payroll(crate::cli_payroll::PayrollCommand),
    /// Pay-frequency inference offline: infer schedules from a history CSV, generate one, bench.
    #[command(subcommand)]
    Paydays(crate::cli_paydays::PaydaysCommand),
    /// Loans repaid from payroll: import, show, the morning payroll check, its benchmark.
    #[command(subcommand)]
    Loans(crate::cli_loans::LoansCommand),
    /// Cash advances.
    #[command(subcommand)]
    Advances(AdvancesCommand),
    /// State machine executions of a running `payops up`.
    #[command(subcommand)]
    Executions(crate::cli_executions::ExecutionsCommand),
    /// Dead-letter queues: list what is in them, redrive them to their source queue.
    #[command(subcommand)]
    Dlq(crate::cli_dlq::DlqCommand),
    /// Debt intake: check or generate a debt file offline; list formats; show metrics.
    #[command(subcommand)]
    Debts(crate::cli_debts::DebtsCommand),
    /// Reconciliation offline: reconcile a day's files into Parquet; generate a realistic day.
    #[command(subcommand)]
    Recon(crate::cli_recon::ReconCommand),
}

#[derive(Subcommand, Debug)]
pub enum AdvancesCommand {
    /// Check that every advance's instalments (paid + due + in progress) sum to its amount;
    /// lists the differences and exits non-zero when there are any.
    Audit {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Payments against a throttled provider sandbox through the shared rate limiter.
    Provider(crate::bench_provider::ProviderBenchArgs),
    /// A payroll file end to end (upload to every payment settled and reports written) on
    /// the embedded store with an unthrottled provider sandbox.
    PayrollE2e(crate::bench_payroll_e2e::PayrollE2eArgs),
    /// A burst of signed payment webhooks through a `payops up` process on loopback.
    Webhooks {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// A debt file dropped into the inbox of a `payops up` in this process, timed from the
    /// drop to the batch's final status (one run; wrap in `/usr/bin/time -v` for peak RSS).
    Debts {
        #[arg(long, default_value_t = 1_000_000)]
        lines: u64,
        #[arg(long, default_value_t = 1000)]
        defect_every: u64,
        #[arg(long)]
        json: bool,
    },
    /// Transfers through the accounts API of a `payops up` process on loopback.
    Transfers {
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Measured transfers per run (after a warm-up).
        #[arg(long, default_value_t = 20_000)]
        transfers: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Up { .. } | Command::Trigger { .. } | Command::Sandbox(_) => "info",
            Command::Demo { .. }
            | Command::Bench(_)
            | Command::Payroll(_)
            | Command::Paydays(_)
            | Command::Loans(_)
            | Command::Advances(_)
            | Command::Executions(_)
            | Command::Dlq(_)
            | Command::Debts(_)
            | Command::Recon(_) => "warn",
        }
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("payops: {e}");
            let mut source = std::error::Error::source(e.as_ref());
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn execute(cli: Cli) -> Result<(), AnyError> {
    match cli.command {
        Command::Payroll(cmd) => crate::cli_payroll::run(cmd).await?,
        Command::Paydays(cmd) => crate::cli_paydays::run(cmd).await?,
        Command::Loans(cmd) => crate::cli_loans::run(&cli.data, cmd).await?,
        Command::Executions(cmd) => crate::cli_executions::run(cmd).await?,
        Command::Dlq(cmd) => crate::cli_dlq::run(cmd, &cli.data).await?,
        Command::Debts(cmd) => crate::cli_debts::run(cmd, &cli.data).await?,
        Command::Recon(cmd) => crate::cli_recon::run(cmd).await?,
        Command::Up { port, provider } => {
            runtime::up_with(
                runtime::UpOptions {
                    data_dir: cli.data,
                    port,
                },
                provider,
            )
            .await?
        }
        Command::Sandbox(cmd) => crate::cli_sandbox::run(cmd, &cli.data).await?,
        Command::Bench(BenchCommand::PayrollE2e(args)) => {
            let report = crate::bench_payroll_e2e::run(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                crate::bench_payroll_e2e::print(&report);
            }
        }
        Command::Bench(BenchCommand::Provider(args)) => {
            let report = crate::bench_provider::run(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                crate::bench_provider::print(&report);
            }
            if !report.pass {
                return Err("the throttled throughput check failed".into());
            }
        }
        Command::Demo {
            events_per_day,
            days,
            json,
        } => {
            let options = demo::DemoOptions {
                data_dir: cli.data,
                events_per_day,
                days,
                duplicate_every: 50,
                quiet: json,
            };
            let report = demo::run(&options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_demo(&report);
            }
        }
        Command::Trigger { name, date } => {
            let (system, _workers) = runtime::System::build(&cli.data, Arc::new(SystemClock))?;
            let detail = match date {
                Some(d) => serde_json::json!({ "date": d }),
                None => serde_json::json!({}),
            };
            let result = system.trigger(&name, detail).await?;
            println!("{}", serde_json::to_string_pretty(&result)?);
        }
        Command::Bench(BenchCommand::Webhooks {
            events,
            concurrency,
            runs,
            json,
        }) => {
            let options = bench::WebhookBenchOptions {
                events,
                concurrency,
                runs,
            };
            let report = bench::webhooks(&options, |m| {
                if !json {
                    eprintln!("bench: {m}")
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_bench(&report);
            }
        }
        Command::Bench(BenchCommand::Debts {
            lines,
            defect_every,
            json,
        }) => {
            let options = crate::bench_debts::DebtBenchOptions {
                lines,
                defect_every,
                data_dir: cli.data.clone(),
            };
            let report = crate::bench_debts::debts(&options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "debts end to end, {} lines ({} bytes): {} in {:.2} s ({:.0} lines/s), {} accepted, {} rejected, {} sub-batches",
                    report.lines,
                    report.file_bytes,
                    report.status,
                    report.seconds,
                    report.lines_per_second,
                    report.accepted,
                    report.rejected,
                    report.sub_batches
                );
            }
        }
        Command::Bench(BenchCommand::Transfers {
            clients,
            transfers,
            runs,
            json,
        }) => {
            let options = bench_transfers::TransferBenchOptions {
                clients,
                transfers,
                runs,
            };
            let report = bench_transfers::transfers(&options, |m| {
                if !json {
                    eprintln!("bench: {m}")
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_transfer_bench(&report);
            }
        }
        Command::Advances(AdvancesCommand::Audit { json }) => {
            let env = crate::env::LocalEnv::open(&cli.data, Arc::new(SystemClock))?;
            let accounts = payops_app::accounts::Accounts::from_resources(&env)?;
            let report = payops_app::accounts::Auditor::new(accounts)
                .audit_all()
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_audit(&report);
            }
            if !report.differences.is_empty() {
                return Err(format!(
                    "{} of {} advances have instalments that do not sum to their amount",
                    report.differences.len(),
                    report.advances_checked
                )
                .into());
            }
        }
    }
    Ok(())
}

fn print_audit(report: &payops_app::accounts::AuditReport) {
    println!(
        "advances audit: {} advances checked, {} with differences",
        report.advances_checked,
        report.differences.len()
    );
    for d in &report.differences {
        println!(
            "  {}  amount {}  paid {}  due {}  in progress {}  difference {}",
            d.advance_id, d.amount, d.paid, d.due, d.in_progress, d.difference
        );
    }
}

fn print_transfer_bench(report: &bench_transfers::TransferBenchReport) {
    let m = &report.median;
    println!(
        "transfers, {} per run after {} warm-up, {} clients, {} accounts, median of {} runs:",
        m.transfers,
        report.warmup_transfers,
        m.clients,
        report.accounts,
        report.runs.len()
    );
    println!(
        "  throughput              {:.0} transfers/s ({:.3} s)",
        m.transfers_per_second, m.seconds
    );
    println!(
        "  latency                 p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        m.p50_ms, m.p99_ms, m.max_ms
    );
    println!(
        "  server CPU per transfer {:.1} µs",
        m.server_cpu_us_per_transfer
    );
    println!(
        "  client CPU per transfer {:.1} µs",
        m.client_cpu_us_per_transfer
    );
}

fn print_demo(report: &demo::DemoReport) {
    let p = &report.payment_events;
    println!();
    println!(
        "payment events: {} webhooks sent, {} events stored, {} duplicates ignored",
        p.webhooks_sent, p.events_stored, p.duplicates_ignored
    );
    for r in &p.reports {
        println!("  {}  {}", r.date, r.events_csv.display());
        println!("  {}  {}", r.date, r.summary_csv.display());
    }
    let a = &report.accounts;
    println!(
        "accounts: {} accounts, {} transfers succeeded, {} failed (insufficient funds); balances {} before, {} after the advance {} of {} in {} instalments",
        a.accounts,
        a.transfers_succeeded,
        a.transfers_failed,
        a.balance_total_before,
        a.balance_total_after,
        a.advance_id,
        a.advance_amount,
        a.instalments
    );
    let l = &report.loans;
    println!(
        "loans: {} created ({:?}), {} payments recorded; payroll check {}: {} missed",
        l.loans_created, l.frequencies, l.payments_recorded, l.check_date, l.missed
    );
    println!("  {}", l.missed_csv.display());
    println!("  {}", l.late_csv.display());
    println!("  {}", l.sample_loan_url);
    let r = &report.recon;
    println!(
        "reconciliation {}: {} stream events, {} statement lines, daily workflow {}",
        r.date, r.events_sent, r.statement_lines, r.execution
    );
    for dir in [&r.batch, &r.final_index, &r.kpis, &r.kpis_monthly] {
        println!("  {}", dir.display());
    }
    if let Some(d) = &report.debts {
        crate::cli_debts::print_demo(d);
    }
    if let Some(p) = &report.payroll {
        println!(
            "payroll {}: {} rows totalling {} from {} payers to {} branches, estimated {} s at approval; {}: {} paid, {}",
            p.batch_id,
            p.rows,
            p.total,
            p.sources,
            p.branches,
            p.eta_seconds.map_or("-".to_owned(), |s| s.to_string()),
            p.status,
            p.paid_count,
            p.paid_total
        );
        for path in &p.reports {
            println!("  {}", path.display());
        }
        println!("  HR's page: {}", p.page_path);
    }
}

fn print_bench(report: &bench::WebhookBenchReport) {
    let m = &report.median;
    println!(
        "payment webhooks, {} events, median of {} runs:",
        m.events,
        report.runs.len()
    );
    println!(
        "  accepted               {} in {:.3} s ({:.0} requests/s)",
        m.accepted, m.accept_seconds, m.accept_rate_per_second
    );
    println!(
        "  all stored after       {:.3} s (stored {}, duplicates {})",
        m.stored_seconds, m.stored, m.duplicates
    );
    println!(
        "  server CPU per event   {:.1} µs",
        m.server_cpu_us_per_event
    );
    println!(
        "  webhook CPU per event  {:.1} µs",
        m.webhook_cpu_us_per_event
    );
    println!(
        "  processor CPU per event {:.1} µs",
        m.processor_cpu_us_per_event
    );
}
