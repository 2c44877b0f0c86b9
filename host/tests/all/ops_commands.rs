//! The commands a container platform runs: `ham migrate` (a migrations Job, with
//! servers started under `HAM_MIGRATE_ON_START=false`) and `ham healthcheck` (the
//! image's `HEALTHCHECK`), as real processes, on SQLite and PostgreSQL.

use crate::common;

use common::process::run_ham as ham;

use common::{Backend, TestDb, TestServer, settings};
use ham_host::store::{Db, Error, Migrations};

async fn migrate_then_require(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = TestDb::new(backend, dir.path()).await else {
        return;
    };
    let data = dir.path().display().to_string();
    let env = [("DATABASE_URL", db.url.as_str()), ("HAM_DATA_DIR", &data)];

    // Before `ham migrate`, a server that may not migrate names what is missing.
    match Db::open(&db.url, Migrations::Require).await {
        Err(Error::SchemaBehind(pending)) => {
            assert!(pending.contains("1_"), "{pending}")
        }
        other => panic!("expected SchemaBehind, got {other:?}"),
    }
    let (ok, out) = ham(&["migrate"], &env).await;
    assert!(ok, "{out}");
    let applied: usize = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(applied >= 5, "{out}");
    let (ok, out) = ham(&["migrate"], &env).await;
    assert!(ok && out.starts_with("0 migrations applied"), "{out}");

    // Now a server with migrations off starts and serves.
    let mut settings = settings(dir.path(), &db);
    settings.migrate_on_start = false;
    let server = TestServer::start(settings).await;
    assert_eq!(server.get_text("/readyz").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn ham_migrate_brings_the_schema_current_on_sqlite() {
    migrate_then_require(Backend::Sqlite).await;
}

#[tokio::test]
async fn ham_migrate_brings_the_schema_current_on_postgres() {
    migrate_then_require(Backend::Postgres).await;
}

#[test]
fn a_bad_migrate_on_start_value_is_refused() {
    let env = [("HAM_MIGRATE_ON_START".to_string(), "sometimes".to_string())];
    let err = ham_host::settings::Settings::load_from(None, env).unwrap_err();
    assert!(err.to_string().contains("HAM_MIGRATE_ON_START"), "{err}");
}

#[tokio::test]
async fn ham_healthcheck_reports_whether_the_server_answers() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let addr = server.url.trim_start_matches("http://").to_string();
    // The server listens on 127.0.0.1; an unspecified address is checked over
    // loopback, as inside a container listening on 0.0.0.0.
    let port = addr.rsplit(':').next().unwrap();
    for listen in [addr.clone(), format!("0.0.0.0:{port}")] {
        let (ok, out) = ham(&["healthcheck"], &[("HAM_ADDR", &listen)]).await;
        assert!(ok && out.trim() == "ok", "{listen}: {out}");
    }
    server.stop().await;
    let (ok, out) = ham(&["healthcheck"], &[("HAM_ADDR", &addr)]).await;
    assert!(!ok, "nothing listens any more: {out}");
    assert!(out.contains("cannot reach"), "{out}");
}
