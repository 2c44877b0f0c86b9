//! `GET /metrics` after a known sequence of requests and plugin calls (a trap
//! among them): the exposition parses with a strict parser of Prometheus' text
//! format (version 0.0.4), and has the expected families, labels and counts. It
//! is served on the metrics listener (`HAM_METRICS_ADDR`) only, never on the
//! main one that the public route reaches.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Backend, TestServer, client, error_of, guest, probe_manifest, rebuilt};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: samples, and each family's type.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }
}

fn is_name(s: &str, colons: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':');
    matches!(chars.next(), Some(c) if ok_first(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value `{s}`")),
    }
}

/// `{a="x",b="y"}` at the start of `s`: the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((labels, s));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = &rest[..eq];
        if !is_name(name, false) {
            return Err(format!("bad label name `{name}`"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label `{name}` repeated"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by `,`".into());
        }
    }
}

/// A strict reading of the text format: every sample belongs to a family whose
/// `# TYPE` came first, families are contiguous, no series repeats, histogram
/// buckets are cumulative and end with `+Inf` equal to `_count`.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut helped = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen_series = BTreeSet::new();
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (keyword, name, rest) = (parts.next(), parts.next(), parts.next());
            match (keyword, name) {
                (Some("HELP"), Some(name))
                    if !is_name(name, true) || !helped.insert(name.to_string()) =>
                {
                    return Err(at("bad or repeated HELP".into()));
                }
                (Some("TYPE"), Some(name)) => {
                    let kind = rest.ok_or_else(|| at("TYPE without a type".into()))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type `{kind}`")));
                    }
                    if out
                        .types
                        .insert(name.to_string(), kind.to_string())
                        .is_some()
                    {
                        return Err(at("TYPE repeated".into()));
                    }
                    current = Some(name.to_string());
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(at(format!("bad metric name `{name}`")));
        }
        let (labels, rest) = parse_labels(&line[name_end..]).map_err(at)?;
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("bad timestamp `{ts}`")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        let kind = out.types[&family].as_str();
        let belongs = match kind {
            "histogram" => {
                let suffix = name.strip_prefix(family.as_str()).unwrap_or("-");
                match suffix {
                    "_bucket" => labels.contains_key("le"),
                    "_sum" | "_count" => !labels.contains_key("le"),
                    _ => false,
                }
            }
            _ => name == family,
        };
        if !belongs {
            return Err(at(format!("sample outside its family `{family}` ({kind})")));
        }
        if !seen_series.insert(format!("{name}{labels:?}")) {
            return Err(at("series repeated".into()));
        }
        out.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_histograms(&out)?;
    Ok(out)
}

type LabelPairs = Vec<(String, String)>;

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, _) in e.types.iter().filter(|(_, k)| *k == "histogram") {
        let bucket = format!("{family}_bucket");
        // Per series (labels without `le`): its (le, cumulative count) pairs.
        let mut series: BTreeMap<LabelPairs, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e.samples.iter().filter(|s| s.name == bucket) {
            let mut key: Vec<_> = s.labels.clone().into_iter().collect();
            key.retain(|(k, _)| k != "le");
            let le = parse_value(&s.labels["le"])?;
            series.entry(key).or_default().push((le, s.value));
        }
        for (key, buckets) in series {
            let ordered = buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
            let last = buckets.last().copied().unwrap_or((0.0, 0.0));
            let labels: BTreeMap<String, String> = key.into_iter().collect();
            let count = e
                .samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == labels)
                .map(|s| s.value);
            if !ordered || last.0 != f64::INFINITY || count != Some(last.1) {
                return Err(format!("histogram {family} {labels:?} is not cumulative"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_strict_parser_refuses_malformed_expositions() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse(good).is_ok());
    for bad in [
        "a_total 1\n",                                    // no TYPE
        "# TYPE a_total counter\na_total{x=\"1} 2\n",     // unterminated
        "# TYPE a_total counter\na_total{x=\"1\"} two\n", // bad value
        "# TYPE a_total counter\na_total 1\na_total 2\n", // repeated series
        "# TYPE a_total counter\nb_total 1\n",            // outside family
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
        "# TYPE a_total counter\na_total 1", // no final newline
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
}

/// Jobs in the queue that are not the probe's (bundled plugins' schedules),
/// read right after a scrape: a new one lands at most once a minute.
async fn other_plugins_jobs(server: &TestServer) -> f64 {
    let jobs = server.state.db.list_jobs(None, 500).await.unwrap();
    let others = jobs.iter().filter(|j| j.plugin != "probe").count();
    f64::from(u32::try_from(others).unwrap())
}

#[tokio::test]
async fn metrics_count_requests_plugin_calls_and_failures() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();

    for _ in 0..3 {
        assert_eq!(server.get_text("/healthz").await.0, 200);
    }
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "one", ""),
            guest("probe"),
        )
        .await;
    for _ in 0..2 {
        assert_eq!(
            server.get_text("/plugins/probe/label").await,
            (200, "one".into())
        );
    }
    assert_eq!(server.get_text("/plugins/probe/trap").await.0, 500);
    assert_eq!(server.get_text("/plugins/nothing-here/x").await.0, 404);
    assert_eq!(server.get_text("/api/habits/some-id").await.0, 401);
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.2.0", "two", ""),
            rebuilt(&guest("probe"), "two"),
        )
        .await;
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "two".into())
    );

    let response = client()
        .get(format!("{}/metrics", server.metrics_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let types = |name: &str| m.types.get(name).map(String::as_str);
    for (name, kind) in [
        ("ham_http_requests_total", "counter"),
        ("ham_http_request_duration_seconds", "histogram"),
        ("ham_plugin_invocations_total", "counter"),
        ("ham_plugin_errors_total", "counter"),
        ("ham_plugin_invocation_duration_seconds", "histogram"),
        ("ham_plugin_active", "gauge"),
        ("ham_plugin_idle_instances", "gauge"),
        ("ham_plugin_swaps_total", "counter"),
        ("ham_jobs", "gauge"),
        ("ham_job_run_duration_seconds", "histogram"),
        ("ham_llm_tokens_total", "counter"),
        ("ham_process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(types(name), Some(kind), "{name}");
    }

    // HTTP by route template and status.
    let http = "ham_http_requests_total";
    let get = |route: &str, status: &str| {
        m.value(
            http,
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(get("/healthz", "200"), Some(3.0));
    assert_eq!(get("/plugins/probe", "200"), Some(3.0));
    assert_eq!(get("/plugins/probe", "500"), Some(1.0));
    assert_eq!(get("unmatched", "404"), Some(1.0));
    assert_eq!(get("/api/habits/{id}", "401"), Some(1.0));
    assert_eq!(
        m.value(
            http,
            &[
                ("method", "PUT"),
                ("route", "/api/admin/plugins/{name}"),
                ("status", "201")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.value(
            "ham_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/plugins/probe")]
        ),
        Some(4.0)
    );

    // Per plugin version: invocations, the trap, latency.
    let v1 = [
        ("plugin", "probe"),
        ("version", "0.1.0"),
        ("export", "http"),
    ];
    let v2 = [
        ("plugin", "probe"),
        ("version", "0.2.0"),
        ("export", "http"),
    ];
    assert_eq!(m.value("ham_plugin_invocations_total", &v1), Some(3.0));
    assert_eq!(m.value("ham_plugin_invocations_total", &v2), Some(1.0));
    assert_eq!(
        m.value(
            "ham_plugin_errors_total",
            &[v1[0], v1[1], v1[2], ("kind", "trap")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("ham_plugin_invocation_duration_seconds_count", &v1),
        Some(3.0)
    );

    // The active version as a labelled gauge, and the swaps.
    assert_eq!(
        m.value(
            "ham_plugin_active",
            &[("plugin", "probe"), ("version", "0.2.0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "ham_plugin_active",
            &[("plugin", "probe"), ("version", "0.1.0")]
        ),
        None
    );
    assert_eq!(
        m.value("ham_plugin_swaps_total", &[("plugin", "probe")]),
        Some(2.0)
    );

    // Memory read at scrape; no jobs of the probe yet (the bundled reminders
    // plugin's scheduled ticks are in the queue from the start).
    assert!(m.value("ham_process_resident_memory_bytes", &[]).unwrap() > 1_000_000.0);
    assert_eq!(m.sum("ham_jobs") - other_plugins_jobs(&server).await, 0.0);

    // Refused outbound requests and queued jobs, per plugin.
    let (status, body) = server
        .get_text("/plugins/probe/fetch?url=http://example.invalid/")
        .await;
    assert_eq!(status, 502, "the probe reports the refusal: {body}");
    for _ in 0..2 {
        let (status, body) = server
            .get_text("/plugins/probe/jobs/enqueue?kind=event&payload=x")
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let text = server.metrics().await;
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        m.value(
            "ham_plugin_errors_total",
            &[v2[0], v2[1], v2[2], ("kind", "denied_outbound")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "ham_plugin_jobs_enqueued_total",
            &[("plugin", "probe"), ("kind", "event")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.sum("ham_jobs") - other_plugins_jobs(&server).await,
        2.0,
        "both jobs are in the queue, in some state"
    );
    server.stop().await;
}

/// The main listener (what the public route reaches) does not serve `/metrics`:
/// a script gets the API's JSON 404 and a browser the app's not-found page, as
/// for any unknown path. The metrics listener serves `/metrics` and nothing else.
#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    assert_ne!(server.url, server.metrics_url);

    let response = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(
        error_of(response).await.0,
        404,
        "GET /metrics on the main listener"
    );
    let page = client()
        .get(server.url("/metrics"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let page = page.text().await.unwrap();
    assert!(!page.contains("# TYPE"), "{page}");

    let text = server.metrics().await;
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // The main listener's two refusals are counted (under `web`, the label of
    // paths outside `/api` that nothing claims); the metrics listener's own
    // requests are not the app's traffic.
    let refused = [("method", "GET"), ("route", "web"), ("status", "404")];
    assert_eq!(m.value("ham_http_requests_total", &refused), Some(2.0));

    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/api/me",
        "/plugins/probe/label",
    ] {
        let response = client()
            .get(format!("{}{path}", server.metrics_url))
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(response).await;
        assert_eq!(
            (status, code.as_str(), message.as_str()),
            (404, "not_found", "this listener serves GET /metrics only"),
            "{path} on the metrics listener"
        );
    }
    let post = client()
        .post(format!("{}/metrics", server.metrics_url))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    server.stop().await;
}
