//! Verifying an OIDC sender identity: a JWT from the cluster's service-account issuer.
//!
//! Knative Eventing's `authentication-oidc` feature has a KafkaSource's dispatcher request a
//! Kubernetes service-account token for the sink's audience and send it as
//! `Authorization: Bearer <JWT>` (docs/DEPLOYMENT.md, "Authentication", cites the upstream
//! sources). The function trusts nobody else's word for it: the token's signature is checked
//! against the issuer's published keys, found as Knative's own receivers find them (the API
//! server's `/.well-known/openid-configuration`, then its `jwks_uri`; both readable by every
//! service account through `system:service-account-issuer-discovery`), then `iss`, `aud`,
//! `exp` and `nbf` (with `CLOCK_SKEW_TOLERANCE` of leeway), then `sub` against
//! `OIDC_ALLOWED_SUBJECTS`.
//!
//! Keys are fetched on first use and again when a token names a key not in the set (the
//! issuer rotated its keys), at most once per [`REFETCH_MIN`] so that tokens naming made-up
//! keys cannot make the function hammer the API server; a set older than [`KEYS_MAX_AGE`] is
//! fetched again on the next token. The signature work is `jsonwebtoken`'s (ring underneath,
//! already linked for TLS).

use crate::config::{clock_skew_tolerance, var, ConfigError};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Where a pod finds the cluster's service-account issuer: its discovery document is
/// `<this>/.well-known/openid-configuration` (what Knative's own receivers read: knative/eventing
/// `pkg/auth/verifier.go`, eventing-kafka-broker `OIDCDiscoveryConfig.java`).
pub const DEFAULT_DISCOVERY_URL: &str = "https://kubernetes.default.svc";
/// A pod's service-account files: the API server's CA and the pod's own token, with which
/// the discovery document and keys are fetched when `OIDC_CA_FILE` / `OIDC_TOKEN_FILE` are
/// not set. The token is sent only to the discovery URL's own origin.
pub const POD_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
pub const POD_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Least time between two fetches of the key set.
pub const REFETCH_MIN: Duration = Duration::from_secs(10);
/// A key set older than this is fetched again on the next token.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// The signature algorithms accepted: Kubernetes signs with RS256 by default, ES256 when the
/// issuer's key is an EC key. No symmetric algorithm (a public JWKS cannot hold a secret),
/// never `none`. RSA's first, then EC's: [`Key::of`] splits the list there.
pub const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// What the OIDC check needs to know.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `OIDC_AUDIENCE`: the `aud` the tokens must carry, the KafkaSources'
    /// `spec.sink.audience`. Setting it turns the check on.
    pub audience: String,
    /// `OIDC_ALLOWED_SUBJECTS`: the `sub`s accepted, comma-separated
    /// (`system:serviceaccount:<namespace>:<name>`).
    pub subjects: Vec<String>,
    /// `OIDC_DISCOVERY_URL` (default [`DEFAULT_DISCOVERY_URL`]): `https`, or `http` on loopback.
    pub discovery_url: url::Url,
    /// `OIDC_ISSUER`: the `iss` the tokens must carry; default: the discovery document's
    /// `issuer` (clusters differ: `https://kubernetes.default.svc`, `…svc.cluster.local`, a
    /// cloud provider's URL).
    pub issuer: Option<String>,
    /// `OIDC_CA_FILE`: PEM of the CA that signed the discovery server's certificate, beside the
    /// public roots (default [`POD_CA_FILE`] when present).
    pub ca_file: Option<PathBuf>,
    /// `OIDC_TOKEN_FILE`: a bearer token for the discovery URL's origin, read at each fetch
    /// (projected tokens rotate; default [`POD_TOKEN_FILE`] when present).
    pub token_file: Option<PathBuf>,
    /// Leeway for `exp` and `nbf`: `CLOCK_SKEW_TOLERANCE`.
    pub leeway: Duration,
}

impl OidcSettings {
    /// The settings, or `None` when `OIDC_AUDIENCE` is not set (no OIDC check).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let subjects: Option<String> = var("OIDC_ALLOWED_SUBJECTS")?;
        let discovery: Option<String> = var("OIDC_DISCOVERY_URL")?;
        let issuer: Option<String> = var("OIDC_ISSUER")?;
        let ca_file: Option<PathBuf> = var("OIDC_CA_FILE")?;
        let token_file: Option<PathBuf> = var("OIDC_TOKEN_FILE")?;
        let Some(audience) = var::<String>("OIDC_AUDIENCE")? else {
            let set = [
                ("OIDC_ALLOWED_SUBJECTS", subjects.is_some()),
                ("OIDC_DISCOVERY_URL", discovery.is_some()),
                ("OIDC_ISSUER", issuer.is_some()),
            ];
            if let Some((name, _)) = set.iter().find(|(_, set)| *set) {
                return Err(ConfigError(format!(
                    "{name} is set but OIDC_AUDIENCE is not: set the audience to turn the OIDC check on"
                )));
            }
            return Ok(None);
        };
        let subjects = subjects.ok_or_else(|| {
            ConfigError(
                "OIDC_ALLOWED_SUBJECTS is not set: the service accounts that may post events \
                 (system:serviceaccount:<namespace>:<name>, comma-separated)"
                    .into(),
            )
        })?;
        let pod_file = |path: &str| Some(PathBuf::from(path)).filter(|p| p.exists());
        let settings = Self {
            audience,
            subjects: subjects
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            discovery_url: parse_discovery_url(discovery.as_deref().unwrap_or(DEFAULT_DISCOVERY_URL))?,
            issuer,
            ca_file: ca_file.or_else(|| pod_file(POD_CA_FILE)),
            token_file: token_file.or_else(|| pod_file(POD_TOKEN_FILE)),
            leeway: clock_skew_tolerance()?.to_std().unwrap_or_default(),
        };
        if settings.subjects.is_empty() {
            return Err(ConfigError("OIDC_ALLOWED_SUBJECTS names no subject".into()));
        }
        if let Some(bad) = settings
            .subjects
            .iter()
            .find(|s| s.chars().any(char::is_whitespace))
        {
            return Err(ConfigError(format!(
                "OIDC_ALLOWED_SUBJECTS: {bad:?} is not a subject"
            )));
        }
        // A missing file stops the start rather than answering 503 later.
        if let Some(path) = &settings.token_file {
            std::fs::metadata(path)
                .map_err(|e| ConfigError(format!("OIDC_TOKEN_FILE={}: {e}", path.display())))?;
        }
        Ok(Some(settings))
    }

    /// The discovery document's URL.
    pub fn discovery_document(&self) -> url::Url {
        let mut url = self.discovery_url.clone();
        let path = format!(
            "{}/.well-known/openid-configuration",
            url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        url
    }
}

fn parse_discovery_url(text: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text)
        .map_err(|e| ConfigError(format!("OIDC_DISCOVERY_URL={text:?} is invalid: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => crate::auth::is_loopback(ip.into()),
        Some(url::Host::Ipv6(ip)) => crate::auth::is_loopback(ip.into()),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(ConfigError(format!(
            "OIDC_DISCOVERY_URL={text:?} must be https (http only on loopback)"
        ))),
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a valid token from the issuer for this audience: `401`.
    Invalid(Invalid),
    /// A valid token whose subject is not allowed (the subject, for the log): `403`.
    NotAllowed(String),
    /// The key set could not be fetched (the cause, for the log): `503`.
    KeysUnavailable(String),
}

/// What was wrong with a token, as the caller may be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("signed by a key the issuer does not publish")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("wrong audience")]
    Audience,
    #[error("wrong issuer")]
    Issuer,
    #[error("missing claim {0}")]
    MissingClaim(String),
}

impl Invalid {
    /// The answer's detail: what is wrong with the token, nothing of what is configured.
    pub fn answer(&self) -> String {
        match self {
            Self::Malformed(_) => "the bearer token is not a well-formed JWT".into(),
            Self::Algorithm(alg) => format!("the bearer token's algorithm {alg} is not accepted"),
            Self::UnknownKey => "the bearer token is signed by a key its issuer does not publish".into(),
            Self::Signature => "the bearer token's signature is invalid".into(),
            Self::Expired => "the bearer token has expired".into(),
            Self::NotYetValid => "the bearer token is not valid yet".into(),
            Self::Audience => "the bearer token is not for this audience".into(),
            Self::Issuer => "the bearer token is not from the accepted issuer".into(),
            Self::MissingClaim(c) => format!("the bearer token has no {c} claim"),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    /// Optional here so that a token without one is told so (required below).
    sub: Option<String>,
}

/// The part of an OpenID Provider's discovery document used here.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: url::Url,
}

/// The issuer's keys, its name, and when they were fetched.
struct KeySet {
    issuer: String,
    keys: Vec<Key>,
    fetched: Instant,
}

/// A published key, parsed once when the set is fetched (not on every token).
struct Key {
    kid: Option<String>,
    /// What it may verify: its family's algorithms among [`ALGORITHMS`], narrowed to its
    /// declared `alg` when it has one.
    algorithms: Vec<Algorithm>,
    decoding: Result<DecodingKey, String>,
}

impl Key {
    fn of(jwk: &jsonwebtoken::jwk::Jwk) -> Self {
        let family: &[Algorithm] = match jwk.algorithm {
            AlgorithmParameters::RSA(_) => &ALGORITHMS[..4],
            AlgorithmParameters::EllipticCurve(_) => &ALGORITHMS[4..],
            _ => &[],
        };
        // KeyAlgorithm and Algorithm share their names (RS256, ES256, …).
        let declared = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
        Self {
            kid: jwk.common.key_id.clone(),
            algorithms: family
                .iter()
                .copied()
                .filter(|a| declared.as_ref().is_none_or(|d| *d == format!("{a:?}")))
                .collect(),
            decoding: DecodingKey::from_jwk(jwk).map_err(|e| e.to_string()),
        }
    }
}

#[derive(Default)]
struct Keys {
    current: Option<KeySet>,
    last_fetch: Option<Instant>,
}

/// Verifies tokens; shares its key cache between requests.
pub struct OidcVerifier {
    settings: OidcSettings,
    client: reqwest::Client,
    keys: Mutex<Keys>,
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings) -> Result<Self, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| ConfigError(format!("OIDC_CA_FILE={}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ConfigError(format!("OIDC_CA_FILE={} is not PEM: {e}", path.display())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ConfigError(format!("the OIDC discovery client cannot be built: {e}")))?;
        Ok(Self {
            settings,
            client,
            keys: Mutex::new(Keys::default()),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The token's subject when it is valid and allowed.
    pub async fn verify(&self, token: &str) -> Result<String, Rejected> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Rejected::Invalid(Invalid::Malformed(e.to_string())))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Rejected::Invalid(Invalid::Algorithm(format!("{:?}", header.alg))));
        }
        let (issuer, key) = self.key(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[self.settings.issuer.as_deref().unwrap_or(&issuer)]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| Rejected::Invalid(invalid(e)))?;
        let subject = data
            .claims
            .sub
            .ok_or_else(|| Rejected::Invalid(Invalid::MissingClaim("sub".into())))?;
        if self.settings.subjects.contains(&subject) {
            Ok(subject)
        } else {
            Err(Rejected::NotAllowed(subject))
        }
    }

    /// The issuer's name and its key `kid` for `alg`, fetching the keys when not known.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<(String, DecodingKey), Rejected> {
        let mut keys = self.keys.lock().await;
        let fresh = keys
            .current
            .as_ref()
            .is_some_and(|k| k.fetched.elapsed() < KEYS_MAX_AGE);
        if fresh {
            if let Some(found) = find(keys.current.as_ref(), kid, alg)? {
                return Ok(found);
            }
        }
        if keys.last_fetch.is_none_or(|at| at.elapsed() >= REFETCH_MIN) {
            keys.last_fetch = Some(Instant::now());
            match self.fetch().await {
                Ok(set) => keys.current = Some(set),
                Err(cause) => {
                    tracing::warn!(
                        url = %self.settings.discovery_url,
                        "cannot fetch the OIDC issuer's keys: {cause}"
                    );
                    if keys.current.is_none() {
                        return Err(Rejected::KeysUnavailable(cause));
                    }
                }
            }
        }
        match find(keys.current.as_ref(), kid, alg)? {
            Some(found) => Ok(found),
            None if keys.current.is_none() => Err(Rejected::KeysUnavailable("no key set fetched yet".into())),
            None => Err(Rejected::Invalid(Invalid::UnknownKey)),
        }
    }

    /// The discovery document, then the key set it points to. The pod's token goes only to
    /// the discovery URL's own origin (a provider's `jwks_uri` may be elsewhere).
    async fn fetch(&self) -> Result<KeySet, String> {
        let discovery: Discovery = self.get_json(self.settings.discovery_document()).await?;
        let set: JwkSet = self.get_json(discovery.jwks_uri).await?;
        Ok(KeySet {
            issuer: discovery.issuer,
            keys: set.keys.iter().map(Key::of).collect(),
            fetched: Instant::now(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: url::Url) -> Result<T, String> {
        let mut request = self.client.get(url.clone());
        if let Some(path) = &self.settings.token_file {
            if url.origin() == self.settings.discovery_url.origin() {
                let token = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                request = request.bearer_auth(token.trim());
            }
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        response
            .json::<T>()
            .await
            .map_err(|e| format!("{url}: not what OIDC discovery serves: {}", e.without_url()))
    }
}

/// The key of the set that `kid` names and that fits `alg` (without a `kid`, the only
/// fitting key). `Err` for a named key of another kind than `alg`.
fn find(
    keys: Option<&KeySet>,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Option<(String, DecodingKey)>, Rejected> {
    let Some(KeySet { issuer, keys, .. }) = keys else {
        return Ok(None);
    };
    let fits = |k: &&Key| k.algorithms.contains(&alg);
    let key = match kid {
        Some(kid) => match keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
            Some(key) if fits(&key) => Some(key),
            Some(_) => return Err(Rejected::Invalid(Invalid::Algorithm(format!("{alg:?}")))),
            None => None,
        },
        None => {
            let mut fitting = keys.iter().filter(fits);
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    key.map(|k| match &k.decoding {
        Ok(decoding) => Ok((issuer.clone(), decoding.clone())),
        Err(e) => Err(Rejected::KeysUnavailable(format!(
            "a published key is unusable: {e}"
        ))),
    })
    .transpose()
}

fn invalid(e: jsonwebtoken::errors::Error) -> Invalid {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => Invalid::Expired,
        K::ImmatureSignature => Invalid::NotYetValid,
        K::InvalidAudience => Invalid::Audience,
        K::InvalidIssuer => Invalid::Issuer,
        K::InvalidSignature => Invalid::Signature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName => Invalid::Algorithm("of the key".into()),
        K::MissingRequiredClaim(c) => Invalid::MissingClaim(c.clone()),
        _ => Invalid::Malformed(e.to_string()),
    }
}
