//! `ham serve` as a real OS process: started from the built binary with its own
//! environment, its address read from its log, and killed without warning
//! (SIGKILL) when a test wants a host to die mid-work.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `ham <args>` to completion with only `env` as its environment;
/// (success, stdout then stderr).
pub async fn run_ham(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = tokio::process::Command::new(ham_binary())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The `ham` binary. Cargo names it for tests and benches, not for examples
/// (which include this harness but never start a process).
pub fn ham_binary() -> &'static str {
    #[allow(
        clippy::option_env_unwrap,
        reason = "only tests and benches call this, and cargo defines it for them"
    )]
    option_env!("CARGO_BIN_EXE_ham").expect("the ham binary (tests and benches only)")
}

/// A running `ham serve` process.
pub struct HamProcess {
    child: Child,
    pub url: String,
    /// Its metrics listener (`HAM_METRICS_ADDR`, an ephemeral port here).
    pub metrics_url: String,
}

impl HamProcess {
    /// Starts `ham serve`, and its metrics listener, on ephemeral ports with
    /// `env` (on top of a clean environment) and waits, up to 60 s, for it to log
    /// its addresses.
    pub fn spawn(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(ham_binary());
        command
            .arg("serve")
            .env_clear()
            .env("HAM_ADDR", "127.0.0.1:0")
            .env("HAM_METRICS_ADDR", "127.0.0.1:0")
            .env("HAM_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("starting the ham binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let listener = if line.contains("ham serving") {
                    "main"
                } else if line.contains("metrics listener serving") {
                    "metrics"
                } else {
                    continue;
                };
                if let Some(addr) = line.split("addr=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send((listener, addr));
                }
            }
        });
        // The metrics listener is logged first.
        let mut metrics = String::new();
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(("metrics", addr)) => metrics = addr,
                Ok((_, addr)) => break addr,
                Err(_) => panic!("ham did not log `ham serving` within 60 s"),
            }
        };
        Self {
            child,
            url: format!("http://{addr}"),
            metrics_url: format!("http://{metrics}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGKILL: no shutdown, no cleanup, leases left as they were.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
