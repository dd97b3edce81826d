//! The Web Push channel: a reminder as a push message to a subscription a browser gave the todo
//! app (`PushManager.subscribe`: an endpoint URL at the browser's push service and two keys).
//!
//! - **Delivery**, RFC 8030: a `POST` to the endpoint with `TTL` (how long the push service
//!   may hold the message for an offline browser) and `Urgency: high` (a reminder is worth
//!   waking a phone for).
//! - **Encryption**, RFC 8291 with RFC 8188's `aes128gcm`: only the browser can read the
//!   message. A fresh P-256 key pair and salt per message; ECDH with the subscription's
//!   `p256dh` key, HKDF-SHA-256 keyed with its `auth` secret, AES-128-GCM, one record.
//! - **VAPID**, RFC 8292: `Authorization: vapid t=<JWT>, k=<public key>`, the JWT (ES256)
//!   naming the push service's origin, an expiry within 24 hours and `VAPID_SUBJECT` (a
//!   `mailto:` or `https:` contact). The frontend subscribes with the matching public key
//!   ([`Vapid::generate`] makes a pair).
//!
//! The primitives are RustCrypto's (`p256`, `hkdf`, `aes-gcm`); RFC 8291's own example is a
//! unit test (`webpush/tests.rs`), byte for byte. A `404` or `410` means the subscription is
//! gone ([`SendError::Gone`]: the endpoint is deactivated); the rest is judged as for webhooks.

#[cfg(test)]
mod tests;

use super::guard::{redacted, Guard, Refused};
use super::{failed_exchange, judge, LazyClient, Notice, SendError};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use serde_json::json;
use sha2::Sha256;
use std::time::Duration;
use url::Url;

/// RFC 8188 record size: the whole message is one record, so it must fit.
const RECORD_SIZE: u32 = 4096;

/// How long a VAPID token is valid (RFC 8292: at most 24 hours).
const TOKEN_LIFETIME: i64 = 12 * 3600;

/// The application server's VAPID key and contact.
pub struct Vapid {
    key: SigningKey,
    /// The public key, uncompressed point, base64url: what `k=` and the frontend carry.
    public: String,
    subject: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .field("subject", &self.subject)
            .field("key", &"***")
            .finish()
    }
}

impl Vapid {
    /// From `VAPID_PRIVATE_KEY` (the 32-byte P-256 scalar, base64url, as `web-push` and
    /// [`Vapid::generate`] write it) and `VAPID_SUBJECT` (`mailto:` or `https:`). The error
    /// never repeats the key.
    pub fn new(private_key: &str, subject: &str) -> Result<Self, String> {
        let bytes = decode(private_key)
            .filter(|b| b.len() == 32)
            .ok_or("VAPID_PRIVATE_KEY is not a base64url P-256 private key (32 bytes)")?;
        let key = SigningKey::from_slice(&bytes)
            .map_err(|_| "VAPID_PRIVATE_KEY is not a valid P-256 private key".to_owned())?;
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(format!(
                "VAPID_SUBJECT={subject:?} must be a mailto: or https:// contact (RFC 8292)"
            ));
        }
        let public = URL_SAFE_NO_PAD.encode(key.verifying_key().to_encoded_point(false).as_bytes());
        Ok(Self {
            key,
            public,
            subject: subject.to_owned(),
        })
    }

    /// A new key pair: (`VAPID_PRIVATE_KEY`, the public key the frontend subscribes with).
    pub fn generate() -> (String, String) {
        let key = SigningKey::random(&mut OsRng);
        (
            URL_SAFE_NO_PAD.encode(key.to_bytes()),
            URL_SAFE_NO_PAD.encode(key.verifying_key().to_encoded_point(false).as_bytes()),
        )
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a message to `endpoint` at `now` (seconds).
    pub fn authorization(&self, endpoint: &Url, now: i64) -> String {
        let audience = endpoint.origin().ascii_serialization();
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = json!({ "aud": audience, "exp": now + TOKEN_LIFETIME, "sub": self.subject });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "vapid t={signing_input}.{}, k={}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            self.public
        )
    }
}

/// A browser's push subscription, checked once: the endpoint allowed by the target guard, the
/// keys decoded. Neither `Debug` nor an error shows the keys or the endpoint's path (which
/// identifies the subscription).
pub struct Subscription {
    pub id: i64,
    pub url: Url,
    ua_public: PublicKey,
    auth: [u8; 16],
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("url", &redacted(&self.url))
            .field("keys", &"***")
            .finish()
    }
}

impl Subscription {
    /// From a stored subscription: `target` (the endpoint), `p256dh` (an uncompressed P-256
    /// point) and `auth` (16 bytes), both base64url as `PushSubscription.toJSON()` gives them.
    pub fn new(id: i64, target: &str, p256dh: &str, auth: &str, guard: &Guard) -> Result<Self, Refused> {
        let url = guard.check_url(target)?;
        let ua_public = decode(p256dh)
            .and_then(|b| PublicKey::from_sec1_bytes(&b).ok())
            .ok_or_else(|| Refused("the subscription's p256dh key is not a base64url P-256 point".into()))?;
        let auth: [u8; 16] = decode(auth)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Refused("the subscription's auth secret is not 16 base64url bytes".into()))?;
        Ok(Self {
            id,
            url,
            ua_public,
            auth,
        })
    }
}

/// What the service worker shows: title, body and the task's URL, as small JSON.
pub fn payload(notice: &Notice<'_>) -> Vec<u8> {
    let body = match notice.due_local() {
        Some(_) => notice.sentence(),
        None => String::new(),
    };
    serde_json::to_vec(&json!({
        "title": notice.heading(),
        "body": body,
        "url": notice.task_url,
        "tag": format!("reminder-{}", notice.reminder_id),
    }))
    .expect("JSON values serialize")
}

/// RFC 8291 §3.4: `plaintext` encrypted for `to` with the sender's key `sender` and `salt`,
/// as an RFC 8188 `aes128gcm` body of one record.
pub fn encrypt(
    to: &Subscription,
    plaintext: &[u8],
    sender: &SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, SendError> {
    // One record holds the plaintext, its delimiter and the 16-byte tag.
    if plaintext.len() + 17 > RECORD_SIZE as usize {
        return Err(SendError::Permanent(format!(
            "the message is {} bytes, more than one record holds",
            plaintext.len()
        )));
    }
    let as_public = sender.public_key().to_encoded_point(false);
    let (cek, nonce) = content_keys(&input_key(to, sender, as_public.as_bytes()), salt);
    let mut record = plaintext.to_vec();
    record.push(2); // the last record's delimiter
    let sealed = Aes128Gcm::new_from_slice(&cek)
        .expect("16-byte key")
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .map_err(|_| SendError::Permanent("the message could not be encrypted".into()))?;
    Ok(aes128gcm_body(salt, as_public.as_bytes(), &sealed))
}

/// RFC 8291 §3.3–3.4: the input keying material, from the ECDH secret of the sender's key
/// and the subscription's, keyed with the subscription's `auth` secret.
fn input_key(to: &Subscription, sender: &SecretKey, as_public: &[u8]) -> [u8; 32] {
    let ua_public = to.ua_public.to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(sender.to_nonzero_scalar(), to.ua_public.as_affine());
    // IKM = HKDF(auth, ecdh, "WebPush: info" 0x00 ua_public as_public, 32)
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&to.auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .expect("32 bytes is a valid HKDF length");
    ikm
}

/// The content-encryption key and the nonce, from the input keying material and the salt.
fn content_keys(ikm: &[u8; 32], salt: &[u8; 16]) -> ([u8; 16], [u8; 12]) {
    // CEK and nonce from the salt (RFC 8188 §2.2, §2.3).
    let prk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .expect("16 bytes is a valid HKDF length");
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .expect("12 bytes is a valid HKDF length");
    (cek, nonce)
}

/// RFC 8188 §2.1: the body, its header (salt, record size, key id length and key id, the
/// sender's public key) before the one `sealed` record.
fn aes128gcm_body(salt: &[u8; 16], as_public: &[u8], sealed: &[u8]) -> Vec<u8> {
    let mut body = salt.to_vec();
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(as_public);
    body.extend_from_slice(sealed);
    body
}

/// Sends notices to push services: one HTTP client (the target guard its resolver, redirects
/// off, bounded by `timeout`), the VAPID key, the messages' `TTL`.
pub struct WebPush {
    client: LazyClient,
    vapid: Vapid,
    ttl: Duration,
}

impl WebPush {
    pub fn new(guard: Guard, timeout: Duration, vapid: Vapid, ttl: Duration) -> Self {
        Self {
            client: LazyClient::new(guard, timeout),
            vapid,
            ttl,
        }
    }

    pub fn vapid(&self) -> &Vapid {
        &self.vapid
    }

    /// Sends `notice` to `to`, encrypted with a fresh key and salt; `now` in seconds.
    pub async fn send(&self, to: &Subscription, notice: &Notice<'_>, now: i64) -> Result<(), SendError> {
        self.push(to, &payload(notice), now).await
    }

    /// Sends the payload `plaintext` (what the service worker reads) to `to`, encrypted with a
    /// fresh key and salt; `now` in seconds. A reminder's is [`payload`]; the daily agenda
    /// has its own.
    pub async fn push(&self, to: &Subscription, plaintext: &[u8], now: i64) -> Result<(), SendError> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let body = encrypt(to, plaintext, &SecretKey::random(&mut OsRng), &salt)?;
        let shown = redacted(&to.url);
        let response = self
            .client
            .get()?
            .post(to.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header("ttl", self.ttl.as_secs().to_string())
            .header("urgency", "high")
            .header(
                reqwest::header::AUTHORIZATION,
                self.vapid.authorization(&to.url, now),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| failed_exchange(&shown, &e))?;
        judge(&shown, response, &[404, 410]).await
    }
}

/// base64url with or without padding (browsers' `toJSON()` leaves it out, some stores keep it).
fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('=')).ok()
}
