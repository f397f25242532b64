//! Helpers for the end-to-end tests: start and kill the real `payops` binary, sign webhooks.
//!
//! The binary is the one `cargo build --workspace --bins` put beside the test executable
//! (`scripts/test.sh` builds it first). Servers bind 127.0.0.1 only, every wait is bounded, and
//! a `Server` kills its process when dropped, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use payops_local::client::HttpClient;

/// How long a server may take to print its address.
pub const SERVER_START_TIMEOUT_MS: u64 = 30_000;
/// How long a test waits for asynchronous work (queues draining) before it fails.
pub const SETTLE_TIMEOUT_MS: u64 = 60_000;
pub const SETTLE_POLL_MS: u64 = 20;
pub const TEST_SECRET: &str = "whsec_e2e_tests";

/// `target/debug/payops`, next to `target/debug/deps/e2e-…`.
pub fn payops_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = dir.join("payops");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p payops-local` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

pub struct Server {
    child: Option<Child>,
    pub base_url: String,
}

impl Server {
    /// Starts `payops up --port 0 --data DIR` and waits for its address.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with_env(data_dir, &[])
    }

    /// As [`Server::start`], with extra environment (e.g. the provider sandbox's settings).
    pub fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(payops_binary())
            .args(["up", "--port", "0", "--data"])
            .arg(data_dir)
            .env("PAYOPS_WEBHOOK_SECRET", TEST_SECRET)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("payops starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("payops up: listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let base_url = match rx.recv_timeout(Duration::from_millis(SERVER_START_TIMEOUT_MS)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("payops up did not print its address in time");
            }
        };
        Server {
            child: Some(child),
            base_url,
        }
    }

    /// SIGKILL: no graceful anything, as a crash or an OOM kill.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: kill(2) on our own child's pid; no memory is passed.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_millis(SERVER_START_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(SETTLE_POLL_MS));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `Payops-Signature` header for `body`, signed now with the test secret.
pub fn signature(body: &[u8]) -> String {
    payops_core::webhook_signature::sign(
        TEST_SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
        body,
    )
}

/// Polls `check` until it returns `Some`, failing the test after `SETTLE_TIMEOUT_MS`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_millis(SETTLE_TIMEOUT_MS);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
    }
}
