//! The author kit end to end: `ham plugin new` of every kind, built by cargo for
//! wasm32-wasip2 outside any repository (offline, from the local registry), then
//! `ham plugin check`, `ham plugin test` and `ham plugin install` against a real
//! server, whose answers the harness's must match; and `check` refusing what an
//! upload is refused, in the server's words.
//!
//! The scaffolds build into `target/kit` (shared by every run, so only the
//! first builds wit-bindgen), with the toolchain `rust-toolchain.toml` pins.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::session::Session;
use common::{ADMIN_TOKEN, Backend, TestServer, client, error_of, guest, probe_manifest};
use jiff::ToSpan as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `ham <args>` in `dir` with a clean environment (plus `env`).
async fn ham_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(common::process::ham_binary())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `ham <args>` in `dir` and asserts it succeeded; its stdout.
async fn ham_ok(dir: &Path, args: &[&str]) -> String {
    let output = ham_in(dir, args, &[]).await;
    assert!(output.status.success(), "ham {args:?}:\n{}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `cargo build --release --target wasm32-wasip2 --offline` in a scaffold, into
/// the shared `target/kit`, then the component copied where its manifest says.
async fn build_scaffold(dir: &Path, crate_name: &str) {
    let root = repo_root();
    let target = root.join("target").join("kit");
    let toolchain: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap())
            .unwrap();
    let channel = toolchain["toolchain"]["channel"].as_str().unwrap();
    let mut cmd =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
        ])
        .env("CARGO_TARGET_DIR", &target)
        // Outside the repository no rust-toolchain.toml applies: the pinned one,
        // which has the wasm32-wasip2 target, and one set of artifacts.
        .env("RUSTUP_TOOLCHAIN", channel);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || key == "RUSTFLAGS"
            || key.starts_with("RUSTC_")
        {
            cmd.env_remove(key);
        }
    }
    let output = cmd.output().await.unwrap();
    assert!(
        output.status.success(),
        "building the scaffold in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let built = target
        .join("wasm32-wasip2/release")
        .join(format!("{crate_name}.wasm"));
    let place = dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&place).unwrap();
    std::fs::copy(&built, place.join(format!("{crate_name}.wasm"))).unwrap();
}

/// The status line, headers and body `ham plugin test --request` printed.
fn printed_response(out: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = out.split_once("\n\n").unwrap_or((out, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in:\n{out}"));
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (status, headers, body.trim_end().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolds_of_every_kind_build_check_test_and_install() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    for kind in ["http", "rules", "job"] {
        let out = ham_ok(
            dir,
            &["plugin", "new", &format!("kit-{kind}"), "--kind", kind],
        )
        .await;
        assert!(
            out.contains(&format!("wrote a {kind} plugin in ./kit-{kind}")),
            "{out}"
        );
    }
    let http = dir.join("kit-http");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "plugin.toml",
        "README.md",
        "wit/ham.wit",
        "wit/deps/http.wit",
    ] {
        assert!(http.join(file).is_file(), "{file}");
    }
    let cargo_toml = std::fs::read_to_string(http.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("\n[workspace]\n"), "{cargo_toml}");
    assert!(
        !cargo_toml.contains("path ="),
        "no path dependency: {cargo_toml}"
    );

    // Refusals: a name the server would refuse, a directory that exists.
    for (args, says) in [
        (
            ["plugin", "new", "Kit_Http", "--kind", "http"],
            "`Kit_Http` is not a valid plugin name",
        ),
        (
            ["plugin", "new", "kit-http", "--kind", "job"],
            "./kit-http already exists",
        ),
    ] {
        let output = ham_in(dir, &args, &[]).await;
        assert!(!output.status.success());
        assert!(text(&output).contains(says), "{}", text(&output));
    }
    let scaffolded = started.elapsed();

    let build_started = Instant::now();
    for kind in ["http", "rules", "job"] {
        build_scaffold(&dir.join(format!("kit-{kind}")), &format!("kit_{kind}")).await;
    }
    let built = build_started.elapsed();

    // check: each loads as an upload would, exporting its kind's export.
    for (kind, export) in [
        ("http", "wasi:http/incoming-handler"),
        ("rules", "ham:plugin/scheduled-rules"),
        ("job", "ham:plugin/job-handler"),
    ] {
        let manifest = format!("kit-{kind}/plugin.toml");
        let out = ham_ok(dir, &["plugin", "check", "--manifest", &manifest]).await;
        assert!(
            out.contains("0.1.0 loads as the server loads an upload"),
            "{out}"
        );
        assert!(out.contains(&format!("exports   {export}")), "{out}");
    }

    // test: an HTTP request, anonymous and for a user, with the plugin's log.
    let output = ham_in(
        dir,
        &[
            "plugin",
            "test",
            "--manifest",
            "kit-http/plugin.toml",
            "--request",
            "GET /plugins/kit-http/",
        ],
        &[("HAM_PLUGIN_KIT_HTTP_GREETING", "Hi from the env")],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let (status, headers, body) = printed_response(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("content-security-policy".into(), "sandbox".into())),
        "{headers:?}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"plugin": "kit-http", "greeting": "Hi from the env", "visits": 1, "user": "anonymous"})
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("hello"),
        "the plugin's log on stderr: {}",
        text(&output)
    );
    let out = ham_ok(
        dir,
        &[
            "plugin",
            "test",
            "--manifest",
            "kit-http/plugin.toml",
            "--request",
            "GET /plugins/kit-http/",
            "--user",
            "alice",
        ],
    )
    .await;
    assert!(out.contains("\"user\":\"signed in\""), "{out}");
    let harness_answer = printed_response(
        &ham_ok(
            dir,
            &[
                "plugin",
                "test",
                "--manifest",
                "kit-http/plugin.toml",
                "--request",
                "POST /api/kit-http/hello",
            ],
        )
        .await,
    );

    // test: the rule set on its fixture.
    let out = ham_ok(
        dir,
        &[
            "plugin",
            "test",
            "--manifest",
            "kit-rules/plugin.toml",
            "--rules",
            "kit-rules/fixtures/week.json",
        ],
    )
    .await;
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["current_streak"], 2, "{stats}");
    assert_eq!(stats["scores"].as_array().unwrap().len(), 7, "{stats}");
    assert_eq!(stats["best_streaks"][1]["start"], "2026-03-01", "{stats}");

    // test: a job, done; an unknown kind fails, with a non-zero status.
    let out = ham_ok(
        dir,
        &[
            "plugin",
            "test",
            "--manifest",
            "kit-job/plugin.toml",
            "--job",
            "tick",
            "--payload",
            "hello",
        ],
    )
    .await;
    assert_eq!(out.trim(), "done");
    let output = ham_in(
        dir,
        &[
            "plugin",
            "test",
            "--manifest",
            "kit-job/plugin.toml",
            "--job",
            "other",
        ],
        &[],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("fail (kept as dead): unknown job kind `other`"),
        "{}",
        text(&output)
    );

    // The harness as the READMEs' `cargo test` examples call it.
    {
        use ham_host::plugin_kit::{Harness, HttpRequest, JobOutcome, JobRequest, RulesFixture};
        let plugin = Harness::load(http.join("plugin.toml")).await.unwrap();
        let first = plugin
            .http(HttpRequest::get("/plugins/kit-http/"))
            .await
            .unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.json().unwrap()["visits"], 1);
        let second = plugin
            .http(HttpRequest::get("/api/kit-http/hello"))
            .await
            .unwrap();
        assert_eq!(second.json().unwrap()["visits"], 2);

        let rules = Harness::load(dir.join("kit-rules/plugin.toml"))
            .await
            .unwrap();
        let week = RulesFixture::read(&dir.join("kit-rules/fixtures/week.json")).unwrap();
        let stats = rules.evaluate(&week).await.unwrap();
        assert_eq!(stats[0].best_streaks[1].length, 2);

        let jobs = Harness::load(dir.join("kit-job/plugin.toml"))
            .await
            .unwrap();
        assert_eq!(
            jobs.job(JobRequest::new("tick")).await.unwrap(),
            JobOutcome::Done
        );
        assert_eq!(
            jobs.stored(None, "runs").await.unwrap(),
            Some(b"1".to_vec())
        );
    }

    // install: on a real server, each serves as the harness said it would.
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let remote = ["--url", server.url.as_str(), "--token", ADMIN_TOKEN];
    for (kind, name) in [
        ("http", "kit-http"),
        ("rules", "habit-rules"),
        ("job", "kit-job"),
    ] {
        let manifest = format!("kit-{kind}/plugin.toml");
        let out = ham_ok(
            dir,
            &[&["plugin", "install", "--manifest", &manifest], &remote[..]].concat(),
        )
        .await;
        assert!(out.contains(&format!("{name} 0.1.0 active")), "{out}");
    }
    let response = client()
        .get(server.url("/plugins/kit-http/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.unwrap();
    assert_eq!(served["greeting"], "Hello from kit-http");
    assert_eq!(served["visits"], 1);
    // The same refusal from the harness as from the server.
    let response = client()
        .post(server.url("/api/kit-http/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), harness_answer.0);
    assert_eq!(
        response.headers()["allow"].to_str().unwrap(),
        harness_answer
            .1
            .iter()
            .find(|(k, _)| k == "allow")
            .unwrap()
            .1
    );
    assert_eq!(response.text().await.unwrap(), harness_answer.2);

    // The rule set judges a habit on the server as `ham plugin test` did.
    let mut session = Session::register(&server, "kit-author").await;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let day = |ago: i64| today.checked_sub(ago.days()).unwrap().to_string();
    let entries = [
        (9, "done"),
        (8, "done"),
        (7, "skipped"),
        (5, "done"),
        (1, "done"),
    ];
    let document = json!({
        "format": "ham-export", "version": 1, "time_zone": "UTC", "activities": [],
        "habits": [{
            "id": "h", "name": "Walk", "description": "", "color": "#4f46e5",
            "kind": "boolean", "unit": null, "target": null,
            "frequency": {"times": 1, "days": 1},
            "reminders": [], "archived": false, "position": 0, "created": day(10),
            "entries": entries.iter().map(|(ago, status)| json!({
                "date": day(*ago), "status": status, "value": null, "note": null, "source": "manual",
            })).collect::<Vec<_>>(),
        }],
    });
    let (status, body) = session
        .json(&server, Method::POST, "/api/import", Some(document))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = session
        .json(&server, Method::GET, "/api/habits", None)
        .await;
    let id = list["habits"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/habits/{id}/stats?from={}&to={}", day(10), day(0));
    let (status, on_server) = session.json(&server, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{on_server}");
    let fixture = json!({
        "habit": {"name": "Walk", "kind": "boolean", "frequency": {"times": 1, "days": 1}, "created": day(10)},
        "entries": entries.iter().map(|(ago, status)| json!({"date": day(*ago), "value": status})).collect::<Vec<_>>(),
        "today": day(0), "from": day(10), "to": day(0),
    });
    std::fs::write(dir.join("server-habit.json"), fixture.to_string()).unwrap();
    let out = ham_ok(
        dir,
        &[
            "plugin",
            "test",
            "--manifest",
            "kit-rules/plugin.toml",
            "--rules",
            "server-habit.json",
        ],
    )
    .await;
    let in_harness: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(in_harness, on_server);
    assert_eq!(on_server["current_streak"], 1, "{on_server}");

    // A rule set is not rolled out to a share; its next version runs in shadow.
    let output = ham_in(
        dir,
        &[
            &[
                "plugin",
                "install",
                "--manifest",
                "kit-rules/plugin.toml",
                "--canary",
                "20",
            ],
            &remote[..],
        ]
        .concat(),
        &[],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        text(&output).contains("serves neither HTTP nor jobs"),
        "{}",
        text(&output)
    );
    let rules_manifest = dir.join("kit-rules/plugin.toml");
    let rules_text = std::fs::read_to_string(&rules_manifest).unwrap();
    std::fs::write(
        &rules_manifest,
        rules_text.replace("version = \"0.1.0\"", "version = \"0.2.0-kit\""),
    )
    .unwrap();
    let out = ham_ok(
        dir,
        &[
            &[
                "plugin",
                "install",
                "--manifest",
                "kit-rules/plugin.toml",
                "--shadow",
            ],
            &remote[..],
        ]
        .concat(),
    )
    .await;
    assert!(
        out.contains("habit-rules 0.2.0-kit runs in shadow beside 0.1.0"),
        "{out}"
    );

    // The job handler is listed, and a new HTTP version goes out to a share.
    let out = ham_ok(dir, &[&["plugin", "list"], &remote[..]].concat()).await;
    let line = out.lines().find(|l| l.starts_with("kit-job ")).unwrap();
    assert!(line.contains("ham:plugin/job-handler"), "{line}");
    let manifest = http.join("plugin.toml");
    let text_of = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text_of.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let out = ham_ok(
        dir,
        &[
            &[
                "plugin",
                "install",
                "--manifest",
                "kit-http/plugin.toml",
                "--canary",
                "20",
            ],
            &remote[..],
        ]
        .concat(),
    )
    .await;
    assert!(
        out.contains("kit-http 0.2.0 serves 20% beside 0.1.0"),
        "{out}"
    );
    server.stop().await;

    let total = started.elapsed();
    eprintln!(
        "plugin kit: scaffolds written in {scaffolded:.1?}, built in {built:.1?}, all in {total:.1?}"
    );
    assert!(
        total < Duration::from_secs(600),
        "the scaffold story took {total:.0?}"
    );
}

/// What `ham plugin check` says of a plugin the server refuses, and what an
/// upload of it is answered: (case, manifest, component, OpenAPI document).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_what_an_upload_is_refused_in_the_same_words() {
    let probe = guest("probe");
    let claims = "component = \"c.wasm\"\nroutes = [{ path = \"/api/kit-probe/x\" }]\nopenapi = \"openapi.json\"";
    let cases: Vec<(&str, String, Vec<u8>, Option<&str>)> = vec![
        (
            "a limit over the host's",
            probe_manifest(
                "kit-probe",
                "0.1.0",
                "x",
                "component = \"c.wasm\"\n[limits]\nmemory_mb = 100000",
            ),
            probe.clone(),
            None,
        ),
        (
            "an unknown key",
            probe_manifest(
                "kit-probe",
                "0.1.0",
                "x",
                "component = \"c.wasm\"\ncolour = 1",
            ),
            probe.clone(),
            None,
        ),
        (
            "not wasm",
            probe_manifest("kit-probe", "0.1.0", "x", "component = \"c.wasm\""),
            b"not wasm".to_vec(),
            None,
        ),
        (
            "a component missing every known export",
            "name = \"kit-probe\"\nversion = \"0.1.0\"\ncomponent = \"c.wasm\"\n".to_string(),
            guest("no-known-export"),
            None,
        ),
        (
            "an import the host does not provide",
            "name = \"kit-probe\"\nversion = \"0.1.0\"\ncomponent = \"c.wasm\"\n".to_string(),
            guest("unprovided-import"),
            None,
        ),
        (
            "an OpenAPI path the manifest does not claim",
            probe_manifest("kit-probe", "0.1.0", "x", claims),
            probe.clone(),
            Some(
                r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/api/elsewhere": {}}}"#,
            ),
        ),
    ];
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    for (case, manifest, component, openapi) in cases {
        let dir = work.path();
        std::fs::write(dir.join("plugin.toml"), &manifest).unwrap();
        std::fs::write(dir.join("c.wasm"), &component).unwrap();
        if let Some(openapi) = openapi {
            std::fs::write(dir.join("openapi.json"), openapi).unwrap();
        }
        let output = ham_in(dir, &["plugin", "check", "--manifest", "plugin.toml"], &[]).await;
        assert!(!output.status.success(), "{case}: {}", text(&output));

        let mut form = reqwest::multipart::Form::new()
            .text("manifest", manifest.clone())
            .part(
                "component",
                reqwest::multipart::Part::bytes(component).file_name("c.wasm"),
            );
        if let Some(openapi) = openapi {
            form = form.text("openapi", openapi.to_string());
        }
        let response = client()
            .put(server.url("/api/admin/plugins/kit-probe"))
            .bearer_auth(ADMIN_TOKEN)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(response).await;
        assert!(status >= 400, "{case}: the server took it");
        let said = format!("{status} {code}: {message}");
        assert!(
            text(&output).contains(&said),
            "{case}: the server said\n{said}\nand check said\n{}",
            text(&output)
        );
    }

    // And what the server takes, check takes.
    std::fs::write(
        work.path().join("plugin.toml"),
        probe_manifest("kit-probe", "0.1.0", "x", "component = \"c.wasm\""),
    )
    .unwrap();
    std::fs::write(work.path().join("c.wasm"), &probe).unwrap();
    let out = ham_ok(
        work.path(),
        &["plugin", "check", "--manifest", "plugin.toml"],
    )
    .await;
    assert!(out.contains("ok: kit-probe 0.1.0"), "{out}");
    server.stop().await;
}
