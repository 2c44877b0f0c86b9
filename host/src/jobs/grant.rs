//! Grants: how a job that acts for no user (a webhook event) comes to act for the
//! user who connected.
//!
//! `jobs.grant()` is only answered for an invocation that acts for a user, and
//! returns `<user id>.<mac>`, where `mac` is HMAC-SHA256 (hex) over the plugin's
//! name and the user id, keyed from the host secret with the info `grant`.
//! `jobs.enqueue-granted(grant, …)` checks the MAC for the calling plugin before it
//! queues a job acting for that user. So a plugin can act only for users who used
//! it themselves, and a grant issued to one plugin is worthless to another.
//!
//! A grant does not expire; it is revoked by rotating `HAM_SECRET_KEY` (which also
//! makes sealed values unreadable) or, for one user, by the plugin forgetting it.

use ring::hmac;

use crate::store::sealed::HostSecret;

fn key(secret: &HostSecret) -> hmac::Key {
    secret.hmac_key(&[b"grant"])
}

fn message(plugin: &str, user: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(plugin.len() + user.len() + 1);
    m.extend_from_slice(plugin.as_bytes());
    m.push(0);
    m.extend_from_slice(user.as_bytes());
    m
}

/// A grant for `plugin` to act for `user`.
pub fn issue(secret: &HostSecret, plugin: &str, user: &str) -> String {
    let tag = hmac::sign(&key(secret), &message(plugin, user));
    format!("{user}.{}", hex::encode(tag.as_ref()))
}

/// The user a grant names, when it was issued to `plugin` under this secret.
pub fn verify(secret: &HostSecret, plugin: &str, grant: &str) -> Option<String> {
    let (user, mac) = grant.rsplit_once('.')?;
    if user.is_empty() {
        return None;
    }
    let mac = hex::decode(mac).ok()?;
    hmac::verify(&key(secret), &message(plugin, user), &mac).ok()?;
    Some(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> HostSecret {
        HostSecret::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_grant_names_its_user_for_its_plugin_only() {
        let s = secret(7);
        let grant = issue(&s, "strava-sync", "user-1");
        assert_eq!(verify(&s, "strava-sync", &grant).as_deref(), Some("user-1"));
        // Another plugin, another host secret: refused.
        assert_eq!(verify(&s, "coach", &grant), None);
        assert_eq!(verify(&secret(8), "strava-sync", &grant), None);
    }

    #[test]
    fn a_tampered_grant_is_refused() {
        let s = secret(7);
        let grant = issue(&s, "strava-sync", "user-1");
        let (_, mac) = grant.rsplit_once('.').unwrap();
        // Another user with the same MAC.
        assert_eq!(verify(&s, "strava-sync", &format!("user-2.{mac}")), None);
        // One flipped hex digit.
        let mut flipped = grant.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(verify(&s, "strava-sync", &flipped), None);
        for junk in ["", ".", "user-1", "user-1.", ".abcd", "user-1.zz"] {
            assert_eq!(verify(&s, "strava-sync", junk), None, "{junk}");
        }
    }
}
