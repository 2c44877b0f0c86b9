//! The harness on the plugins bundled with the host, as a plugin author's tests
//! would use it on theirs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use ham_plugin_test::{Harness, HttpRequest, KitError, Package, RulesFixture};

fn bundled(name: &str) -> Harness {
    let plugin = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == name)
        .unwrap();
    Harness::from_package(&Package {
        manifest: plugin.manifest,
        component: plugin.component,
        openapi: None,
    })
    .unwrap()
}

#[test]
fn hello_greets_and_counts_visits_in_its_storage() {
    let hello = bundled("hello");
    let greeting = hello.http(HttpRequest::get("/plugins/hello/")).unwrap();
    assert_eq!(
        (greeting.status, greeting.text().as_str()),
        (200, "Hello from HAM\n")
    );
    assert_eq!(greeting.header("x-content-type-options"), Some("nosniff"));
    for n in 1..=2 {
        let visits = hello
            .http(HttpRequest::get("/plugins/hello/visits"))
            .unwrap();
        assert_eq!(visits.text(), format!("{n}\n"));
    }
    assert_eq!(hello.stored(None, "visits").unwrap(), Some(b"2".to_vec()));
    // Routed as the server routes: another plugin's path is not this one's.
    let other = hello.http(HttpRequest::get("/plugins/coach/")).unwrap();
    assert_eq!(other.status, 404);
    assert_eq!(other.json().unwrap()["error"]["code"], "not_found");
}

#[test]
fn the_bundled_rule_set_judges_a_fixture_and_refuses_a_bad_one() {
    let rules = bundled("habit-rules");
    let fixtures = RulesFixture::parse(
        r#"{"habit": {"created": "2026-03-01"},
            "entries": [{"date": "2026-03-01", "value": "done"}, {"date": "2026-03-02", "value": "done"}],
            "today": "2026-03-02", "from": "2026-03-01", "to": "2026-03-02"}"#,
    )
    .unwrap();
    let stats = rules.evaluate(&fixtures).unwrap();
    assert_eq!(stats[0].current_streak, 2);
    assert_eq!(stats[0].scores.len(), 2);

    let backwards = RulesFixture::parse(
        r#"{"habit": {"created": "2026-03-01"}, "today": "2026-03-02", "from": "2026-03-02", "to": "2026-03-01"}"#,
    )
    .unwrap();
    let Err(KitError::Input(why)) = rules.evaluate(&backwards) else {
        panic!("a range that ends before it starts is the fixture's fault");
    };
    assert!(
        why.contains("from: 2026-03-02 is after to: 2026-03-01"),
        "{why}"
    );
}

#[test]
fn a_manifest_the_server_refuses_is_refused_with_its_words() {
    let hello = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "hello")
        .unwrap();
    let refused = Harness::from_package(&Package {
        manifest: "name = \"hello\"\nversion = \"0.1.0\"\n[limits]\nmemory_mb = 100000\n",
        component: hello.component,
        openapi: None,
    });
    let Err(KitError::Refused(answer)) = refused else {
        panic!("a memory limit over the host's must be refused");
    };
    assert_eq!(
        (answer.status, answer.code.as_str()),
        (422, "invalid_manifest")
    );
    assert_eq!(
        answer.message,
        "invalid manifest: limits.memory_mb: 100000 is not within 1..=1024"
    );
}
