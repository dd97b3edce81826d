//! A stand-in for the cluster's service-account issuer, and tokens as Knative Eventing's
//! dispatchers present them.
//!
//! The Kubernetes API server publishes its issuer's discovery document at
//! `/.well-known/openid-configuration` and the keys at `/openid/v1/jwks`, both behind
//! authentication (`system:service-account-issuer-discovery`, bound to every service account).
//! This stand-in serves the same two documents on loopback, answers `401` to a fetch without
//! the pod token it is given, and counts fetches. Tokens are RS256 JWTs with the claims of a
//! TokenRequest (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`), minted as eventing-kafka-broker's
//! `TokenProvider.java` asks the API server for them: one audience, an hour's lifetime.
//!
//! The keys are test keys committed under `data/oidc/` (PKCS#1 DER): `issuer` is the one the
//! JWKS publishes, `attacker` one it does not.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use todo_events_host::oidc::OidcSettings;
use todo_events_host::Auth;

/// The `kid` the JWKS publishes.
pub const KID: &str = "test-issuer-key-1";
/// The bearer token the stand-in requires of a fetch (a pod's own service-account token).
pub const POD_TOKEN: &str = "pod-service-account-token";
/// The shared token (`AUTH_TOKEN`) the tests' functions accept beside OIDC.
pub const SHARED_TOKEN: &str = "test-shared-token-0123456789abcdef0123456789";
/// The audience the tests' functions accept.
pub const AUDIENCE: &str = "todo-events/notify";
/// The subject of the KafkaSource's OIDC service account, as knative/eventing
/// `pkg/auth/serviceaccount.go` names it (`<source>-oidc-sources.knative.dev-kafkasource`).
pub const SOURCE_SUBJECT: &str =
    "system:serviceaccount:todo-events:reminders-oidc-sources.knative.dev-kafkasource";

const ISSUER_KEY: &[u8] = include_bytes!("../data/oidc/issuer.rsa.der");
const ATTACKER_KEY: &[u8] = include_bytes!("../data/oidc/attacker.rsa.der");
const JWKS: &str = include_str!("../data/oidc/issuer.jwks.json");

/// The issuer stand-in, serving until dropped (its thread ends with the process).
pub struct Issuer {
    /// What its discovery document names as `issuer` (the tokens' `iss`).
    pub issuer: String,
    /// Its base URL: `OIDC_DISCOVERY_URL`.
    pub url: String,
    fetches: Arc<AtomicUsize>,
}

/// Which key signs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The issuer's published key.
    Issuer,
    /// A key the issuer does not publish, under the issuer's `kid`.
    Attacker,
}

impl Issuer {
    /// Serves the discovery document and the keys on a random loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the issuer stand-in");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = "https://kubernetes.default.svc.cluster.local".to_owned();
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({"issuer": issuer, "jwks_uri": format!("{url}/openid/v1/jwks")}).to_string();
        let counter = fetches.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("authorization:")
                        && line.trim_end().ends_with(&format!("Bearer {POD_TOKEN}"))
                    {
                        authorized = true;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match (authorized, path) {
                    (false, _) => ("401 Unauthorized", "{}".to_owned()),
                    (true, "/.well-known/openid-configuration") => ("200 OK", discovery.clone()),
                    (true, "/openid/v1/jwks") => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", JWKS.to_owned())
                    }
                    _ => ("404 Not Found", "{}".to_owned()),
                };
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { issuer, url, fetches }
    }

    /// What the tests' functions check, as knative/ configures them: this issuer (found by
    /// discovery, fetched with `pod_token_file`), [`AUDIENCE`], [`SOURCE_SUBJECT`], and a
    /// shared token ([`SHARED_TOKEN`]) beside it.
    pub fn auth(&self, pod_token_file: &std::path::Path) -> Auth {
        let oidc = OidcSettings {
            audience: AUDIENCE.into(),
            subjects: vec![SOURCE_SUBJECT.into()],
            discovery_url: self.url.parse().unwrap(),
            issuer: None,
            ca_file: None,
            token_file: Some(pod_token_file.to_owned()),
            leeway: std::time::Duration::from_secs(10),
        };
        Auth::new(Some(SHARED_TOKEN.to_owned().into()), Some(oidc)).expect("the tests' auth settings")
    }

    /// How many times the keys were fetched.
    pub fn key_fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// A file holding the pod token the stand-in requires (`OIDC_TOKEN_FILE`).
    pub fn pod_token_file(&self) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("a temp file");
        file.write_all(POD_TOKEN.as_bytes()).unwrap();
        file
    }

    /// The claims a dispatcher's token carries now: this issuer, the source's subject, the
    /// tests' audience, an hour's lifetime.
    pub fn claims(&self) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer,
            "sub": SOURCE_SUBJECT,
            "aud": [AUDIENCE],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        })
    }

    /// `claims` signed RS256 by `signer` under `kid` (default [`KID`]).
    pub fn sign(&self, claims: &Value, signer: Signer, kid: Option<&str>) -> String {
        sign(claims, signer, Algorithm::RS256, Some(kid.unwrap_or(KID)))
    }

    /// A valid token of the source's service account.
    pub fn token(&self) -> String {
        self.sign(&self.claims(), Signer::Issuer, None)
    }

    /// What the API server's TokenRequest gives a dispatcher: a token of `subject` for
    /// `audience`, valid for `lifetime` from now.
    pub fn token_for(&self, subject: &str, audience: &str, lifetime: std::time::Duration) -> String {
        let mut claims = self.claims();
        claims["sub"] = json!(subject);
        claims["aud"] = json!([audience]);
        claims["exp"] = json!(chrono::Utc::now().timestamp() + lifetime.as_secs() as i64);
        self.sign(&claims, Signer::Issuer, None)
    }
}

/// `claims` signed with `alg` by `signer`'s key. RSA keys only: an algorithm of another
/// family is made by hand (header and claims, no valid signature) to test that it is refused.
pub fn sign(claims: &Value, signer: Signer, alg: Algorithm, kid: Option<&str>) -> String {
    let der = match signer {
        Signer::Issuer => ISSUER_KEY,
        Signer::Attacker => ATTACKER_KEY,
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(der)).expect("a test token")
}

/// A token whose header says `alg` (e.g. `none`, `HS256`) with `claims` and a junk signature.
pub fn unsigned(alg: &str, claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": alg, "typ": "JWT", "kid": KID}).to_string();
    format!(
        "{}.{}.{}",
        b64.encode(header),
        b64.encode(claims.to_string()),
        b64.encode("not a signature")
    )
}
