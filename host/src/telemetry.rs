//! Counters the host keeps about itself, rendered in Prometheus' text format at
//! `GET /metrics`.
//!
//! A counter is a name plus label pairs; it comes into being at its first
//! increment. Names are `&'static str` from the [`HELP`] table, so every exposed
//! metric has its `# HELP` and `# TYPE` lines. Label values are escaped as the
//! exposition format requires. Secrets never become labels.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Every counter the host exposes, with its help text.
pub const HELP: &[(&str, &str)] = &[
    (
        "ham_plugin_invocations_total",
        "Plugin invocations by plugin, version and export.",
    ),
    (
        "ham_plugin_errors_total",
        "Failed plugin invocations by plugin, version, export and kind (timeout, memory, fuel, trap, busy, failed, internal).",
    ),
    (
        "ham_rules_rejected_answers_total",
        "Answers of a rules plugin refused by the host (a score outside 0..1, a wrong number of days, a refused input).",
    ),
];

type Labels = Vec<(&'static str, String)>;

/// The host's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
}

impl Metrics {
    /// Adds one to the counter `name` with these labels.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
        );
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry(key).or_insert(0) += 1;
        }
    }

    /// The current value of a counter (0 if never incremented).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let Ok(counters) = self.counters.lock() else {
            return 0;
        };
        counters
            .iter()
            .filter(|((n, l), _)| {
                *n == name
                    && l.len() == labels.len()
                    && l.iter()
                        .zip(labels)
                        .all(|((k, v), (k2, v2))| k == k2 && v == v2)
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// The exposition: every counter, grouped by name with its help.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(counters) = self.counters.lock() else {
            return out;
        };
        for (name, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((_, labels), value) in counters.iter().filter(|((n, _), _)| n == name) {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let m = Metrics::default();
        m.inc(
            "ham_plugin_errors_total",
            &[("plugin", "a\"b"), ("kind", "trap")],
        );
        m.inc(
            "ham_plugin_errors_total",
            &[("plugin", "a\"b"), ("kind", "trap")],
        );
        let text = m.render();
        assert!(text.contains("ham_plugin_errors_total{plugin=\"a\\\"b\",kind=\"trap\"} 2"));
        assert!(text.contains("# TYPE ham_plugin_invocations_total counter"));
        assert_eq!(
            m.get(
                "ham_plugin_errors_total",
                &[("plugin", "a\"b"), ("kind", "trap")]
            ),
            2
        );
    }
}
