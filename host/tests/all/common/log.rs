//! The host's log, kept for a test to read.
//!
//! Every story runs in one test process, and a process has one global tracing
//! subscriber: [`init`] installs it once, whoever comes first (`TestServer::start`
//! or [`capture_logs`]). It keeps every line at `warn` and above twice: in the
//! output of the test that logged it from its own thread (shown when a test
//! fails), and in one buffer for the whole process that [`logged`] searches. Tests
//! run at once, so a line is found by what it names (a plugin, a job id, an
//! object id of the test's own), never by being the only one.

use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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

/// Installs the process's subscriber, once; later calls do nothing.
pub fn init() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("warn"))
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(|| LogWriter)
                    .with_ansi(false),
            )
            .try_init()
            .expect("the only subscriber of the test process");
    });
}

/// Keeps the host's log from now on; call it before the first server of the test
/// starts.
pub fn capture_logs() {
    init();
}

/// The log lines, kept since [`init`], that contain every one of `parts`.
pub fn logged(parts: &[&str]) -> Vec<String> {
    let log = LOG.lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .map(str::to_string)
        .collect()
}
