//! Secrets at rest: the webhook signing secrets and Web Push keys in `channel_endpoints`
//! (`secret`, `p256dh`, `auth`) stored sealed with a key the operator holds, so that a dump of
//! the database alone lets no one sign a webhook or read a push subscription's keys
//! (docs/CHANNELS.md, "Secrets at rest").
//!
//! A sealed value is `sealed:v1:<key id>:<base64url of nonce ‖ ciphertext ‖ tag>`:
//! AES-256-GCM (the RustCrypto `aes-gcm` crate, already notify's for Web Push), a random
//! 96-bit nonce per value, and as associated data the column and the user the row belongs
//! to (`todo-events channel_endpoints.<column> user <user_id>`), so that a sealed value
//! copied into another column or another user's row does not open. The key id in the value
//! names the key that opens it: several keys are configured for a rotation
//! ([`Keys`], `SECRETS_KEYS`), the first seals.
//!
//! A value without the prefix is plain text, as a todo app that does not seal writes it: it is
//! used as it is, and the scheduler's pass seals it (`Store::seal_endpoints`), as it seals
//! again with the first key a value sealed with another (a rotation: once none is left under
//! the old key, the old key can go). An app that
//! never wants plain text at rest seals before it inserts (the format above; any AES-GCM
//! library does it).

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::fmt;

/// What sealed values start with.
pub const PREFIX: &str = "sealed:v1:";

/// The column a value is kept in: part of what it is sealed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Secret,
    P256dh,
    Auth,
}

impl Column {
    pub const ALL: [Column; 3] = [Column::Secret, Column::P256dh, Column::Auth];

    pub fn name(self) -> &'static str {
        match self {
            Column::Secret => "secret",
            Column::P256dh => "p256dh",
            Column::Auth => "auth",
        }
    }
}

/// Where a value is kept: its column and the user of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub column: Column,
    pub user_id: i64,
}

impl Place {
    fn associated_data(self) -> String {
        format!(
            "todo-events channel_endpoints.{} user {}",
            self.column.name(),
            self.user_id
        )
    }
}

/// Why a sealed value did not open, or why `SECRETS_KEYS` is not usable. Never holds the
/// value or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("it is sealed with key {0:?}, which SECRETS_KEYS does not hold")]
    UnknownKey(String),
    #[error("key {0:?} does not open it: a wrong key under that id, or the value was altered")]
    WrongKey(String),
    #[error("it starts with sealed:v1: but is not <key id>:<base64url>")]
    Malformed,
    #[error("SECRETS_KEYS: {0}")]
    Keys(String),
}

/// The operator's keys (`SECRETS_KEYS`): `<id>:<base64 of 32 bytes>` separated by commas, the
/// first the one that seals. Empty: nothing is sealed, and a sealed value does not open.
#[derive(Clone, Default)]
pub struct Keys {
    keys: Vec<(String, Aes256Gcm)>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keys").field("ids", &ids).finish()
    }
}

impl Keys {
    /// Parses `SECRETS_KEYS`; the error names the entry by its place, never its key.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for (n, entry) in text.split(',').map(str::trim).enumerate() {
            let bad = |why: &str| SealError::Keys(format!("entry {} {why}", n + 1));
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| bad("is not <id>:<base64 of 32 bytes>"))?;
            let id_ok = (1..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                return Err(bad("has an id that is not 1 to 32 of A-Z a-z 0-9 - _"));
            }
            let bytes = STANDARD
                .decode(key.trim())
                .map_err(|_| bad("has a key that is not base64"))?;
            if bytes.len() != 32 {
                return Err(bad(&format!("has a key of {} bytes; 32 are needed", bytes.len())));
            }
            if keys.iter().any(|(seen, _)| seen == id) {
                return Err(bad(&format!("repeats the id {id:?}")));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad("has a key of the wrong size"))?;
            keys.push((id.to_owned(), cipher));
        }
        Ok(Keys { keys })
    }

    /// Whether any key is configured (then plain values are sealed).
    pub fn any(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals.
    pub fn sealing_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// `plain` sealed for `place` with the first key; `None` without keys.
    pub fn seal(&self, place: Place, plain: &str) -> Option<String> {
        let (id, cipher) = self.keys.first()?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = place.associated_data();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message shorter than 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Some(format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The value as it is to be used: `stored` opened when sealed, else as it is.
    pub fn open(&self, place: Place, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, body) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(SealError::Malformed);
        }
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let (nonce, sealed) = bytes.split_at(12);
        let aad = place.associated_data();
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongKey(id.to_owned()))?;
        String::from_utf8(plain).map_err(|_| SealError::WrongKey(id.to_owned()))
    }
}

/// An endpoint's keyed columns as stored: `(id, user_id, secret, p256dh, auth)`.
pub type StoredSecrets = (i64, i64, Option<String>, Option<String>, Option<String>);

/// What a sealing pass did: rows sealed (plain, or under another key before), rows another
/// writer changed meanwhile (left for the next pass), rows under a key it does not hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealedRows {
    pub sealed: u64,
    pub changed_meanwhile: u64,
    pub unopened: u64,
}

impl SealedRows {
    pub fn add(&mut self, other: SealedRows) {
        self.sealed += other.sealed;
        self.changed_meanwhile += other.changed_meanwhile;
        self.unopened += other.unopened;
    }
}

impl Keys {
    /// `LIKE` pattern of the values sealed with the sealing key.
    pub fn sealing_pattern(&self) -> Option<String> {
        self.sealing_id().map(|id| format!("{PREFIX}{id}:%"))
    }
}

/// `row`'s values sealed with the first key where they are plain or sealed with another:
/// `Ok(None)` when all already are, `Err` when one does not open.
pub fn sealed_row(keys: &Keys, row: &StoredSecrets) -> Result<Option<[Option<String>; 3]>, SealError> {
    let (_, user_id, secret, p256dh, auth) = row;
    let current = keys.sealing_id();
    let stale = |v: &str| !is_sealed(v) || key_id(v) != current;
    let values = [secret, p256dh, auth];
    if !values.iter().any(|v| v.as_deref().is_some_and(stale)) {
        return Ok(None);
    }
    let mut out = [None, None, None];
    for ((slot, value), column) in out.iter_mut().zip(values).zip(Column::ALL) {
        let place = Place {
            column,
            user_id: *user_id,
        };
        *slot = match value.as_deref() {
            Some(v) if stale(v) => keys.seal(place, &keys.open(place, v)?),
            other => other.map(str::to_owned),
        };
    }
    Ok(Some(out))
}

/// Checks `keys` against sealed values as stored (`StoredSecrets` rows): every key id they
/// name must be configured and open one of its values. The first problem, in words that name
/// the key id and the endpoint, never a value.
pub fn check(keys: &Keys, rows: &[StoredSecrets]) -> Result<(), String> {
    let mut checked: Vec<&str> = Vec::new();
    for (id, user_id, secret, p256dh, auth) in rows {
        for (value, column) in [secret, p256dh, auth].into_iter().zip(Column::ALL) {
            let Some(value) = value.as_deref().filter(|v| is_sealed(v)) else {
                continue;
            };
            let kid = key_id(value).unwrap_or("?");
            if checked.contains(&kid) {
                continue;
            }
            if let Err(e) = keys.open(
                Place {
                    column,
                    user_id: *user_id,
                },
                value,
            ) {
                let set = match keys.any() {
                    true => "",
                    false => " (SECRETS_KEYS is not set)",
                };
                return Err(format!(
                    "channel_endpoints row {id}, column {}: {e}{set}; notify cannot sign \
                     webhooks or encrypt pushes with it",
                    column.name()
                ));
            }
            checked.push(kid);
        }
    }
    Ok(())
}

/// Whether `stored` is a sealed value (else plain text).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The id of the key `stored` is sealed with.
pub fn key_id(stored: &str) -> Option<&str> {
    stored.strip_prefix(PREFIX)?.split_once(':').map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn place(user_id: i64) -> Place {
        Place {
            column: Column::Secret,
            user_id,
        }
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_in_its_place_only() {
        let keys = Keys::parse(K1).unwrap();
        let sealed = keys.seal(place(7), SECRET).unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("MfKQ9r8"), "{sealed}");
        assert_eq!(key_id(&sealed), Some("k1"));
        assert_eq!(keys.open(place(7), &sealed).unwrap(), SECRET);
        // Every value its own nonce.
        assert_ne!(keys.seal(place(7), SECRET).unwrap(), sealed);
        // Another user's row, another column: it does not open.
        assert_eq!(
            keys.open(place(8), &sealed),
            Err(SealError::WrongKey("k1".into()))
        );
        let auth = Place {
            column: Column::Auth,
            user_id: 7,
        };
        assert_eq!(keys.open(auth, &sealed), Err(SealError::WrongKey("k1".into())));
        // Plain text is used as it is.
        assert_eq!(keys.open(place(7), SECRET).unwrap(), SECRET);
    }

    #[test]
    fn a_rotation_seals_with_the_first_key_and_opens_with_any() {
        let old = Keys::parse(K1).unwrap();
        let sealed_before = old.seal(place(1), SECRET).unwrap();
        let rotated = Keys::parse(&format!("{K2}, {K1}")).unwrap();
        assert_eq!(rotated.sealing_id(), Some("k2"));
        assert_eq!(rotated.open(place(1), &sealed_before).unwrap(), SECRET);
        let sealed_after = rotated.seal(place(1), SECRET).unwrap();
        assert_eq!(key_id(&sealed_after), Some("k2"));
        assert_eq!(
            old.open(place(1), &sealed_after),
            Err(SealError::UnknownKey("k2".into()))
        );
        // The same id with another key: refused, not garbage.
        let wrong = Keys::parse("k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=").unwrap();
        assert_eq!(
            wrong.open(place(1), &sealed_before),
            Err(SealError::WrongKey("k1".into()))
        );
        assert_eq!(
            Keys::default().open(place(1), &sealed_before),
            Err(SealError::UnknownKey("k1".into()))
        );
        for bad in ["sealed:v1:k1", "sealed:v1:k1:!!", "sealed:v1:k1:AAAA"] {
            assert_eq!(old.open(place(1), bad), Err(SealError::Malformed), "{bad}");
        }
    }

    #[test]
    fn bad_keys_are_refused_naming_the_entry_never_the_key() {
        let refused = [
            ("k1", "entry 1 is not <id>:<base64"),
            ("k1:c2hvcnQ=", "entry 1 has a key of 5 bytes; 32 are needed"),
            ("k1:not base64!", "entry 1 has a key that is not base64"),
            (
                ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "entry 1 has an id",
            ),
            (
                "k 1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "entry 1 has an id",
            ),
            (&format!("{K1},{K1}"), "entry 2 repeats the id \"k1\""),
            (&format!("{K1},"), "entry 2 is not"),
        ];
        for (text, says) in refused {
            let err = Keys::parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with("SECRETS_KEYS: ") && err.contains(says),
                "{text}: {err}"
            );
            assert!(!err.contains("AAECAwQF"), "{err}");
        }
    }
}
