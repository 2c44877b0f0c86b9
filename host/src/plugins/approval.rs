//! Capability changes: what a version's manifest asks for beyond the active
//! version's, and the approval an operator may require for it.
//!
//! [`added_capabilities`] compares two manifests and lists, one line each, every
//! grant the new one widens: an outbound host (or a private mark, or the default
//! of a variable an outbound entry is made of), `llm`, `notifications`, a route
//! or a method on one, a route opened to anyone (`auth = "none"`) or to app
//! content, a schedule entry, a higher limit (a fuel budget removed and longer
//! instance reuse included). Against no active version (a new plugin) the
//! baseline is a manifest that asks for nothing with the default limits. The
//! lines name the manifest key, so an operator reads them against `plugin.toml`.
//!
//! With `plugin_approval = "required"` (`HAM_PLUGIN_APPROVAL`), an upload with
//! any addition is stored but not activated until an admin approves it; with
//! `auto` (the default) it goes live and the additions are only reported. A
//! version once approved or active is not asked about again, and bundled and
//! watched versions (the operator's own) never are.

use std::collections::BTreeSet;

use super::manifest::{Limits, Manifest};

/// What `after` asks for that `before` (the active version's manifest; `None`
/// for a new plugin) does not grant, in manifest order.
pub fn added_capabilities(before: Option<&Manifest>, after: &Manifest) -> Vec<String> {
    let mut added = Vec::new();
    let default_limits = Limits::default();
    let old_limits = before.map_or(&default_limits, |m| &m.limits);

    let old_hosts: BTreeSet<(&str, bool)> = before
        .map(|m| {
            m.allowed_outbound_hosts
                .iter()
                .map(|e| (e.url.as_str(), e.private))
                .collect()
        })
        .unwrap_or_default();
    for entry in &after.allowed_outbound_hosts {
        let url = entry.url.as_str();
        if old_hosts.contains(&(url, entry.private)) || old_hosts.contains(&(url, true)) {
            // The same entry: a variable it is made of may now default elsewhere.
            for name in template_names(url) {
                let new = after.variables.get(name).and_then(|v| v.default.as_deref());
                let old = before
                    .and_then(|m| m.variables.get(name))
                    .and_then(|v| v.default.as_deref());
                if let Some(new) = new.filter(|n| Some(*n) != old) {
                    added.push(format!(
                        "allowed_outbound_hosts: {url} with {name} defaulting to {new}"
                    ));
                }
            }
            continue;
        }
        let private = if entry.private { " (private)" } else { "" };
        added.push(format!("allowed_outbound_hosts: {url}{private}"));
    }
    if after.llm && !before.is_some_and(|m| m.llm) {
        added.push("llm".to_string());
    }
    if after.notifications && !before.is_some_and(|m| m.notifications) {
        added.push("notifications".to_string());
    }
    for claim in &after.routes {
        let old = before.and_then(|m| m.routes.iter().find(|r| r.path == claim.path));
        let methods: Vec<&str> = claim
            .methods
            .iter()
            .map(String::as_str)
            .filter(|m| !old.is_some_and(|o| o.methods.iter().any(|om| om == m)))
            .collect();
        if !methods.is_empty() {
            added.push(format!("routes: {} {}", methods.join(","), claim.path));
        }
        if let Some(old) = old {
            if claim.auth == super::manifest::RouteAuth::None
                && old.auth != super::manifest::RouteAuth::None
            {
                added.push(format!(
                    "routes: {} open to anyone (auth = \"none\")",
                    claim.path
                ));
            }
            if claim.app_content && !old.app_content {
                added.push(format!("routes: {} serves app content", claim.path));
            }
        } else if claim.auth == super::manifest::RouteAuth::None {
            added.push(format!(
                "routes: {} open to anyone (auth = \"none\")",
                claim.path
            ));
        }
    }
    for entry in &after.schedule {
        let known = before.is_some_and(|m| {
            m.schedule
                .iter()
                .any(|e| e.cron == entry.cron && e.job == entry.job && e.per_user == entry.per_user)
        });
        if !known {
            let per_user = if entry.per_user { " per user" } else { "" };
            added.push(format!("schedule: {} {}{per_user}", entry.cron, entry.job));
        }
    }
    let l = &after.limits;
    let mut limit = |key: &str, old: u64, new: u64| {
        if new > old {
            added.push(format!("limits.{key}: {old} -> {new}"));
        }
    };
    limit("memory_mb", old_limits.memory_mb.into(), l.memory_mb.into());
    limit("timeout_ms", old_limits.timeout_ms, l.timeout_ms);
    limit(
        "storage_quota_mb",
        old_limits.storage_quota_mb.into(),
        l.storage_quota_mb.into(),
    );
    limit(
        "storage_total_mb",
        old_limits.storage_total_mb().into(),
        l.storage_total_mb().into(),
    );
    limit(
        "max_concurrency",
        old_limits.max_concurrency.into(),
        l.max_concurrency.into(),
    );
    limit(
        "request_body_kb",
        old_limits.request_body_kb.into(),
        l.request_body_kb.into(),
    );
    // Longer-lived instances keep more of a guest's memory between requests.
    limit(
        "reuse_requests",
        old_limits.reuse_requests.into(),
        l.reuse_requests.into(),
    );
    limit("reuse_idle_ms", old_limits.reuse_idle_ms, l.reuse_idle_ms);
    match (old_limits.fuel, l.fuel) {
        (Some(old), Some(new)) if new > old => added.push(format!("limits.fuel: {old} -> {new}")),
        (Some(old), None) => added.push(format!("limits.fuel: {old} -> no budget")),
        _ => {}
    }
    added
}

/// The variable names in an entry's `{{ name }}` templates.
fn template_names(entry: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = entry;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(&format!("name = \"p\"\nversion = \"0.1.0\"\n{extra}")).unwrap()
    }

    #[test]
    fn lists_what_a_version_asks_for_beyond_the_active_one() {
        let old = manifest(
            "allowed_outbound_hosts = [\"https://a.example\"]\nroutes = [{ path = \"/api/p\" }]\n",
        );
        let new = manifest(
            "allowed_outbound_hosts = [\"https://a.example\", \"https://b.example\"]\nllm = true\n\
             routes = [{ path = \"/api/p\", methods = [\"GET\", \"POST\"] }, { path = \"/api/p/hook\", auth = \"none\" }]\n\
             schedule = [{ cron = \"0 * * * *\", job = \"sync\" }]\n[limits]\nmemory_mb = 128\ntimeout_ms = 1000\n",
        );
        assert_eq!(
            added_capabilities(Some(&old), &new),
            vec![
                "allowed_outbound_hosts: https://b.example",
                "llm",
                "routes: POST /api/p",
                "routes: GET /api/p/hook",
                "routes: /api/p/hook open to anyone (auth = \"none\")",
                "schedule: 0 * * * * sync",
                "limits.memory_mb: 64 -> 128",
            ]
        );
        // Back again: only the lower deadline grows.
        assert_eq!(
            added_capabilities(Some(&new), &old),
            vec!["limits.timeout_ms: 1000 -> 5000"]
        );
        assert!(added_capabilities(Some(&new), &new).is_empty());
    }

    #[test]
    fn longer_instance_reuse_is_an_addition() {
        let old = manifest("[limits]\nreuse_requests = 1\n");
        let new = manifest("[limits]\nreuse_requests = 100\nreuse_idle_ms = 5000\n");
        assert_eq!(
            added_capabilities(Some(&old), &new),
            vec![
                "limits.reuse_requests: 1 -> 100",
                "limits.reuse_idle_ms: 1000 -> 5000",
            ]
        );
        // Reusing less asks for nothing.
        assert!(added_capabilities(Some(&new), &old).is_empty());
    }

    #[test]
    fn a_new_plugin_is_compared_with_one_that_asks_for_nothing() {
        assert!(added_capabilities(None, &manifest("")).is_empty());
        assert_eq!(
            added_capabilities(None, &manifest("notifications = true\n")),
            vec!["notifications"]
        );
    }

    #[test]
    fn a_changed_default_behind_an_outbound_entry_is_an_addition() {
        let entry = "allowed_outbound_hosts = [\"{{ base }}\"]\n";
        let old = manifest(&format!(
            "{entry}[variables]\nbase = {{ default = \"https://a.example\" }}\n"
        ));
        let new = manifest(&format!(
            "{entry}[variables]\nbase = {{ default = \"https://b.example\" }}\n"
        ));
        assert_eq!(
            added_capabilities(Some(&old), &new),
            vec!["allowed_outbound_hosts: {{ base }} with base defaulting to https://b.example"]
        );
    }
}
