//! RFC 9457 problem details: how every rejection is answered.

use http::StatusCode;
use serde::Serialize;
use std::fmt;

/// A problem's `type`: `urn:todo-events:problem:<slug>`, made at compile time (a `Problem`
/// holds its type and title as `&'static str`).
macro_rules! problem_type {
    ($slug:literal) => {
        concat!("urn:todo-events:problem:", $slug)
    };
}

/// RFC 6750's challenge of a `401`: what was wrong with the request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials at all: no error code (RFC 6750 §3.1).
    Missing,
    /// The `Authorization` header is not a bearer token.
    InvalidRequest,
    /// A token came and is not accepted.
    InvalidToken,
}

impl Challenge {
    /// The `WWW-Authenticate` header's value.
    pub fn header(self) -> &'static str {
        match self {
            Self::Missing => r#"Bearer realm="todo-events""#,
            Self::InvalidRequest => r#"Bearer realm="todo-events", error="invalid_request""#,
            Self::InvalidToken => r#"Bearer realm="todo-events", error="invalid_token""#,
        }
    }
}

/// An `application/problem+json` answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The request part at fault: a CloudEvents attribute (`type`, `specversion`), `data`
    /// or a field inside it (`data.remind_at`), a header, or `body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (429 / 503).
    #[serde(skip)]
    pub retry_after: Option<u32>,
    /// A `401`'s `WWW-Authenticate: Bearer` challenge (RFC 6750).
    #[serde(skip)]
    pub challenge: Option<Challenge>,
    /// What went wrong in a dependency's own words (a database's or a mail server's error
    /// text): written to the log and to a dead letter's reason, never into the answer, which
    /// says only what is unavailable.
    #[serde(skip)]
    pub cause: Option<String>,
}

impl Problem {
    fn new(kind: &'static str, title: &'static str, status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            retry_after: None,
            challenge: None,
            cause: None,
        }
    }

    /// `400`: not a CloudEvent, an unknown type, or invalid data; `field` names the culprit.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            problem_type!("invalid-event"),
            "Invalid event",
            StatusCode::BAD_REQUEST,
            detail,
        );
        p.field = Some(field.into());
        p
    }

    /// `413`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            problem_type!("payload-too-large"),
            "Payload too large",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// `415`.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            problem_type!("unsupported-media-type"),
            "Unsupported media type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail,
        );
        p.field = Some("content-type".into());
        p
    }

    /// `503`: a dependency is down or asked us to try later. Knative retries it. `detail`
    /// names what is unavailable; `cause`, the dependency's own error text, is kept for the
    /// log and dead letters only.
    pub fn unavailable(detail: impl Into<String>, cause: Option<String>) -> Self {
        let mut p = Self::new(
            problem_type!("dependency-unavailable"),
            "Service unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            detail,
        );
        p.retry_after = Some(5);
        p.cause = cause;
        p
    }

    /// `429`: too many events in flight; shed load rather than queue without bound.
    pub fn overloaded(limit: usize) -> Self {
        let mut p = Self::new(
            problem_type!("overloaded"),
            "Too many requests",
            StatusCode::TOO_MANY_REQUESTS,
            format!("more than {limit} events are being handled; retry shortly"),
        );
        p.retry_after = Some(1);
        p
    }

    /// `409`: the same event is being handled by another delivery right now.
    pub fn in_progress(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            problem_type!("in-progress"),
            "Event in progress",
            StatusCode::CONFLICT,
            detail,
        );
        p.retry_after = Some(2);
        p
    }

    /// `500`: a bug; the detail is logged, not shown.
    pub fn internal() -> Self {
        Self::new(
            problem_type!("internal"),
            "Internal error",
            StatusCode::INTERNAL_SERVER_ERROR,
            "the event could not be handled because of an internal error; it was logged",
        )
    }

    /// `404` for unknown paths, in the same format.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            problem_type!("not-found"),
            "Not found",
            StatusCode::NOT_FOUND,
            format!("no route for {path}; events are delivered with POST /"),
        )
    }

    /// `404` for `POST /` where events are not taken over HTTP (`consume` mode).
    pub fn no_events_here() -> Self {
        Self::new(
            problem_type!("not-found"),
            "Not found",
            StatusCode::NOT_FOUND,
            "this port serves health and metrics only; events are consumed from Kafka",
        )
    }

    /// `408`: the request body did not arrive within the body timeout; nothing was handled.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        let mut p = Self::new(
            problem_type!("body-timeout"),
            "Request timeout",
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms; nothing was handled",
                limit.as_millis()
            ),
        );
        p.field = Some("body".into());
        p
    }

    /// `401`: the caller did not authenticate, or its credentials are not valid
    /// (`crate::auth`).
    pub fn unauthenticated(challenge: Challenge, detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            problem_type!("unauthenticated"),
            "Unauthorized",
            StatusCode::UNAUTHORIZED,
            detail,
        );
        p.field = Some("authorization".into());
        p.challenge = Some(challenge);
        p
    }

    /// `403`: a valid identity that may not post events here.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            problem_type!("forbidden"),
            "Forbidden",
            StatusCode::FORBIDDEN,
            detail,
        );
        p.field = Some("authorization".into());
        p
    }

    /// `405` for a wrong method on a known path.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            problem_type!("method-not-allowed"),
            "Method not allowed",
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported on {path}"),
        )
    }

    /// Whether trying the same event again later can help: a dependency down (`503`), the
    /// event being handled elsewhere (`409`), load shed (`429`), a body too slow (`408`).
    /// Knative's dispatcher retries these statuses (and `404` and other `5xx`); the Kafka
    /// consumer asks this instead of reading status codes itself, so both transports retry
    /// the same failures.
    pub fn is_retryable(&self) -> bool {
        matches!(self.status, 408 | 409 | 429 | 503)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({}): {}", self.title, field, self.detail)?,
            None => write!(f, "{}: {}", self.title, self.detail)?,
        }
        match &self.cause {
            Some(cause) => write!(f, " ({cause})"),
            None => Ok(()),
        }
    }
}

/// How the host answers a `Problem`: its status, `Retry-After`, `WWW-Authenticate` and the
/// problem as `application/problem+json`.
#[cfg(feature = "actix")]
impl actix_web::ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let mut response = actix_web::HttpResponse::build(self.status());
        response.content_type("application/problem+json");
        if let Some(secs) = self.retry_after {
            response.insert_header(("retry-after", secs.to_string()));
        }
        if let Some(challenge) = self.challenge {
            response.insert_header(("www-authenticate", challenge.header()));
        }
        response.json(self)
    }
}
