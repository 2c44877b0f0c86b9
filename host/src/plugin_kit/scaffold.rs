//! `ham plugin new NAME --kind http|rules|job`: a plugin crate that builds on
//! its own, outside any repository.
//!
//! The crate depends on crates.io alone (`wit-bindgen` at the version HAM's own
//! plugins use, and `wasip2` for HTTP), carries HAM's WIT package as this binary
//! knows it (`wit/`, embedded at build time, so the files match the host that
//! wrote them), and declares a `[workspace]` of its own so a parent workspace
//! does not take it in. Each kind is a small plugin that works end to end: it
//! builds, passes `ham plugin check`, answers `ham plugin test`, and installs.
//!
//! Refused: a name the server would refuse (`manifest::is_name`), a name cargo
//! would refuse for a crate (a Rust keyword, a standard crate), a directory that
//! exists, and a manifest the scaffold would write that does not parse (a route
//! under one the host serves, for a plugin named after it). Nothing is written
//! then; a failure halfway removes what was written.

use std::path::{Path, PathBuf};

use crate::plugins::Manifest;
use crate::plugins::manifest::is_name;

/// The wit-bindgen release HAM's plugins build with (`Cargo.lock`); a test
/// keeps the two in step.
pub const WIT_BINDGEN_VERSION: &str = "0.61.1";
/// The `wasip2` release HAM's HTTP plugins build with (`Cargo.lock`).
pub const WASIP2_VERSION: &str = "2.0.1";

/// HAM's WIT package and the packages it refers to, as this binary was built
/// with them: (path in the crate, text).
pub const WIT_FILES: &[(&str, &str)] = &[
    ("wit/ham.wit", include_str!("../../../wit/ham.wit")),
    (
        "wit/deps/cli.wit",
        include_str!("../../../wit/deps/cli.wit"),
    ),
    (
        "wit/deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    (
        "wit/deps/http.wit",
        include_str!("../../../wit/deps/http.wit"),
    ),
    ("wit/deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "wit/deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const README: &str = include_str!("template/README.md.in");
const GITIGNORE: &str = include_str!("template/gitignore");

/// What the plugin does; each kind exports one of the host's exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Serves HTTP (`wasi:http/incoming-handler`): a JSON hello on its own
    /// path and a claimed `/api/` route, reading a variable and counting in
    /// storage.
    Http,
    /// A rule set (`ham:plugin/scheduled-rules`): judges habits for every
    /// stats request, uploaded as `habit-rules`.
    Rules,
    /// Runs jobs (`ham:plugin/job-handler`): an hourly `tick` that logs and
    /// counts in storage.
    Job,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Rules => "rules",
            Kind::Job => "job",
        }
    }

    fn lib_rs(self) -> &'static str {
        match self {
            Kind::Http => include_str!("template/http.rs"),
            Kind::Rules => include_str!("template/rules.rs"),
            Kind::Job => include_str!("template/job.rs"),
        }
    }

    fn manifest(self) -> &'static str {
        match self {
            Kind::Http => include_str!("template/http.plugin.toml"),
            Kind::Rules => include_str!("template/rules.plugin.toml"),
            Kind::Job => include_str!("template/job.plugin.toml"),
        }
    }

    fn dependencies(self) -> String {
        let wit_bindgen = format!(
            "# HAM's interfaces, generated from wit/.\nwit-bindgen = \"={WIT_BINDGEN_VERSION}\"\n"
        );
        match self {
            Kind::Http => format!(
                "{wit_bindgen}# wasi:http: the request and response types, and the export.\nwasip2 = \"{WASIP2_VERSION}\"\n"
            ),
            Kind::Rules | Kind::Job => wit_bindgen,
        }
    }
}

/// Why `ham plugin new` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a valid plugin name: 1 to 63 lower-case letters, digits or '-', starting with a letter (e.g. `my-plugin`)"
    )]
    InvalidName(String),
    #[error(
        "`{0}` cannot name a crate (it is a Rust keyword or a standard crate); choose another name"
    )]
    ReservedName(String),
    #[error("{} already exists; choose another name, or remove it first", .0.display())]
    Exists(PathBuf),
    #[error("the scaffold's plugin.toml would be refused ({0}); choose another name")]
    Manifest(String),
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Names cargo refuses for a package, or that would shadow a crate every Rust
/// program can name.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "std",
    "core",
    "alloc",
    "proc-macro",
    "test",
];

/// The files of a new plugin crate named `name`, relative to its directory.
pub fn files(name: &str, kind: Kind) -> Result<Vec<(PathBuf, String)>, ScaffoldError> {
    if !is_name(name) {
        return Err(ScaffoldError::InvalidName(name.to_string()));
    }
    if RESERVED.contains(&name) {
        return Err(ScaffoldError::ReservedName(name.to_string()));
    }
    let crate_name = name.replace('-', "_");
    let manifest_name = match kind {
        Kind::Rules => crate::rules::RULES_PLUGIN,
        Kind::Http | Kind::Job => name,
    };
    let fill = |template: &str| {
        template
            .replace("%%NAME%%", name)
            .replace("%%CRATE%%", &crate_name)
            .replace("%%MANIFEST_NAME%%", manifest_name)
            .replace(
                "%%ENV%%",
                &manifest_name.to_ascii_uppercase().replace('-', "_"),
            )
            .replace("%%KIND%%", kind.as_str())
    };
    let manifest = fill(kind.manifest());
    Manifest::parse(&manifest).map_err(|e| ScaffoldError::Manifest(e.to_string()))?;

    let mut out: Vec<(PathBuf, String)> = vec![
        (
            "Cargo.toml".into(),
            fill(CARGO_TOML).replace("%%DEPENDENCIES%%", &kind.dependencies()),
        ),
        ("src/lib.rs".into(), kind.lib_rs().to_string()),
        ("plugin.toml".into(), manifest),
        ("README.md".into(), readme(kind, &fill)),
        (".gitignore".into(), GITIGNORE.to_string()),
    ];
    if kind == Kind::Rules {
        out.push((
            "fixtures/week.json".into(),
            include_str!("template/rules.fixture.json").to_string(),
        ));
    }
    out.extend(
        WIT_FILES
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_string())),
    );
    Ok(out)
}

/// Writes a new plugin crate in `parent/name` (which must not exist) and
/// returns its directory.
pub fn write(parent: &Path, name: &str, kind: Kind) -> Result<PathBuf, ScaffoldError> {
    let files = files(name, kind)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    // Fails if another process made it since: never write into a directory
    // that was not ours.
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::Exists(dir.clone()),
        _ => io(&dir)(e),
    })?;
    let written = files.iter().try_for_each(|(rel, text)| {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// The README: how to build, check, test and install this kind.
fn readme(kind: Kind, fill: &dyn Fn(&str) -> String) -> String {
    let (about, manifest_extra, files_extra, try_it, cargo_test, invocation, rollout) = match kind {
        Kind::Http => (
            "it serves HTTP: `GET /plugins/%%NAME%%/` and `GET /api/%%NAME%%/hello` answer a JSON hello that reads the `greeting` variable and counts visits in the plugin's storage.",
            ", the route it claims, its variables",
            "",
            "ham plugin test --manifest plugin.toml --request 'GET /plugins/%%NAME%%/'\n\
             ham plugin test --manifest plugin.toml --request 'GET /api/%%NAME%%/hello' --user alice\n\
             # POST with a body, a header: --request 'POST /plugins/%%NAME%%/x' --body '{\"a\": 1}' --header 'content-type: application/json'\n\
             # (--body @file.json reads a file)",
            "use ham_plugin_test::{Harness, HttpRequest};\n\n\
             #[test]\n\
             fn says_hello_and_counts() {\n    \
                 let plugin = Harness::load(\"plugin.toml\").unwrap();\n    \
                 let first = plugin.http(HttpRequest::get(\"/plugins/%%NAME%%/\")).unwrap();\n    \
                 assert_eq!(first.status, 200);\n    \
                 assert_eq!(first.json().unwrap()[\"visits\"], 1);\n    \
                 let second = plugin.http(HttpRequest::get(\"/api/%%NAME%%/hello\")).unwrap();\n    \
                 assert_eq!(second.json().unwrap()[\"visits\"], 2);\n\
             }",
            "request (requests already running finish on the version they started with).",
            "To try a new version on a share of the requests first:\n\n\
             ```sh\n\
             ham plugin install --manifest plugin.toml --canary 20\n\
             ```\n\n\
             It then serves 20% of the plugin's requests (a signed-in user always gets the\n\
             same version) beside the active version. Once it has served 50 requests, the\n\
             host promotes it, or rolls it back by itself if it fails more than 5% of them\n\
             and more than the active version (`--min-requests`, `--max-error-rate`,\n\
             `--window-s` change that). `ham plugin promote %%NAME%%` and `ham plugin abort\n\
             %%NAME%%` decide by hand; `ham plugin rollback %%NAME%%` goes back to the\n\
             previous version. See \"Roll it out to a share first\" in `docs/plugins.md`.",
        ),
        Kind::Rules => (
            "a rule set. It judges every habit for the stats the app shows (scores, streaks, progress), with simple rules to make your own (see `src/lib.rs`). It is uploaded as `habit-rules`, the plugin the host judges habits with, in place of the bundled rule set.",
            "",
            "| `fixtures/week.json` | a habit, its entries and the days to score, for `ham plugin test --rules` |\n",
            "ham plugin test --manifest plugin.toml --rules fixtures/week.json\n\
             # prints the stats as GET /api/habits/{id}/stats would show them, checked as the host checks them",
            "use ham_plugin_test::{Harness, RulesFixture};\n\n\
             #[test]\n\
             fn a_skip_does_not_break_a_streak() {\n    \
                 let rules = Harness::load(\"plugin.toml\").unwrap();\n    \
                 let week = RulesFixture::parse(include_str!(\"../fixtures/week.json\")).unwrap();\n    \
                 let stats = rules.evaluate(&week).unwrap();\n    \
                 assert_eq!(stats[0].best_streaks[1].length, 2);\n\
             }",
            "stats request (answers cached for the previous rule set are not served again).",
            "A rule set serves no requests to share, so `--canary` does not apply; to see\n\
             what it would change before anyone sees it, run it in shadow:\n\n\
             ```sh\n\
             ham plugin install --manifest plugin.toml --shadow --sample-percent 10\n\
             ```\n\n\
             Users keep the active rule set's answers; on 10% of its evaluations yours judges\n\
             the same inputs, and `GET /api/admin/plugins/habit-rules` (and the Plugins\n\
             screen) counts the habits it judged the same, differently, or failed on, with\n\
             examples. `ham plugin promote habit-rules` makes it the active rule set, `ham\n\
             plugin abort habit-rules` drops it; `ham plugin rollback habit-rules` later\n\
             brings the previous one back. See \"Shadow runs (rule sets)\" in\n\
             `docs/plugins.md`. A newer `ham` binary installs its own bundled `habit-rules`\n\
             when that is newer than every stored version: give yours a higher `version`\n\
             than the bundled one to keep it.",
        ),
        Kind::Job => (
            "it runs jobs: `plugin.toml` schedules a `tick` every hour, which logs what it got and counts its runs in the plugin's storage; any other kind fails.",
            ", its schedule",
            "",
            "ham plugin test --manifest plugin.toml --job tick --payload 'hello'\n\
             ham plugin test --manifest plugin.toml --job tick --user alice    # a job acting for a user\n\
             # (--payload @file reads a file)",
            "use ham_plugin_test::{Harness, JobOutcome, JobRequest};\n\n\
             #[test]\n\
             fn ticks_and_counts() {\n    \
                 let plugin = Harness::load(\"plugin.toml\").unwrap();\n    \
                 assert_eq!(plugin.job(JobRequest::new(\"tick\")).unwrap(), JobOutcome::Done);\n    \
                 assert_eq!(plugin.stored(None, \"runs\").unwrap(), Some(b\"1\".to_vec()));\n\
             }",
            "job (jobs already running finish on the version they started with).",
            "To try a new version on a share of the jobs first:\n\n\
             ```sh\n\
             ham plugin install --manifest plugin.toml --canary 20\n\
             ```\n\n\
             It then runs 20% of the plugin's jobs beside the active version. Once it has run\n\
             50, the host promotes it, or rolls it back by itself if more than 5% of them\n\
             failed (`fail`, a trap, a timeout) and more than on the active version.\n\
             `ham plugin promote %%NAME%%` and `ham plugin abort %%NAME%%` decide by hand;\n\
             `ham plugin rollback %%NAME%%` goes back to the previous version. See \"Roll it\n\
             out to a share first\" in `docs/plugins.md`.",
        ),
    };
    fill(README)
        .replace("%%ABOUT%%", &fill(about))
        .replace("%%MANIFEST_EXTRA%%", manifest_extra)
        .replace("%%FILES_EXTRA%%", files_extra)
        .replace("%%TRY%%", &fill(try_it))
        .replace("%%CARGO_TEST%%", &fill(cargo_test))
        .replace("%%INVOCATION%%", invocation)
        .replace("%%ROLLOUT%%", &fill(rollout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_writes_a_manifest_the_server_takes_and_fills_every_placeholder() {
        for kind in [Kind::Http, Kind::Rules, Kind::Job] {
            let files = files("my-plugin", kind).unwrap();
            for (path, text) in &files {
                assert!(
                    !text.contains("%%"),
                    "{kind:?} {}: a placeholder left",
                    path.display()
                );
            }
            let manifest = &files
                .iter()
                .find(|(p, _)| p == Path::new("plugin.toml"))
                .unwrap()
                .1;
            let parsed = Manifest::parse(manifest).unwrap();
            assert_eq!(
                parsed.component.as_deref(),
                Some("target/wasm32-wasip2/release/my_plugin.wasm")
            );
            assert_eq!(parsed.version.to_string(), "0.1.0");
        }
    }

    #[test]
    fn names_the_server_or_cargo_would_refuse_are_refused() {
        for name in [
            "",
            "My-Plugin",
            "9lives",
            "my_plugin",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(files(name, Kind::Http), Err(ScaffoldError::InvalidName(_))),
                "{name}"
            );
        }
        for name in ["fn", "self", "std", "test"] {
            assert!(
                matches!(files(name, Kind::Job), Err(ScaffoldError::ReservedName(_))),
                "{name}"
            );
        }
        // Its claimed route would be under one the host serves.
        let err = files("habits", Kind::Http).unwrap_err().to_string();
        assert!(err.contains("/api/habits"), "{err}");
        assert!(files("habits", Kind::Job).is_ok());
    }

    /// The crate carries every file of `wit/` (a new one there must be listed
    /// in [`WIT_FILES`]), and pins the wit-bindgen and wasip2 HAM builds with.
    #[test]
    fn the_wit_files_and_the_pinned_versions_match_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut on_disk: Vec<String> = std::fs::read_dir(root.join("wit/deps"))
            .unwrap()
            .map(|e| format!("wit/deps/{}", e.unwrap().file_name().to_string_lossy()))
            .chain(["wit/ham.wit".to_string()])
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = WIT_FILES.iter().map(|(p, _)| p.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);

        let lock: toml::Value =
            toml::from_str(&std::fs::read_to_string(root.join("Cargo.lock")).unwrap()).unwrap();
        let versions = |name: &str| -> Vec<String> {
            lock["package"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["name"].as_str() == Some(name))
                .map(|p| p["version"].as_str().unwrap().to_string())
                .collect()
        };
        // The plugins' own wit-bindgen (wasip2 brings another for its bindings).
        let hello = lock["package"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some("hello"))
            .unwrap();
        let deps: Vec<&str> = hello["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert!(
            deps.contains(&format!("wit-bindgen {WIT_BINDGEN_VERSION}").as_str())
                || (deps.contains(&"wit-bindgen")
                    && versions("wit-bindgen") == [WIT_BINDGEN_VERSION]),
            "the bundled plugins build with another wit-bindgen than {WIT_BINDGEN_VERSION}: {deps:?}"
        );
        assert!(
            versions("wasip2")
                .iter()
                .any(|v| v.split('+').next() == Some(WASIP2_VERSION)),
            "Cargo.lock has wasip2 {:?}, the scaffold pins {WASIP2_VERSION}",
            versions("wasip2")
        );
    }
}
