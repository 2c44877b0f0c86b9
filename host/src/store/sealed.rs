//! Sealed values: what `storage.set-sealed` writes and `storage.get-sealed` opens,
//! for secrets a plugin must keep (OAuth tokens) that must not sit in the database
//! in plaintext.
//!
//! One host secret ([`HostSecret`]: `HAM_SECRET_KEY`, or else a random key kept in
//! `<data dir>/secret.key`) is the root of every key. Each plugin gets its own
//! AES-256-GCM key, derived with HKDF-SHA256 with an `info` naming the plugin, so
//! one plugin cannot open what another sealed. The associated data binds a value to
//! the row it was written to (owner and key), so a value copied to another user's
//! scope or another key does not open either.
//!
//! The stored form is an envelope, versioned so the scheme can change later:
//! `hamseal1` ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. A value that does
//! not open (another key, another plugin, tampered, or never sealed) is refused,
//! never returned.

use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The envelope's leading tag: version 1 of the scheme.
pub const ENVELOPE_TAG: &[u8] = b"hamseal1";
/// Shortest `HAM_SECRET_KEY` accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
const SALT: &[u8] = b"ham host secret v1";

/// The root secret every sealing and grant key is derived from. Never logged.
#[derive(Clone)]
pub struct HostSecret {
    prk: hkdf::Prk,
}

impl std::fmt::Debug for HostSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSecret(***)")
    }
}

/// Why the host secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "HAM_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes (generate one with `openssl rand -hex 32`)"
    )]
    TooShort,
    #[error("cannot read or create {0}: {1}")]
    File(String, std::io::Error),
    #[error("{0} holds {1} bytes, not 32; delete it only if nothing sealed must be kept")]
    BadFile(String, usize),
    #[error("no randomness available")]
    Random,
}

/// A value that did not open.
#[derive(Debug, thiserror::Error)]
#[error("the sealed value does not open (another key, another plugin, or tampered)")]
pub struct NotOpened;

/// The output length HKDF hands out: 32 bytes, for AES-256 and HMAC-SHA256 keys.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl HostSecret {
    /// A secret from raw key material (`HAM_SECRET_KEY`'s bytes, or the key file's).
    pub fn from_bytes(material: &[u8]) -> Result<Self, SecretError> {
        if material.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(Self {
            prk: hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(material),
        })
    }

    /// A fresh random secret that lives as long as the process (tests, tools).
    pub fn random() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretError::Random)?;
        Self::from_bytes(&bytes)
    }

    /// `HAM_SECRET_KEY` when set; otherwise the key in `<data dir>/secret.key`,
    /// generated (32 random bytes, mode 0600) on first start. Replicas must share
    /// one secret, so production sets `HAM_SECRET_KEY`.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(key) = configured {
            return Self::from_bytes(key.as_bytes());
        }
        let path = data_dir.join("secret.key");
        let shown = path.display().to_string();
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => return Self::from_bytes(&bytes),
            Ok(bytes) => return Err(SecretError::BadFile(shown, bytes.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SecretError::File(shown, e)),
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretError::Random)?;
        write_new_private(&path, &bytes).map_err(|e| SecretError::File(shown.clone(), e))?;
        tracing::warn!(
            path = %shown,
            "HAM_SECRET_KEY is not set: generated a secret key into the data dir; \
             in production set HAM_SECRET_KEY (every replica must share it)"
        );
        Self::from_bytes(&bytes)
    }

    /// 32 bytes of key material for one purpose (`info`).
    fn derive(&self, info: &[&[u8]]) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        // Expanding fails only for an output longer than 255 hash lengths.
        let filled = self
            .prk
            .expand(info, Len32)
            .and_then(|okm| okm.fill(&mut bytes));
        debug_assert!(filled.is_ok(), "32 bytes is a valid HKDF-SHA256 length");
        bytes
    }

    /// An HMAC-SHA256 key for one purpose, for example grants.
    pub fn hmac_key(&self, info: &[&[u8]]) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.derive(info))
    }

    fn sealing_key(&self, plugin: &str) -> LessSafeKey {
        match UnboundKey::new(&AES_256_GCM, &self.derive(&[b"seal", plugin.as_bytes()])) {
            Ok(key) => LessSafeKey::new(key),
            // 32 bytes is AES-256-GCM's key length.
            Err(_) => unreachable!("a 32-byte key fits AES-256-GCM"),
        }
    }

    /// Seals `value` for `plugin`, bound to the row `(owner, key)`, under a fresh
    /// random nonce.
    pub fn seal(
        &self,
        plugin: &str,
        owner: &str,
        key: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let mut sealed = value.to_vec();
        self.sealing_key(plugin)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(owner, key)),
                &mut sealed,
            )
            .map_err(|_| SecretError::Random)?;
        let mut out = Vec::with_capacity(ENVELOPE_TAG.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(ENVELOPE_TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens an envelope [`seal`](Self::seal) wrote for the same plugin and row.
    pub fn open(
        &self,
        plugin: &str,
        owner: &str,
        key: &str,
        envelope: &[u8],
    ) -> Result<Vec<u8>, NotOpened> {
        let rest = envelope.strip_prefix(ENVELOPE_TAG).ok_or(NotOpened)?;
        if rest.len() < NONCE_LEN {
            return Err(NotOpened);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| NotOpened)?;
        let mut buf = sealed.to_vec();
        let opened = self
            .sealing_key(plugin)
            .open_in_place(nonce, Aad::from(aad(owner, key)), &mut buf)
            .map_err(|_| NotOpened)?;
        Ok(opened.to_vec())
    }
}

fn aad(owner: &str, key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(owner.len() + key.len() + 1);
    aad.extend_from_slice(owner.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key.as_bytes());
    aad
}

/// Creates `path` with `bytes`, readable by the owner only; refuses to overwrite.
fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> HostSecret {
        HostSecret::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_plugin_row_and_key() {
        let s = secret(1);
        let sealed = s
            .seal("strava-sync", "u1", "connection", b"token-123")
            .unwrap();
        assert!(sealed.starts_with(ENVELOPE_TAG));
        assert!(!sealed.windows(9).any(|w| w == b"token-123"));
        assert_eq!(
            s.open("strava-sync", "u1", "connection", &sealed).unwrap(),
            b"token-123"
        );
        // Another plugin, another owner, another key, another host secret: refused.
        assert!(s.open("coach", "u1", "connection", &sealed).is_err());
        assert!(s.open("strava-sync", "u2", "connection", &sealed).is_err());
        assert!(s.open("strava-sync", "u1", "other", &sealed).is_err());
        assert!(
            secret(2)
                .open("strava-sync", "u1", "connection", &sealed)
                .is_err()
        );
        // Tampered or never sealed: refused.
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(
            s.open("strava-sync", "u1", "connection", &tampered)
                .is_err()
        );
        assert!(
            s.open("strava-sync", "u1", "connection", b"token-123")
                .is_err()
        );
        assert!(
            s.open("strava-sync", "u1", "connection", b"hamseal1")
                .is_err()
        );
    }

    #[test]
    fn every_write_has_a_fresh_nonce() {
        let s = secret(1);
        let a = s.seal("p", "", "k", b"same").unwrap();
        let b = s.seal("p", "", "k", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = HostSecret::load(None, dir.path()).unwrap();
        let path = dir.path().join("secret.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = first.seal("p", "", "k", b"v").unwrap();
        let again = HostSecret::load(None, dir.path()).unwrap();
        assert_eq!(again.open("p", "", "k", &sealed).unwrap(), b"v");
        assert!(matches!(
            HostSecret::load(Some("short"), dir.path()),
            Err(SecretError::TooShort)
        ));
    }
}
