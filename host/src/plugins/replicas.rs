//! Replicas: several `ham` processes on one PostgreSQL serve the same active
//! plugin versions.
//!
//! An activation (upload, rollback, bundled install) stamps the version in the
//! database and, in the same transaction, sends `pg_notify('ham_plugins', <name>)`
//! (see `store::plugin_versions`). Every process LISTENs on that channel with a
//! connection of its own (the pool is an `AnyPool`; LISTEN needs a PostgreSQL
//! connection) and, on a notification, [`Registry::reload`]s that plugin: the
//! component comes from the database, compiled from the on-disk cache, and is
//! published in the snapshot. Notifications are lost while a process is down or
//! its listening connection is, so a process also converges
//!
//! - at start (it loads the active versions),
//! - after every (re)connection of its listener,
//! - every [`CHECK_EVERY`], comparing each plugin's active version id with its own.
//!
//! Rollouts (see `plugins::rollout`) are announced on the same channel when they
//! start and when they are decided, and the reload brings a process's candidate
//! in line with the database too. A process's own activations come back as
//! notifications too; the reload sees the version already served and does
//! nothing. SQLite is one process: nothing
//! to do there.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::Registry;
use crate::store::plugin_versions::SWAP_CHANNEL;

/// How often a process compares its active versions with the database.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Wait before connecting the listener again after a failure.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Listens for activations announced by other processes and converges on the
/// database's active versions until the task is aborted.
pub fn spawn(registry: Arc<Registry>, database_url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listen(&registry, &database_url).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "plugin swap listener failed; reconnecting")
                }
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    })
}

/// One listening connection's life: returns when it is lost.
async fn listen(registry: &Registry, database_url: &str) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(database_url).await?;
    listener.listen(SWAP_CHANNEL).await?;
    // Anything activated while we were not listening.
    converge(registry).await;
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        tokio::select! {
            notification = listener.try_recv() => match notification? {
                Some(n) => reload(registry, n.payload()).await,
                // The connection dropped (notifications may be lost); converge.
                None => {
                    converge(registry).await;
                    return Ok(());
                }
            },
            _ = check.tick() => converge(registry).await,
        }
    }
}

async fn reload(registry: &Registry, name: &str) {
    if let Err(e) = registry.reload(name).await {
        tracing::error!(plugin = %name, error = %e, "could not load the version another process activated");
    }
}

/// Reloads every plugin whose active version differs from the one served here.
pub async fn converge(registry: &Registry) {
    let active = match registry.db().active_version_ids().await {
        Ok(active) => active,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the active plugin versions");
            return;
        }
    };
    for (name, id) in active {
        if registry.get(&name).map(|p| p.version_id) != Some(id) {
            reload(registry, &name).await;
        }
    }
    // Rollouts started or decided while this process was not listening.
    let running = match registry.db().running_rollouts().await {
        Ok(running) => running,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the rollouts under way");
            return;
        }
    };
    let snapshot = registry.snapshot();
    let mut names: std::collections::BTreeSet<String> =
        running.iter().map(|r| r.name.clone()).collect();
    names.extend(
        snapshot
            .plugins
            .keys()
            .filter(|n| snapshot.canary(n).is_some())
            .cloned(),
    );
    for name in names {
        let wanted = running.iter().find(|r| r.name == name).map(|r| r.id);
        if snapshot.canary(&name).map(|c| c.rollout_id) != wanted {
            reload(registry, &name).await;
        }
    }
}
