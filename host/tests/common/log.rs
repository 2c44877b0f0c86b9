//! The host's log, kept for a test to read: `capture_logs` installs, before any
//! server starts, a subscriber that keeps every line at `warn` and above
//! (`TestServer::start` installs one only when none is set), and `logged` finds the
//! lines that name what a test is after (tests of one binary run at once, so a line
//! is found by what it names: a plugin, a job id).
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::{Mutex, OnceLock};

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keeps the host's log from now on; call it before the first server starts.
pub fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .try_init()
            .expect("the first subscriber of this test binary");
    });
}

/// The log lines that contain every one of `parts`.
pub fn logged(parts: &[&str]) -> Vec<String> {
    let log = LOG.lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .map(str::to_string)
        .collect()
}
