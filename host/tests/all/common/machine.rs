//! Turns on the machine for the tests that load it and the tests that time it.
//!
//! Every story runs in one test process, two tests at a time (one per core on the
//! CI machine). A few tests load the whole machine on purpose (a thousand slow
//! connections held open, a flood of password checks in a child `ham`), and a few
//! assert that an answer comes within a short bound (a second or two). Run side by
//! side, the bound would measure the other test's flood. So a loading test holds
//! [`flood`] (no other loading or timing test runs meanwhile) and a timing test
//! holds [`timed`] (timing tests share the machine with each other and with every
//! ordinary test, as they did when each story was a test binary of its own).
//! Ordinary tests take neither.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static MACHINE: RwLock<()> = RwLock::const_new(());

/// Held by a test that floods the machine, for as long as it runs.
pub async fn flood() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// Held by a test that asserts an answer comes within a short bound.
pub async fn timed() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}
