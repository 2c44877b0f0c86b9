//! What the host tells operators about itself: metrics in Prometheus' text format at
//! `GET /metrics` on the metrics listener (`HAM_METRICS_ADDR`, `crate::serve_metrics`;
//! never on the main listener). The per-request span and HTTP metrics are
//! `api::observe`'s.
//!
//! Three kinds of metric, all in this file and none from a crate:
//!
//! - counters ([`Metrics::inc`], [`Metrics::add`]) and histograms
//!   ([`Metrics::observe`], seconds, fixed [`BUCKETS`]) the host updates as it works;
//!   a series comes into being at its first update;
//! - gauges read at scrape time ([`Gauge`]: the active plugin versions, the job
//!   queue by state, resident memory), passed to [`Metrics::render`].
//!
//! Every name is a `&'static str` from the [`HELP`] table, so each exposed family
//! has its `# HELP` and `# TYPE` lines, and a name outside the table is never
//! rendered. Label values are escaped as the exposition format requires. Secrets
//! never become labels; route labels are templates (`/api/habits/{id}`), never raw
//! paths, so a scan of random URLs cannot grow the series without bound.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Mutex;

/// A metric family's type, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Histogram,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
            Kind::Gauge => "gauge",
        }
    }
}

/// Every metric family the host exposes: name, type, help.
pub const HELP: &[(&str, Kind, &str)] = &[
    (
        "ham_http_requests_total",
        Kind::Counter,
        "HTTP requests by method, route template and status.",
    ),
    (
        "ham_http_request_duration_seconds",
        Kind::Histogram,
        "HTTP request latency (to the response head) by method and route template.",
    ),
    (
        "ham_plugin_invocations_total",
        Kind::Counter,
        "Plugin invocations by plugin, version and export.",
    ),
    (
        "ham_plugin_errors_total",
        Kind::Counter,
        "Plugin failures by plugin, version, export and kind: failed invocations (timeout, memory, fuel, trap, busy, failed, internal) and outbound requests the host refused (denied_outbound).",
    ),
    (
        "ham_plugin_invocation_duration_seconds",
        Kind::Histogram,
        "Plugin invocation latency by plugin, version and export.",
    ),
    (
        "ham_plugin_active",
        Kind::Gauge,
        "1 for the version of each plugin this process serves.",
    ),
    (
        "ham_plugin_idle_instances",
        Kind::Gauge,
        "HTTP plugin instances kept idle for reuse, all plugins together (at most 128).",
    ),
    (
        "ham_plugin_swaps_total",
        Kind::Counter,
        "Activations this process published (uploads, rollbacks, reloads from another replica) by plugin.",
    ),
    (
        "ham_plugin_rollouts_total",
        Kind::Counter,
        "Rollouts decided, by plugin and outcome (promoted, rolled_back, aborted); counted by the replica that decided.",
    ),
    (
        "ham_rules_rejected_answers_total",
        Kind::Counter,
        "Answers of a rules plugin refused by the host (a score outside 0..1, a wrong number of days, a refused input).",
    ),
    (
        "ham_rules_shadow_comparisons_total",
        Kind::Counter,
        "Habit answers of a shadow run's candidate rule set compared with the stable version's, by plugin and outcome (same, differed, error: the candidate failed; skipped: sampled but over the concurrency bound).",
    ),
    (
        "ham_plugin_jobs_enqueued_total",
        Kind::Counter,
        "Jobs plugins queued, by plugin and job kind (strava-sync's `event` jobs are Strava webhook events received).",
    ),
    (
        "ham_jobs",
        Kind::Gauge,
        "Jobs in the queue by state (queued, running, done, dead), read from the database at scrape.",
    ),
    (
        "ham_job_run_duration_seconds",
        Kind::Histogram,
        "Job runs by plugin and outcome (done, retry, dead).",
    ),
    (
        "ham_llm_tokens_total",
        Kind::Counter,
        "Language model tokens by provider, model and direction (input, output).",
    ),
    (
        "ham_process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory of this process.",
    ),
];

/// Histogram bucket upper bounds, in seconds (`+Inf` is implied).
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS.len() + 1];
        }
        let slot = BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get_mut(slot) {
            *b += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// A gauge value read at scrape time.
#[derive(Debug, Clone)]
pub struct Gauge {
    pub name: &'static str,
    pub labels: Labels,
    pub value: f64,
}

impl Gauge {
    pub fn new(name: &'static str, labels: &[(&'static str, &str)], value: f64) -> Self {
        Self {
            name,
            labels: owned(labels),
            value,
        }
    }
}

/// The host's counters and histograms, behind one lock: a request updates a
/// counter and a histogram together, taking it once.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
}

#[derive(Debug, Default)]
struct Series {
    counters: SeriesMap<u64>,
    histograms: SeriesMap<Histogram>,
}

/// Series of one kind, by a hash of their name and labels: an update of a series
/// that exists (every request's) finds it from the borrowed labels, without
/// allocating; only a new series copies its labels. The hash is Fx, not SipHash:
/// every request updates four series, and label values are the host's own
/// (routes, plugin versions, status codes), not a client's to choose.
#[derive(Debug)]
struct SeriesMap<V> {
    by_hash: HashMap<u64, Vec<(&'static str, Labels, V)>, rustc_hash::FxBuildHasher>,
}

impl<V> Default for SeriesMap<V> {
    fn default() -> Self {
        Self {
            by_hash: HashMap::default(),
        }
    }
}

impl<V: Default> SeriesMap<V> {
    fn series(&mut self, name: &'static str, labels: &[(&'static str, &str)]) -> &mut V {
        let mut hasher = rustc_hash::FxHasher::default();
        name.hash(&mut hasher);
        for (k, v) in labels {
            k.hash(&mut hasher);
            v.hash(&mut hasher);
        }
        let bucket = self.by_hash.entry(hasher.finish()).or_default();
        let at = match bucket
            .iter()
            .position(|(n, l, _)| *n == name && same(l, labels))
        {
            Some(at) => at,
            None => {
                bucket.push((name, owned(labels), V::default()));
                bucket.len() - 1
            }
        };
        &mut bucket[at].2
    }
}

impl<V> SeriesMap<V> {
    fn iter(&self) -> impl Iterator<Item = (&'static str, &Labels, &V)> {
        self.by_hash
            .values()
            .flatten()
            .map(|(name, labels, v)| (*name, labels, v))
    }

    /// Every series in (name, labels) order, for the exposition.
    fn sorted(&self) -> BTreeMap<(&'static str, Labels), V>
    where
        V: Clone,
    {
        self.iter()
            .map(|(name, labels, v)| ((name, labels.clone()), v.clone()))
            .collect()
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn same(l: &Labels, labels: &[(&str, &str)]) -> bool {
    l.len() == labels.len()
        && l.iter()
            .zip(labels)
            .all(|((k, v), (k2, v2))| k == k2 && v == v2)
}

impl Metrics {
    /// Adds one to the counter `name` with these labels.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Adds `n` to the counter `name` with these labels.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        if let Ok(mut series) = self.series.lock() {
            *series.counters.series(name, labels) += n;
        }
    }

    /// Records one observation (seconds) in the histogram `name`.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        if let Ok(mut series) = self.series.lock() {
            series.histograms.series(name, labels).observe(seconds);
        }
    }

    /// Adds one to a counter and records an observation in a histogram, under
    /// one lock: what every request and every plugin invocation records.
    pub fn count_and_observe(
        &self,
        (counter, counter_labels): (&'static str, &[(&'static str, &str)]),
        (histogram, histogram_labels): (&'static str, &[(&'static str, &str)]),
        seconds: f64,
    ) {
        if let Ok(mut series) = self.series.lock() {
            *series.counters.series(counter, counter_labels) += 1;
            series
                .histograms
                .series(histogram, histogram_labels)
                .observe(seconds);
        }
    }

    /// The current value of a counter (0 if never incremented).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let Ok(series) = self.series.lock() else {
            return 0;
        };
        series
            .counters
            .iter()
            .filter(|(n, l, _)| *n == name && same(l, labels))
            .map(|(_, _, v)| *v)
            .sum()
    }

    /// How many observations a histogram holds (0 if none).
    pub fn observations(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let Ok(series) = self.series.lock() else {
            return 0;
        };
        series
            .histograms
            .iter()
            .filter(|(n, l, _)| *n == name && same(l, labels))
            .map(|(_, _, h)| h.count)
            .sum()
    }

    /// The exposition: every family of [`HELP`] with its series, the gauges read
    /// at scrape included.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let (counters, histograms) = self
            .series
            .lock()
            .map(|s| (s.counters.sorted(), s.histograms.sorted()))
            .unwrap_or_default();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
            match kind {
                Kind::Counter => {
                    for ((_, labels), value) in counters.iter().filter(|((n, _), _)| n == name) {
                        let _ = writeln!(out, "{name}{} {value}", label_set(labels, None));
                    }
                }
                Kind::Gauge => {
                    for g in gauges.iter().filter(|g| g.name == *name) {
                        let _ = writeln!(
                            out,
                            "{name}{} {}",
                            label_set(&g.labels, None),
                            number(g.value)
                        );
                    }
                }
                Kind::Histogram => {
                    for ((_, labels), h) in histograms.iter().filter(|((n, _), _)| n == name) {
                        let mut cumulative = 0;
                        for (i, count) in h.buckets.iter().enumerate() {
                            cumulative += count;
                            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| number(*b));
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                label_set(labels, Some(&le))
                            );
                        }
                        let set = label_set(labels, None);
                        let _ = writeln!(out, "{name}_sum{set} {}", number(h.sum));
                        let _ = writeln!(out, "{name}_count{set} {}", h.count);
                    }
                }
            }
        }
        out
    }
}

fn label_set(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A sample value as Prometheus writes it (`1`, `0.25`, `+Inf`).
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// This process's resident memory in bytes, from `/proc/self/statm` (Linux);
/// `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The page size is 4 KiB on the platforms HAM ships for (amd64, arm64 Linux);
    // no libc call, as the crate forbids `unsafe`.
    Some(pages * 4096)
}

/// The log filter for `HAM_LOG` (already checked to parse as an `EnvFilter`).
/// Targets and levels alone (`info`, `info,plugin=debug`: what the docs show)
/// become a [`Targets`](tracing_subscriber::filter::Targets) filter, which decides
/// once per callsite and keeps no per-span state. `EnvFilter`, kept for span and
/// field directives (`ham_host[request]=debug`), takes a lock on every span's
/// creation, entry, exit, record and close: a dozen times per request.
pub fn log_filter<S>(spec: &str) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    // `Targets` reads `t[{f}]=level` and an empty directive differently from
    // `EnvFilter`; those go to `EnvFilter`.
    let plain = !spec.is_empty() && !spec.contains('[') && !spec.split(',').any(str::is_empty);
    if plain && let Ok(targets) = spec.parse::<tracing_subscriber::filter::Targets>() {
        return targets.boxed();
    }
    tracing_subscriber::EnvFilter::new(spec).boxed()
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
        let text = m.render(&[]);
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

    #[test]
    fn renders_cumulative_histograms_and_gauges() {
        let m = Metrics::default();
        let labels = [("method", "GET"), ("route", "/healthz")];
        m.observe("ham_http_request_duration_seconds", &labels, 0.003);
        m.observe("ham_http_request_duration_seconds", &labels, 100.0);
        let text = m.render(&[Gauge::new("ham_jobs", &[("state", "queued")], 3.0)]);
        let h = "ham_http_request_duration_seconds";
        assert!(text.contains(&format!(
            "{h}_bucket{{method=\"GET\",route=\"/healthz\",le=\"0.0025\"}} 0"
        )));
        assert!(text.contains(&format!(
            "{h}_bucket{{method=\"GET\",route=\"/healthz\",le=\"0.005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "{h}_bucket{{method=\"GET\",route=\"/healthz\",le=\"+Inf\"}} 2"
        )));
        assert!(text.contains(&format!("{h}_count{{method=\"GET\",route=\"/healthz\"}} 2")));
        assert!(text.contains("ham_jobs{state=\"queued\"} 3\n"));
        assert_eq!(m.observations(h, &labels), 2);
    }

    /// What the filter lets through: (target, level) pairs, checked at callsites
    /// of those targets, and a `debug` event of `ham_host` inside a `request` span.
    fn let_through(
        filter: Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>,
    ) -> Vec<bool> {
        use tracing::{Level, event_enabled};
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            let outside = [
                event_enabled!(target: "ham_host::api", Level::INFO),
                event_enabled!(target: "ham_host::api", Level::DEBUG),
                event_enabled!(target: "plugin", Level::INFO),
                event_enabled!(target: "plugin", Level::DEBUG),
                event_enabled!(target: "hyper", Level::WARN),
                event_enabled!(target: "hyper", Level::INFO),
            ];
            let span = tracing::error_span!(target: "ham_host::api", "request");
            let inside = span.in_scope(|| event_enabled!(target: "ham_host::api", Level::DEBUG));
            outside.into_iter().chain([inside]).collect()
        })
    }

    #[test]
    fn log_filter_lets_through_what_env_filter_does() {
        for spec in [
            "info",
            "warn,plugin=debug",
            "ham_host=debug,hyper=off",
            "off",
            "INFO,plugin=trace",
            "info,ham_host[request]=debug",
            "info,",
        ] {
            assert_eq!(
                let_through(log_filter(spec)),
                let_through(Box::new(tracing_subscriber::EnvFilter::new(spec))),
                "{spec}"
            );
        }
        // A span directive works through the fallback: debug inside `request` only.
        assert_eq!(
            let_through(log_filter("info,ham_host[request]=debug")),
            [true, false, true, false, true, true, true]
        );
    }

    #[test]
    fn reads_resident_memory_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_memory_bytes().unwrap_or(0) > 0);
        }
    }
}
