//! The `ham:plugin/log` interface: a plugin's logs land in the host's tracing,
//! tagged with the plugin's name and version.

use super::Invocation;
use super::bindings::ham::plugin::log::{self, Level};

/// Longest message kept from one call; the rest is cut, so a chatty or hostile
/// plugin cannot flood the host's log with one line.
const MAX_MESSAGE: usize = 4096;

impl log::Host for Invocation {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let plugin = self.plugin.manifest.name.as_str();
        let version = self.plugin.version_label();
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
