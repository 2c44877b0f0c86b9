//! Rollouts and approval, over HTTP: a candidate version serves a share of
//! requests beside the stable one; the host rolls a failing one back and
//! promotes a healthy one by itself (on SQLite, and on PostgreSQL with a second
//! replica that follows); a signed-in user keeps one version; an admin promotes
//! or aborts by hand; an upload that asks for more waits for approval.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use common::process::until;
use common::session::Session;
use common::upload_plugin_rollout as upload;
use common::{ADMIN_TOKEN, Backend, TestServer, client, error_of, guest, probe_manifest, rebuilt};

async fn admin_get(base: &str, path: &str) -> Value {
    let response = client()
        .get(format!("{base}/api/admin{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

async fn admin_post(base: &str, path: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/api/admin{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

/// Requests to `/plugins/probe/label` in `tasks` loops, until stopped: each with
/// the time it started, its status and body.
struct Load {
    stop: Arc<AtomicBool>,
    loops: Vec<tokio::task::JoinHandle<Vec<(Instant, u16, String)>>>,
}

impl Load {
    fn start(base: &str, tasks: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{base}/plugins/probe/label");
        let loops = (0..tasks)
            .map(|_| {
                let (stop, url) = (stop.clone(), url.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let outcome = match client().get(&url).send().await {
                            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                            Err(e) => (0, e.to_string()),
                        };
                        seen.push((started, outcome.0, outcome.1));
                        // Steady, not flat out: the machine is shared.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    seen
                })
            })
            .collect();
        Self { stop, loops }
    }

    async fn finish(self) -> Vec<(Instant, u16, String)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for handle in self.loops {
            all.extend(handle.await.unwrap());
        }
        all
    }
}

/// The rollout of `probe` as `GET /api/admin/plugins/probe` shows it, once its
/// state is `state` (at most 20 s), with the moment it was first seen so.
async fn rollout_once(base: &str, state: &str) -> (Value, Instant) {
    until(
        Duration::from_secs(20),
        &format!("the rollout to be {state}"),
        || async {
            let plugin = admin_get(base, "/plugins/probe").await;
            (plugin["rollout"]["state"] == state)
                .then(|| (plugin["rollout"].clone(), Instant::now()))
        },
    )
    .await
}

fn failed_share(outcomes: &[&(Instant, u16, String)]) -> f64 {
    let failed = outcomes
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .count();
    failed as f64 / outcomes.len().max(1) as f64
}

const PLAN: &str =
    r#"{"canary_percent": 20, "min_requests": 50, "max_error_rate": 0.05, "window_s": 60}"#;

async fn failing_candidate_story(backend: Backend) {
    let Some(a) = TestServer::builder(backend).start().await else {
        return;
    };
    let b = match backend {
        Backend::Postgres => Some(
            TestServer::builder(backend)
                .sharing_database_of(&a)
                .start()
                .await
                .unwrap(),
        ),
        Backend::Sqlite => None,
    };
    a.install(
        "probe",
        &probe_manifest("probe", "0.1.0", "v1", ""),
        guest("probe"),
    )
    .await;
    if let Some(b) = &b {
        until(Duration::from_secs(5), "B to serve probe 0.1.0", || async {
            (b.get_text("/plugins/probe/label").await == (200, "v1".to_string())).then_some(())
        })
        .await;
    }
    let load_a = Load::start(&a.url, 4);
    let load_b = b.as_ref().map(|b| Load::start(&b.url, 2));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A version that fails every request (the probe answers 500 to /label when
    // its label is "fail"), rolled out to a fifth.
    let response = upload(
        &a.url,
        "probe",
        &probe_manifest("probe", "0.2.0", "fail", ""),
        rebuilt(&guest("probe"), "fail"),
        Some(PLAN),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["activation"], "canary", "{body}");
    assert_eq!(body["active"], false);
    assert_eq!(body["rollout"]["state"], "canary");
    assert_eq!(body["rollout"]["stable_version"], "0.1.0");
    assert_eq!(body["rollout"]["candidate_version"], "0.2.0");
    let uploaded = Instant::now();

    let (rollout, decided) = rollout_once(&a.url, "rolled_back").await;
    // Let the load go on after the decision.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let on_a = load_a.finish().await;
    let on_b = match load_b {
        Some(load) => load.finish().await,
        None => Vec::new(),
    };

    assert_eq!(rollout["decided_by"], "host", "{rollout}");
    assert_eq!(rollout["stable_version"], "0.1.0");
    let candidate = &rollout["candidate"];
    assert!(
        candidate["requests"].as_i64().unwrap() >= 50,
        "judged after min_requests: {rollout}"
    );
    assert!(
        candidate["requests"].as_i64().unwrap() <= 400,
        "judged soon after min_requests: {rollout}"
    );
    assert_eq!(candidate["errors"], candidate["requests"], "{rollout}");
    assert_eq!(rollout["stable"]["errors"], 0, "{rollout}");
    let reason = rollout["reason"].as_str().unwrap();
    assert!(reason.contains("error rate"), "{reason}");

    // During the canary about a fifth of the requests failed, and only with the
    // candidate's answer; after the decision none did.
    for (replica, outcomes, margin) in [
        ("A", &on_a, Duration::ZERO),
        ("B", &on_b, Duration::from_millis(1000)),
    ] {
        if outcomes.is_empty() {
            continue;
        }
        let during: Vec<_> = outcomes
            .iter()
            .filter(|(t, _, _)| *t > uploaded && *t < decided)
            .collect();
        let after: Vec<_> = outcomes
            .iter()
            .filter(|(t, _, _)| *t > decided + margin)
            .collect();
        for (_, status, body) in outcomes.iter() {
            assert!(
                (*status == 200 && body == "v1") || (*status == 500),
                "{replica}: unexpected answer {status} {body}"
            );
        }
        let share = failed_share(&during);
        eprintln!(
            "{replica}: {:.1} % of {} requests failed during the canary, {:.1} % of {} after",
            share * 100.0,
            during.len(),
            failed_share(&after) * 100.0,
            after.len()
        );
        if replica == "A" {
            assert!(
                during.len() >= 100 && (0.08..=0.40).contains(&share),
                "{replica}: {} of {} requests failed during the canary",
                (share * during.len() as f64).round(),
                during.len()
            );
        }
        assert!(
            after.len() >= 20,
            "{replica}: only {} requests after",
            after.len()
        );
        assert_eq!(
            failed_share(&after),
            0.0,
            "{replica}: requests failed after the rollback"
        );
    }

    // The stable version stays active everywhere; the decision was counted once.
    let plugin = admin_get(&a.url, "/plugins/probe").await;
    assert_eq!(plugin["version"], "0.1.0");
    let mut decided_here = 0;
    for server in std::iter::once(&a).chain(b.as_ref()) {
        let metrics = server.metrics().await;
        decided_here += metrics
            .lines()
            .filter(|l| {
                l.starts_with("ham_plugin_rollouts_total{plugin=\"probe\",outcome=\"rolled_back\"}")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>();
    }
    assert_eq!(decided_here, 1, "one replica decides");
    if let Some(b) = b {
        let plugin = admin_get(&b.url, "/plugins/probe").await;
        assert_eq!(plugin["rollout"]["state"], "rolled_back");
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_candidate_is_rolled_back_by_itself_on_sqlite() {
    failing_candidate_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_candidate_is_rolled_back_on_both_replicas_on_postgres() {
    failing_candidate_story(Backend::Postgres).await;
}

async fn healthy_candidate_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    let load = Load::start(&server.url, 4);
    let response = upload(
        &server.url,
        "probe",
        &probe_manifest("probe", "0.2.0", "v2", ""),
        rebuilt(&guest("probe"), "v2"),
        Some(r#"{"canary_percent": 20, "min_requests": 30}"#),
    )
    .await;
    assert_eq!(response.status(), 201);
    let (rollout, decided) = rollout_once(&server.url, "promoted").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.finish().await;
    assert_eq!(rollout["decided_by"], "host");
    assert_eq!(rollout["candidate"]["errors"], 0);
    assert!(rollout["candidate"]["requests"].as_i64().unwrap() >= 30);
    for (started, status, body) in &outcomes {
        assert_eq!(*status, 200, "a request failed during the rollout: {body}");
        if *started > decided {
            assert_eq!(body, "v2", "a request after the promotion got {body}");
        }
    }
    assert!(outcomes.iter().any(|(_, _, b)| b == "v2"));
    let plugin = admin_get(&server.url, "/plugins/probe").await;
    assert_eq!(plugin["version"], "0.2.0");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("ham_plugin_rollouts_total{plugin=\"probe\",outcome=\"promoted\"} 1"),
        "{metrics}"
    );
    // The rollback after a promotion returns to the version it replaced.
    let response = admin_post(&server.url, "/plugins/probe/rollback").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".to_string())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_candidate_is_promoted_by_itself_on_sqlite() {
    healthy_candidate_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_candidate_is_promoted_by_itself_on_postgres() {
    healthy_candidate_story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_keeps_one_version_and_an_admin_promotes_or_aborts_by_hand() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| s.open_registration = true)
        .start()
        .await
        .unwrap();
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    // Judged only after far more requests than this test makes.
    let plan = r#"{"canary_percent": 50, "min_requests": 100000}"#;
    let response = upload(
        &server.url,
        "probe",
        &probe_manifest("probe", "0.2.0", "v2", ""),
        rebuilt(&guest("probe"), "v2"),
        Some(plan),
    )
    .await;
    assert_eq!(response.status(), 201);

    let mut users = Vec::new();
    for i in 0..16 {
        users.push(Session::register(&server, &format!("member{i}")).await);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, user) in users.iter_mut().enumerate() {
        let mut answers = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let response = user
                .send(&server, Method::GET, "/plugins/probe/label", None)
                .await;
            assert_eq!(response.status(), 200);
            answers.insert(response.text().await.unwrap());
        }
        assert_eq!(answers.len(), 1, "member{i} saw both versions: {answers:?}");
        seen.extend(answers);
    }
    assert_eq!(seen.len(), 2, "half the members on each version: {seen:?}");

    // While a rollout runs, another upload or a rollback waits for its decision.
    let response = upload(
        &server.url,
        "probe",
        &probe_manifest("probe", "0.3.0", "v3", ""),
        rebuilt(&guest("probe"), "v3"),
        None,
    )
    .await;
    let (status, code, message) = error_of(response).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "rollout_running"),
        "{message}"
    );
    assert!(message.contains("0.2.0"), "{message}");
    let (status, code, _) =
        error_of(admin_post(&server.url, "/plugins/probe/rollback").await).await;
    assert_eq!((status, code.as_str()), (409, "rollout_running"));

    // Promoted by hand: everyone gets 0.2.0.
    let response = admin_post(&server.url, "/plugins/probe/rollout/promote").await;
    assert_eq!(response.status(), 200);
    let rollout: Value = response.json().await.unwrap();
    assert_eq!(rollout["state"], "promoted");
    assert_eq!(rollout["decided_by"], "admin");
    for user in users.iter_mut() {
        let response = user
            .send(&server, Method::GET, "/plugins/probe/label", None)
            .await;
        assert_eq!(response.text().await.unwrap(), "v2");
    }
    let (status, code, _) =
        error_of(admin_post(&server.url, "/plugins/probe/rollout/promote").await).await;
    assert_eq!((status, code.as_str()), (409, "no_rollout"));

    // Aborted by hand: everyone stays on 0.2.0.
    let response = upload(
        &server.url,
        "probe",
        &probe_manifest("probe", "0.3.0", "v3", ""),
        rebuilt(&guest("probe"), "v3"),
        Some(plan),
    )
    .await;
    assert_eq!(response.status(), 201);
    let response = admin_post(&server.url, "/plugins/probe/rollout/abort").await;
    assert_eq!(response.status(), 200);
    let rollout: Value = response.json().await.unwrap();
    assert_eq!(rollout["state"], "aborted");
    assert_eq!(rollout["candidate_version"], "0.3.0");
    for user in users.iter_mut() {
        let response = user
            .send(&server, Method::GET, "/plugins/probe/label", None)
            .await;
        assert_eq!(response.text().await.unwrap(), "v2");
    }
    let plugin = admin_get(&server.url, "/plugins/probe").await;
    assert_eq!(plugin["version"], "0.2.0");
    assert_eq!(plugin["rollout"]["state"], "aborted");
    let metrics = server.metrics().await;
    assert!(metrics.contains("ham_plugin_rollouts_total{plugin=\"probe\",outcome=\"aborted\"} 1"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rollout_is_refused_and_nothing_is_stored() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    let cases = [
        ("{\"canary_percent\": 0}", "canary_percent: 0 is not"),
        ("{\"canary_percent\": 150}", "canary_percent: 150 is not"),
        ("{\"min_requests\": 50}", "canary_percent: required"),
        (
            "{\"canary_percent\": 20, \"max_error_rate\": 2}",
            "max_error_rate: 2",
        ),
        ("{\"canary_percent\": 20, \"window_s\": -1}", "window_s: -1"),
        (
            "{\"canary_percent\": 20, \"share\": 1}",
            "share: unknown field",
        ),
        ("twenty", "not JSON"),
    ];
    for (plan, expected) in cases {
        let response = upload(
            &server.url,
            "probe",
            &probe_manifest("probe", "0.2.0", "v2", ""),
            rebuilt(&guest("probe"), "v2"),
            Some(plan),
        )
        .await;
        let (status, code, message) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_rollout"),
            "{plan}: {message}"
        );
        assert!(message.contains(expected), "{plan}: {message}");
    }
    let versions = admin_get(&server.url, "/plugins/probe/versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".to_string())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_asking_for_a_new_outbound_host_waits_for_approval() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| s.plugin_approval = ham_host::settings::PluginApproval::Required)
        .start()
        .await
        .unwrap();
    // Asks for nothing beyond the defaults: live at once.
    let first = server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    assert_eq!(first["activation"], "active");
    assert_eq!(first["added_capabilities"], serde_json::json!([]));

    let wider = probe_manifest(
        "probe",
        "0.2.0",
        "v2",
        "allowed_outbound_hosts = [\"https://api.example.com\"]",
    );
    let response = upload(
        &server.url,
        "probe",
        &wider,
        rebuilt(&guest("probe"), "v2"),
        None,
    )
    .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["activation"], "pending_approval", "{body}");
    assert_eq!(body["active"], false);
    assert_eq!(
        body["added_capabilities"],
        serde_json::json!(["allowed_outbound_hosts: https://api.example.com"])
    );
    // Stored, not serving.
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".to_string())
    );
    let plugin = admin_get(&server.url, "/plugins/probe").await;
    assert_eq!(plugin["version"], "0.1.0");
    assert_eq!(
        plugin["pending_approval"][0]["version"], "0.2.0",
        "{plugin}"
    );
    assert_eq!(
        plugin["pending_approval"][0]["added_capabilities"][0],
        "allowed_outbound_hosts: https://api.example.com"
    );
    let versions = admin_get(&server.url, "/plugins/probe/versions").await;
    assert_eq!(versions[0]["approval"], "pending", "{versions}");
    // The same upload again is still waiting.
    let again = upload(
        &server.url,
        "probe",
        &wider,
        rebuilt(&guest("probe"), "v2"),
        None,
    )
    .await;
    assert_eq!(again.status(), 202);

    let response = admin_post(&server.url, "/plugins/probe/versions/0.2.0/approve").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["activation"], "active");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v2".to_string())
    );
    let (status, code, _) =
        error_of(admin_post(&server.url, "/plugins/probe/versions/0.2.0/approve").await).await;
    assert_eq!((status, code.as_str()), (409, "not_pending"));
    let (status, code, _) =
        error_of(admin_post(&server.url, "/plugins/probe/versions/9.9.9/approve").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));

    // Nothing more than the active version: live at once.
    let same = probe_manifest(
        "probe",
        "0.3.0",
        "v3",
        "allowed_outbound_hosts = [\"https://api.example.com\"]",
    );
    let response = upload(
        &server.url,
        "probe",
        &same,
        rebuilt(&guest("probe"), "v3"),
        None,
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v3".to_string())
    );
    server.stop().await;
}
