//! `HAM_LOG_FORMAT=json`: a real `ham serve` writes one JSON object per line;
//! events in a request carry its span (method, route, and the plugin's name and
//! version when a plugin serves it; on `/plugins/` paths the span is `debug`,
//! enabled here by its target, and the event names the plugin and version
//! itself); a refused outbound request names the plugin version; the admin
//! token never shows.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ADMIN_TOKEN, client, guest, probe_manifest};
use serde_json::Value;

/// Every line the server wrote so far, each parsed as JSON.
fn json_lines(lines: &Mutex<Vec<String>>) -> Vec<Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The first line that `matches`, waiting up to ten seconds for it.
async fn line_where(
    lines: &Mutex<Vec<String>>,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    common::process::until(Duration::from_secs(10), what, || async {
        json_lines(lines).into_iter().find(|v| matches(v))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_and_plugin_spans_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ham"))
        .arg("serve")
        .env_clear()
        .env("HAM_ADDR", "127.0.0.1:0")
        .env("HAM_DATA_DIR", dir.path())
        .env("HAM_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HAM_LOG_FORMAT", "json")
        .env("HAM_LOG", "info,ham_host::api::observe=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    let addr = common::process::until(Duration::from_secs(60), "ham serving", || async {
        json_lines(&lines)
            .iter()
            .find(|v| v["fields"]["message"] == "ham serving")
            .map(|v| v["fields"]["addr"].as_str().unwrap().to_string())
    })
    .await;
    let url = |path: &str| format!("http://{addr}{path}");

    let response = common::upload_plugin(
        &url(""),
        "probe",
        &probe_manifest("probe", "0.1.0", "one", ""),
        guest("probe"),
    )
    .await;
    assert_eq!(response.status(), 201);
    let response = client()
        .get(url("/plugins/probe/trap"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);

    let failed = line_where(&lines, "the failed invocation's log line", |v| {
        v["fields"]["message"] == "plugin invocation failed"
    })
    .await;
    assert_eq!(failed["level"], "WARN");
    // The event names what failed without any span.
    assert_eq!(failed["fields"]["plugin"], "probe", "{failed}");
    assert_eq!(failed["fields"]["version"], "0.1.0", "{failed}");
    let spans = failed["spans"].as_array().unwrap();
    // One span per request; the plugin serving it adds its name and version.
    assert!(
        spans.iter().any(|s| s["name"] == "request"
            && s["method"] == "GET"
            && s["route"] == "/plugins/probe"
            && s["plugin"] == "probe"
            && s["version"] == "0.1.0"),
        "{failed}"
    );
    assert_eq!(failed["span"]["plugin"], "probe", "{failed}");
    // A refused outbound request (no `allowed_outbound_hosts`) is logged with
    // the plugin version that asked.
    let response = client()
        .get(url("/plugins/probe/fetch?url=http://example.com/"))
        .send()
        .await
        .unwrap();
    // The probe answers 502 with the error its request got.
    assert_eq!(response.status(), 502);
    let refused = line_where(&lines, "the refused outbound request's log line", |v| {
        v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("outbound request denied"))
    })
    .await;
    assert_eq!(refused["level"], "WARN", "{refused}");
    assert_eq!(refused["fields"]["plugin"], "probe", "{refused}");
    assert_eq!(refused["fields"]["version"], "0.1.0", "{refused}");
    assert_eq!(refused["fields"]["url"], "http://example.com/", "{refused}");
    let installed = json_lines(&lines)
        .into_iter()
        .find(|v| {
            v["fields"]["message"] == "plugin version active" && v["fields"]["plugin"] == "probe"
        })
        .unwrap();
    assert_eq!(installed["span"]["route"], "/api/admin/plugins/{name}");

    let _ = child.kill();
    let _ = child.wait();
    let all = lines.lock().unwrap().join("\n");
    assert!(!all.contains(ADMIN_TOKEN), "the admin token was logged");
}
