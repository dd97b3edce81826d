//! Who may post events: the sender is authenticated before its body is read.
//!
//! An event is a claim that something is due, and `POST /` is reachable by more than the
//! scheduler: every pod of a cluster reaches a cluster-local Knative Service through the
//! local gateway. So a function that listens beyond loopback checks its caller with the
//! platform's own mechanism (docs/DEPLOYMENT.md, "Authentication"):
//!
//! - **OIDC sender identity** (knative/): with Knative Eventing's `authentication-oidc`
//!   feature, a KafkaSource's dispatcher sends `Authorization: Bearer <JWT>`, a Kubernetes
//!   service-account token requested for the sink's audience. It is verified here against
//!   the cluster issuer's JWKS: signature, `iss`, `aud`, `exp` (and `nbf`), and the `sub`
//!   against an allow-list of the sources' service accounts ([`crate::oidc`]).
//! - **A shared token** (a plain HTTP deployment, the scheduler's HTTP sink):
//!   `Authorization: Bearer <AUTH_TOKEN>`, compared in constant time.
//!
//! Either may be set, or both (a token is tried as the shared token first, then as a JWT).
//! With neither, every caller is accepted: the local default, where the function listens on
//! loopback only; listening beyond it so, the function says at start that anyone who
//! reaches the port can post events ([`Auth::warn_if_open`]).
//!
//! Answers name what was wrong with the credentials (missing, expired, wrong audience…),
//! never what is configured: RFC 6750's `401` with `WWW-Authenticate: Bearer`, `403` for a
//! valid identity that is not allowed, `503` when the issuer's keys cannot be fetched (a
//! retry can help). Neither `401` nor `403` is retried by a Knative dispatcher.

use crate::config::{env_var, ConfigError};
use crate::oidc::{OidcSettings, OidcVerifier, Rejected};
use crate::problem::{Challenge, Problem};
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Shortest accepted `AUTH_TOKEN`: 32 characters (e.g. `openssl rand -hex 16`), so that a
/// token cannot be guessed within any number of requests a function would serve.
pub const AUTH_TOKEN_MIN_LEN: usize = 32;

/// How callers of `POST /` are authenticated. Cloning shares the OIDC key cache.
#[derive(Clone, Default)]
pub struct Auth {
    token: Option<Arc<SecretString>>,
    oidc: Option<Arc<OidcVerifier>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("oidc", &self.oidc.as_ref().map(|o| o.settings()))
            .finish()
    }
}

/// Who a request was accepted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No authentication is configured.
    Anyone,
    /// The holder of the shared token.
    SharedToken,
    /// A service account's OIDC identity (its `sub`).
    Subject(String),
}

impl Auth {
    /// No authentication: every caller is accepted.
    pub fn open() -> Self {
        Self::default()
    }

    /// A shared bearer token, an OIDC check, or both.
    pub fn new(token: Option<SecretString>, oidc: Option<OidcSettings>) -> Result<Self, ConfigError> {
        if let Some(token) = &token {
            check_token(token)?;
        }
        Ok(Self {
            token: token.map(Arc::new),
            oidc: oidc.map(OidcVerifier::new).transpose()?.map(Arc::new),
        })
    }

    /// `AUTH_TOKEN` and the `OIDC_*` settings (see [`OidcSettings::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        let token = match env_var("AUTH_TOKEN") {
            Ok(v) if !v.trim().is_empty() => {
                let token = SecretString::from(v.trim().to_owned());
                check_token(&token)?;
                Some(Arc::new(token))
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError("AUTH_TOKEN is not valid UTF-8".into()))
            }
        };
        let oidc = match OidcSettings::from_env()? {
            Some(settings) => Some(Arc::new(OidcVerifier::new(settings)?)),
            None => None,
        };
        Ok(Self { token, oidc })
    }

    /// Whether any caller is checked.
    pub fn is_open(&self) -> bool {
        self.token.is_none() && self.oidc.is_none()
    }

    /// Says at start, once, when events are accepted from anyone beyond loopback.
    pub fn warn_if_open(&self, function: &str, listening: std::net::SocketAddr) {
        if self.is_open() && !is_loopback(listening.ip()) {
            tracing::warn!(
                function,
                %listening,
                "no authentication: anyone who reaches this port can post events; set the OIDC_* \
                 settings (Knative Eventing's sender identity) or AUTH_TOKEN, or listen on loopback \
                 only (LISTEN_ADDRESS=127.0.0.1); docs/DEPLOYMENT.md \"Authentication\""
            );
        }
    }

    /// Checks the request's `Authorization` header. `Err` is the answer to give.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Result<Caller, Problem> {
        if self.is_open() {
            return Ok(Caller::Anyone);
        }
        let Some(header) = authorization else {
            return Err(Problem::unauthenticated(
                Challenge::Missing,
                "the request has no Authorization header; events need a bearer token",
            ));
        };
        let Some(bearer) = std::str::from_utf8(header)
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Err(Problem::unauthenticated(
                Challenge::InvalidRequest,
                "the Authorization header is not a bearer token (Authorization: Bearer <token>)",
            ));
        };
        if let Some(token) = &self.token {
            if bool::from(bearer.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
                return Ok(Caller::SharedToken);
            }
        }
        let Some(oidc) = &self.oidc else {
            return Err(Problem::unauthenticated(
                Challenge::InvalidToken,
                "the bearer token is not accepted",
            ));
        };
        match oidc.verify(bearer).await {
            Ok(subject) => Ok(Caller::Subject(subject)),
            Err(Rejected::Invalid(why)) => {
                tracing::info!("rejected a bearer token: {why}");
                Err(Problem::unauthenticated(Challenge::InvalidToken, why.answer()))
            }
            Err(Rejected::NotAllowed(subject)) => {
                tracing::warn!(
                    subject,
                    "rejected a valid identity that is not in OIDC_ALLOWED_SUBJECTS"
                );
                Err(Problem::forbidden(
                    "the token's subject may not post events to this function",
                ))
            }
            Err(Rejected::KeysUnavailable(cause)) => Err(Problem::unavailable(
                "the sender's identity cannot be checked now (the issuer's keys are unavailable)",
                Some(cause),
            )),
        }
    }
}

fn check_token(token: &SecretString) -> Result<(), ConfigError> {
    let t = token.expose_secret();
    if t.chars().count() < AUTH_TOKEN_MIN_LEN {
        return Err(ConfigError(format!(
            "AUTH_TOKEN must be at least {AUTH_TOKEN_MIN_LEN} characters (e.g. openssl rand -hex 32)"
        )));
    }
    if !t.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError(
            "AUTH_TOKEN must be printable ASCII without spaces (it is sent in an HTTP header)".into(),
        ));
    }
    Ok(())
}

/// Loopback, and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SecretString {
        SecretString::from("0123456789abcdef0123456789abcdef".to_owned())
    }

    #[tokio::test]
    async fn open_accepts_anyone_and_a_token_only_its_holder() {
        assert_eq!(Auth::open().check(None).await, Ok(Caller::Anyone));
        let auth = Auth::new(Some(token()), None).unwrap();
        assert_eq!(
            auth.check(Some(b"Bearer 0123456789abcdef0123456789abcdef")).await,
            Ok(Caller::SharedToken)
        );
        for (header, status) in [
            (None, 401),
            (Some(&b"Bearer 0123456789abcdef0123456789abcdeX"[..]), 401),
            (Some(&b"Basic dXNlcjpwYXNz"[..]), 401),
            (Some(&b"Bearer "[..]), 401),
            (Some(&b"0123456789abcdef0123456789abcdef"[..]), 401),
        ] {
            let problem = auth.check(header).await.unwrap_err();
            assert_eq!(problem.status, status, "{header:?}");
            assert!(!problem.detail.contains("0123456789"), "{problem}");
        }
    }

    #[test]
    fn short_or_unprintable_tokens_stop_the_start() {
        for bad in [
            "short",
            "0123456789abcdef 0123456789abcdef",
            "0123456789abcdef0123456789abcdé",
        ] {
            let e = Auth::new(Some(SecretString::from(bad.to_owned())), None).unwrap_err();
            assert!(e.0.starts_with("AUTH_TOKEN must"), "{e}");
            assert!(!e.0.contains(bad), "{e}");
        }
    }

    #[test]
    fn loopback_is_loopback_only() {
        for (ip, want) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("0.0.0.0", false),
            ("::", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(ip.parse().unwrap()), want, "{ip}");
        }
    }
}
