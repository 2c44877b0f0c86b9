//! The `ham:plugin/jobs` interface: a plugin queues durable work for itself, for
//! the acting user, or for a user who granted it earlier ([`crate::jobs::grant`]).
//! The queue and its workers are [`crate::jobs`]'.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::{Caller, CapabilitiesView, ctx};
use crate::jobs::grant;
use crate::store::Db;
use crate::store::jobs::NewJob;
use crate::store::now_ms;
use crate::store::sealed::HostSecret;
use crate::telemetry::Metrics;
use crate::wit::ham::plugin::jobs as wit;
use crate::wit::ham::plugin::types::Error as GuestError;

/// Largest job payload.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// What queueing draws on.
pub struct JobsHost {
    pub(super) db: Db,
    /// Grants are signed with keys derived from it.
    pub(super) secret: HostSecret,
    /// Attempts each queued job gets.
    pub(super) max_attempts: i64,
    pub(super) metrics: Arc<Metrics>,
}

/// The jobs context of one invocation.
pub struct JobsCtx {
    pub(super) caller: Caller,
    pub(super) host: Arc<JobsHost>,
}

pub(super) fn add_to_linker<T: CapabilitiesView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<JobsCtx>>(linker, |t| &mut ctx(t).jobs)
}

impl JobsCtx {
    /// Queues a job of this plugin acting for `user` (or for no user).
    async fn queue_job(
        &mut self,
        user: Option<String>,
        kind: String,
        payload: Vec<u8>,
        run_after: Option<i64>,
    ) -> Result<String, GuestError> {
        if kind.is_empty() || kind.len() > 100 || kind.contains('\0') {
            return Err(GuestError::InvalidArgument(
                "kind must be 1 to 100 bytes, without NUL".into(),
            ));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(GuestError::InvalidArgument(format!(
                "payload over {MAX_PAYLOAD} bytes"
            )));
        }
        let id = crate::auth::new_id();
        let queued = self
            .host
            .db
            .enqueue_job(&NewJob {
                id: &id,
                plugin: self.caller.plugin(),
                user_id: user.as_deref(),
                kind: &kind,
                payload: &payload,
                run_after: run_after.unwrap_or_else(now_ms),
                max_attempts: self.host.max_attempts,
            })
            .await;
        queued.map_err(|e| self.caller.host_failed(e))?;
        // Kinds are a plugin's own constants (`event`, `backfill`), so the series
        // stay few.
        self.host.metrics.inc(
            "ham_plugin_jobs_enqueued_total",
            &[("plugin", self.caller.plugin()), ("kind", &kind)],
        );
        Ok(id)
    }
}

impl wit::Host for JobsCtx {
    async fn enqueue(
        &mut self,
        kind: String,
        payload: Vec<u8>,
        run_after: Option<i64>,
    ) -> Result<String, GuestError> {
        let user = self.caller.user.as_deref().map(str::to_string);
        self.queue_job(user, kind, payload, run_after).await
    }

    async fn grant(&mut self) -> Result<String, GuestError> {
        let user = self.caller.acting_user()?;
        Ok(grant::issue(&self.host.secret, self.caller.plugin(), user))
    }

    async fn enqueue_granted(
        &mut self,
        grant: String,
        kind: String,
        payload: Vec<u8>,
        run_after: Option<i64>,
    ) -> Result<String, GuestError> {
        let Some(user) = grant::verify(&self.host.secret, self.caller.plugin(), &grant) else {
            return Err(GuestError::AccessDenied(
                "the grant was not issued to this plugin".into(),
            ));
        };
        self.queue_job(Some(user), kind, payload, run_after).await
    }
}
