//! The host's layers, checked: a module may use modules of its own layer or
//! lower ones, never higher ones. `docs/architecture.md` draws the same map.
//!
//! | layer | modules | what it is |
//! | --- | --- | --- |
//! | 0 foundation | `wit`, `settings`, `telemetry`, `habits` | generated WIT types, settings, metrics, the habit rules as pure functions |
//! | 1 store | `store` | the database: rows in, typed values out |
//! | 2 services | `habits::tracker`, `auth`, `accounts`, `llm`, `jobs::grant`, `jobs::cron`, `reminders` | domain operations on the store, shared by the API and plugins |
//! | 3 capabilities | `capabilities` | what plugins are given: one module per `ham:plugin` interface |
//! | 4 runtime | `runtime`, `plugins::manifest` | the engine, instances, limits; the manifest that configures them |
//! | 5 plugin services | `plugins`, `rules`, `jobs`, `backup`, `export` | what runs plugins: the registry, the rules evaluator, the job workers; data in and out |
//! | 6 surface | `api`, `web`, `cli`, `plugin_kit`, the crate root | HTTP, the browser app, the command line (the author kit's too), wiring |
//!
//! Where a lower layer must call a higher one (plugins' `habits.list-stats`
//! needs the rules evaluator, which runs a plugin), the lower one defines a
//! trait and the higher one implements it
//! ([`crate::capabilities::habits::StatsSource`]). The check reads `crate::`
//! paths in code (not in comments, not in test modules).

/// Module path prefixes and their layers; the longest matching prefix wins.
const LAYERS: &[(&str, u8)] = &[
    ("wit", 0),
    ("settings", 0),
    ("telemetry", 0),
    ("habits", 0),
    ("store", 1),
    ("habits::tracker", 2),
    ("auth", 2),
    ("accounts", 2),
    ("llm", 2),
    ("jobs::grant", 2),
    ("jobs::cron", 2),
    ("reminders", 2),
    ("capabilities", 3),
    ("runtime", 4),
    ("plugins::manifest", 4),
    ("plugins", 5),
    ("rules", 5),
    ("jobs", 5),
    ("backup", 5),
    ("export", 5),
    ("api", 6),
    ("web", 6),
    ("cli", 6),
    ("plugin_kit", 6),
    ("", 6),
];

/// Known exceptions, each with its reason: (file, path used).
const ALLOWED: &[(&str, &str, &str)] = &[(
    "wit.rs",
    "llm::CompletionStream",
    "the bindings name the host type behind the `completion-stream` resource",
)];

fn layer_of(path: &str) -> u8 {
    LAYERS
        .iter()
        .filter(|(prefix, _)| {
            prefix.is_empty()
                || path == *prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(6, |(_, layer)| *layer)
}

/// The module path of a file under `src/`: `habits/tracker.rs` is `habits::tracker`.
fn module_of(file: &str) -> String {
    let file = file.trim_end_matches(".rs");
    let file = file.strip_suffix("/mod").unwrap_or(file);
    match file {
        "lib" | "main" => String::new(),
        _ => file.replace('/', "::"),
    }
}

/// The `crate::` paths a line of code names, without the `crate::`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    found.push(path_at(item));
                }
            }
        } else {
            found.push(path_at(after));
        }
        rest = after;
    }
    found
}

fn path_at(text: &str) -> String {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end].trim_end_matches(':').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }

    #[test]
    fn no_module_uses_a_higher_layer() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &src, &mut files);
        assert!(files.len() > 40, "read {} files", files.len());
        let mut upward = Vec::new();
        for (file, text) in &files {
            let module = module_of(file);
            let own = layer_of(&module);
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("#[cfg(test)]") {
                    break;
                }
                if code.starts_with("//") {
                    continue;
                }
                for used in crate_paths(code) {
                    let theirs = layer_of(&used);
                    let allowed = ALLOWED
                        .iter()
                        .any(|(f, p, _)| f == file && used.starts_with(p));
                    if theirs > own && !allowed {
                        upward.push(format!(
                            "{file}:{}: `{module}` (layer {own}) uses `crate::{used}` (layer {theirs})",
                            n + 1
                        ));
                    }
                }
            }
        }
        assert!(upward.is_empty(), "upward uses:\n{}", upward.join("\n"));
    }

    #[test]
    fn paths_and_layers_are_read_as_written() {
        assert_eq!(module_of("habits/tracker.rs"), "habits::tracker");
        assert_eq!(module_of("api/mod.rs"), "api");
        assert_eq!(module_of("lib.rs"), "");
        assert_eq!(layer_of("habits::tracker::Tracker"), 2);
        assert_eq!(layer_of("habits::Habit"), 0);
        assert_eq!(layer_of("jobs::grant::issue"), 2);
        assert_eq!(layer_of("jobs::spawn_workers"), 5);
        assert_eq!(layer_of("AppState"), 6);
        assert_eq!(layer_of("storex"), 6);
        assert_eq!(
            crate_paths("use crate::{AppState, api::ApiError};"),
            ["AppState", "api::ApiError"]
        );
        assert_eq!(
            crate_paths("let x = crate::store::now_ms() + crate::jobs::MAX;"),
            ["store::now_ms", "jobs::MAX"]
        );
    }
}
