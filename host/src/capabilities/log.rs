//! The `ham:plugin/log` interface: a plugin's logs land in the host's tracing,
//! tagged with the plugin's name and version.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::{CapabilitiesView, Grants, ctx};
use crate::wit::ham::plugin::log::{self, Level};

/// Longest message kept from one call; the rest is cut, so a chatty or hostile
/// plugin cannot flood the host's log with one line.
const MAX_MESSAGE: usize = 4096;

/// The log context of one invocation: whose lines these are.
pub struct LogCtx {
    pub(super) grants: Arc<Grants>,
}

pub(super) fn add_to_linker<T: CapabilitiesView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasSelf<LogCtx>>(linker, |t| &mut ctx(t).log)
}

impl log::Host for LogCtx {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let plugin = self.grants.plugin.as_str();
        let version = self.grants.version.as_str();
        let mut message = message;
        truncate(&mut message, MAX_MESSAGE);
        let fields = format_fields(&fields);
        match level {
            Level::Trace => {
                tracing::trace!(target: "plugin", plugin, %version, fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "plugin", plugin, %version, fields, "{message}")
            }
            Level::Info => tracing::info!(target: "plugin", plugin, %version, fields, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, %version, fields, "{message}"),
            Level::Error => {
                tracing::error!(target: "plugin", plugin, %version, fields, "{message}")
            }
        }
    }
}

fn format_fields(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in fields.iter().take(32) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    truncate(&mut out, MAX_MESSAGE);
    out
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}
