//! The HTTP face of a function, following Knative's function conventions: events on
//! `POST /`, `GET /health/readiness`, `GET /health/liveness`, `GET /metrics`.

use crate::auth::Auth;
use crate::config::{var_or, ConfigError};
use crate::decode::{decode_http, ActixHeaders, Decoded};
use crate::function::{Event, EventData, Failure, Function, Outcome, Reply, Slots};
use crate::group_commit::{GroupCommit, Lanes};
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::reply::reply_response;
use crate::shutdown::Shutdown;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use todo_events_domain::EventKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, Span};

/// Limits and sizing of the HTTP host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Largest accepted request body (`MAX_BODY_BYTES`, default 64 KiB).
    pub max_body_bytes: usize,
    /// Events handled at once before answering `429` (`MAX_IN_FLIGHT`, default 256).
    pub max_in_flight: usize,
    /// actix worker threads (`HTTP_WORKERS`, default: the number of CPUs).
    pub workers: usize,
    /// How long shutdown waits for in-flight events (`SHUTDOWN_TIMEOUT`, default 30s).
    pub shutdown_timeout: Duration,
    /// How concurrent requests are handled together (`GROUP_COMMIT_MAX_EVENTS`,
    /// `GROUP_COMMIT_LANES`; see [`crate::group_commit`]).
    pub group_commit: GroupCommit,
    /// How long a request's body may take to arrive once its headers have (`BODY_TIMEOUT`,
    /// default 10s, 100ms to 5m): a body not complete in time is answered `408` and nothing
    /// is handled. Headers have actix's own 5 s (`client_request_timeout`).
    pub body_timeout: Duration,
    /// Connections open at once, all workers together (`MAX_CONNECTIONS`, default 1024,
    /// 1 to 25 000): beyond it the server stops accepting until one closes, and the kernel
    /// holds the rest in the listen backlog. Each open connection costs its buffers; the
    /// default keeps notify within its 256 Mi limit under slow clients (docs/PERFORMANCE.md).
    pub max_connections: usize,
    /// Who may post events (`AUTH_TOKEN`, `OIDC_*`; [`crate::auth`]): checked before the
    /// in-flight permit is taken and the body read. Open by default.
    pub auth: Auth,
}

/// Bounds of `BODY_TIMEOUT`: below 100 ms a normal body on a busy network fails; above
/// 5 minutes a slow client holds its permit for longer than any sender waits.
pub const BODY_TIMEOUT_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(300));
/// Upper bound of `MAX_CONNECTIONS` (actix's own default per worker).
pub const MAX_CONNECTIONS_BOUND: usize = 25_000;

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_in_flight: 256,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            shutdown_timeout: Duration::from_secs(30),
            group_commit: GroupCommit::default(),
            body_timeout: Duration::from_secs(10),
            max_connections: 1024,
            auth: Auth::open(),
        }
    }
}

impl HostOptions {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(ConfigError(format!("{name} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        let body_timeout = var_or("BODY_TIMEOUT", todo_events_domain::HumanDuration(d.body_timeout))?.0;
        let (low, high) = BODY_TIMEOUT_BOUNDS;
        if body_timeout < low || body_timeout > high {
            return Err(ConfigError(format!(
                "BODY_TIMEOUT must be between {}ms and {}s, not {}ms",
                low.as_millis(),
                high.as_secs(),
                body_timeout.as_millis()
            )));
        }
        let max_connections = positive("MAX_CONNECTIONS", var_or("MAX_CONNECTIONS", d.max_connections)?)?;
        if max_connections > MAX_CONNECTIONS_BOUND {
            return Err(ConfigError(format!(
                "MAX_CONNECTIONS must be at most {MAX_CONNECTIONS_BOUND}, not {max_connections}"
            )));
        }
        Ok(Self {
            auth: Auth::from_env()?,
            body_timeout,
            max_connections,
            max_body_bytes: positive("MAX_BODY_BYTES", var_or("MAX_BODY_BYTES", d.max_body_bytes)?)?,
            max_in_flight: positive("MAX_IN_FLIGHT", var_or("MAX_IN_FLIGHT", d.max_in_flight)?)?,
            workers: positive("HTTP_WORKERS", var_or("HTTP_WORKERS", d.workers)?)?,
            shutdown_timeout: var_or(
                "SHUTDOWN_TIMEOUT",
                todo_events_domain::HumanDuration(d.shutdown_timeout),
            )?
            .0,
            group_commit: GroupCommit {
                max_events: positive(
                    "GROUP_COMMIT_MAX_EVENTS",
                    var_or("GROUP_COMMIT_MAX_EVENTS", d.group_commit.max_events)?,
                )?,
                lanes: positive(
                    "GROUP_COMMIT_LANES",
                    var_or("GROUP_COMMIT_LANES", d.group_commit.lanes)?,
                )?,
            },
        })
    }
}

/// A function with its metrics: what every transport (HTTP here, Kafka in the consumer
/// mode) hands events to, so that an event is handled and counted the same way whichever
/// way it arrived.
pub struct Host<F> {
    function: Arc<F>,
    metrics: Metrics,
}

impl<F> Clone for Host<F> {
    fn clone(&self) -> Self {
        Self {
            function: self.function.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<F: Function> Host<F> {
    pub fn new(function: Arc<F>) -> Self {
        let metrics = Metrics::new(F::NAME);
        for kind in F::Data::KINDS {
            metrics.accepts(kind.cloudevent_type());
        }
        for collector in function.collectors() {
            metrics.register(collector);
        }
        Self { function, metrics }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn function(&self) -> &F {
        &self.function
    }

    /// Parses the data of a decoded event and runs the function on it. Every rejection is
    /// a [`Problem`]: its status says whether trying again can help.
    pub async fn handle(&self, decoded: Decoded) -> Result<(String, Reply), Problem> {
        let kind = decoded.kind;
        let ((id, data), span) = self.parse(decoded)?;
        let result = self.function.handle(&id, data).instrument(span).await;
        self.answer(kind, id, result)
    }

    /// The event's parsed data, and its span: one per event, a child of the publisher's
    /// trace when the event carries one.
    fn parse(&self, decoded: Decoded) -> Result<(Event<F::Data>, Span), Problem> {
        let span = tracing::info_span!(
            "handle",
            otel.name = %format!("{} {}", F::NAME, decoded.kind.cloudevent_type()),
            event_id = %decoded.id,
            function = F::NAME,
        );
        crate::telemetry::extract(
            &span,
            decoded.traceparent.as_deref(),
            decoded.tracestate.as_deref(),
        );
        let data = F::Data::parse(decoded.kind, decoded.data)?;
        Ok(((decoded.id, data), span))
    }

    /// [`Host::handle`] for several events at once (the consumer mode's batches): one
    /// result per event, in order. A batch is one span; a batch of one is handled exactly
    /// as over HTTP (its span continues the publisher's trace).
    pub async fn handle_batch(&self, mut batch: Vec<Decoded>) -> Vec<Result<(String, Reply), Problem>> {
        if batch.len() == 1 {
            // One event: the same span (and trace) as over HTTP.
            let one = batch.pop().expect("one event");
            self.metrics.observe_batch("kafka", 1);
            return vec![self.handle(one).await];
        }
        let span = tracing::info_span!(
            "handle_batch",
            otel.name = %format!("{} {} batch", F::NAME, F::ACCEPTS.cloudevent_type()),
            function = F::NAME,
            events = batch.len(),
        );
        let mut results = Slots::new(batch.len());
        let (mut slots, mut ids, mut parsed) = (Vec::new(), Vec::new(), Vec::new());
        for (i, decoded) in batch.into_iter().enumerate() {
            match F::Data::parse(decoded.kind, decoded.data) {
                Ok(data) => {
                    slots.push(i);
                    ids.push((decoded.kind, decoded.id.clone()));
                    parsed.push((decoded.id, data));
                }
                Err(problem) => results.set(i, Err(problem)),
            }
        }
        self.metrics.observe_batch("kafka", parsed.len());
        let answers = self.function.handle_batch(parsed).instrument(span).await;
        for ((i, (kind, id)), answer) in slots.into_iter().zip(ids).zip(answers) {
            results.set(i, self.answer(kind, id, answer));
        }
        results.into_results(|| Err(Problem::internal()))
    }

    /// The function's answer to an event of `kind` as the transports see it; lateness of done
    /// effects measured.
    fn answer(
        &self,
        kind: EventKind,
        id: String,
        result: Result<Reply, Failure>,
    ) -> Result<(String, Reply), Problem> {
        match result {
            Ok(reply) => {
                if reply.early {
                    self.metrics.observe_early(kind.cloudevent_type());
                }
                if let (Outcome::Done(_), Some(due)) = (reply.outcome, reply.due) {
                    let late = (chrono::Utc::now() - due).num_milliseconds() as f64 / 1000.0;
                    self.metrics.observe_lateness(kind.cloudevent_type(), late);
                }
                Ok((id, reply))
            }
            Err(failure) => Err(failure_problem(F::NAME, &id, failure)),
        }
    }
}

/// The metrics `outcome` label of a rejection.
pub fn problem_outcome(problem: &Problem) -> &'static str {
    match problem.status {
        400 => "invalid",
        413 => "too_large",
        408 => "body_timeout",
        415 => "unsupported_media_type",
        409 => "in_progress",
        401 => "unauthenticated",
        403 => "forbidden",
        429 => "shed",
        503 => "unavailable",
        _ => "error",
    }
}

struct HostState<F: Function> {
    host: Host<F>,
    opts: HostOptions,
    in_flight: Arc<Semaphore>,
    lanes: Lanes<F>,
    trimmer: Arc<crate::trim::Trimmer>,
}

/// What a server on a port answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    /// Events on `POST /`, health and metrics (the HTTP function).
    Events,
    /// Health and metrics only (`consume` mode, whose events come from Kafka): `POST /` is
    /// `404` and handles nothing.
    HealthOnly,
}

/// Where readiness is served (Knative's and Kubernetes' probes): `200` once the database
/// answers, `503` before and while draining.
pub const READINESS_PATH: &str = "/health/readiness";
/// Where liveness is served: `200` while the process serves at all.
pub const LIVENESS_PATH: &str = "/health/liveness";

/// Serves `function` on `listener` until `shutdown` is raised, then stops accepting, lets
/// in-flight events finish (up to the shutdown timeout) and returns.
pub async fn serve<F: Function>(
    function: Arc<F>,
    listener: std::net::TcpListener,
    opts: HostOptions,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_routes(Host::new(function), listener, opts, shutdown, Routes::Events).await
}

/// [`serve`] for a [`Host`] shared with another transport (its metrics are served too).
pub async fn serve_host<F: Function>(
    host: Host<F>,
    listener: std::net::TcpListener,
    opts: HostOptions,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_routes(host, listener, opts, shutdown, Routes::Events).await
}

/// Health and metrics of a [`Host`] whose events arrive another way (`consume` mode): no
/// event is taken over HTTP (`POST /` answers `404`), so the port needs no authentication.
pub async fn serve_health<F: Function>(
    host: Host<F>,
    listener: std::net::TcpListener,
    opts: HostOptions,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_routes(host, listener, opts, shutdown, Routes::HealthOnly).await
}

async fn serve_routes<F: Function>(
    host: Host<F>,
    listener: std::net::TcpListener,
    opts: HostOptions,
    shutdown: Shutdown,
    routes: Routes,
) -> std::io::Result<()> {
    let state = web::Data::new(HostState {
        lanes: Lanes::new(host.function.clone(), host.metrics.clone(), opts.group_commit),
        host,
        in_flight: Arc::new(Semaphore::new(opts.max_in_flight)),
        opts: opts.clone(),
        trimmer: Arc::default(),
    });
    // Memory taken by a burst goes back once it is over (crate::trim).
    let trimming = tokio::spawn(
        state
            .trimmer
            .clone()
            .run(state.in_flight.clone(), opts.max_in_flight),
    );
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        let app = App::new().app_data(app_state.clone());
        let app = match routes {
            Routes::Events => app.route("/", web::post().to(receive::<F>)),
            Routes::HealthOnly => app,
        };
        app.route(READINESS_PATH, web::get().to(readiness::<F>))
            .route(LIVENESS_PATH, web::get().to(liveness))
            .route("/metrics", web::get().to(metrics::<F>))
            .default_service(web::to(move |req| fallback(req, routes)))
    })
    .workers(opts.workers)
    // actix counts connections per worker.
    .max_connections(opts.max_connections.div_ceil(opts.workers.max(1)))
    .disable_signals()
    .shutdown_timeout(opts.shutdown_timeout.as_secs())
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.wait().await;
        handle.stop(true).await;
    });
    match routes {
        Routes::Events => tracing::info!(function = F::NAME, "listening for events on POST /"),
        Routes::HealthOnly => tracing::info!(function = F::NAME, "serving health and metrics only"),
    }
    let served = server.await;
    trimming.abort();
    // Batches run in tasks of their own, which the server's end does not wait for: each
    // holds its event's in-flight permit until answered, so all permits back means done.
    let all = u32::try_from(opts.max_in_flight).unwrap_or(u32::MAX);
    let drained = async {
        let _all = state.in_flight.acquire_many(all).await;
        if routes == Routes::Events {
            state.host.function().finish_background().await;
        }
    };
    if tokio::time::timeout(opts.shutdown_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            function = F::NAME,
            "shutdown timeout: events still being handled are left to their redelivery"
        );
    }
    served
}

async fn receive<F: Function>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<HostState<F>>,
) -> HttpResponse {
    let started = Instant::now();
    state.trimmer.seen();
    let accepted = F::ACCEPTS.cloudevent_type();
    let (ty, outcome, response) = match receive_inner(&req, payload, &state).await {
        Ok((id, reply)) => {
            let word = reply.outcome.word();
            (accepted, word, reply_response::<F>(&id, reply))
        }
        Err((ty, problem)) => {
            let outcome = problem_outcome(&problem);
            if problem.status >= 500 {
                tracing::warn!(function = F::NAME, status = problem.status, "{problem}");
            } else {
                tracing::info!(function = F::NAME, status = problem.status, "rejected: {problem}");
            }
            (ty, outcome, actix_web::ResponseError::error_response(&problem))
        }
    };
    state
        .host
        .metrics
        .observe(ty, outcome, started.elapsed().as_secs_f64());
    response
}

type Rejection = (&'static str, Problem);

async fn receive_inner<F: Function>(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &HostState<F>,
) -> Result<(String, Reply), Rejection> {
    let other = |p: Problem| ("other", p);
    // The caller first, from its headers alone: an unauthenticated request holds no permit
    // and has no byte of its body read.
    let caller = state
        .opts
        .auth
        .check(req.headers().get("authorization").map(|v| v.as_bytes()))
        .await
        .map_err(other)?;
    if let crate::auth::Caller::Subject(subject) = &caller {
        tracing::debug!(subject, "sender authenticated");
    }
    // Then the permit: a request beyond the limit is answered at once, its body unread, so
    // slow or abusive clients hold at most `MAX_IN_FLIGHT` bodies in memory.
    let permit = state
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| other(Problem::overloaded(state.opts.max_in_flight)))?;
    let in_flight = InFlight::new(permit, &state.host.metrics);
    let limit = state.opts.max_body_bytes;
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(other(Problem::too_large(limit)));
    }
    let deadline = tokio::time::Instant::now() + state.opts.body_timeout;
    let mut body = web::BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => return Err(other(Problem::body_timeout(state.opts.body_timeout))),
        };
        let chunk = chunk.map_err(|e| {
            other(Problem::invalid(
                "body",
                format!("the body could not be read: {e}"),
            ))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(other(Problem::too_large(limit)));
        }
        body.extend_from_slice(&chunk);
    }
    match decode_http(&ActixHeaders(req.headers()), &body, F::Data::KINDS) {
        Ok(decoded) => handle_in_lane(state, decoded, in_flight)
            .await
            .map_err(|p| (F::ACCEPTS.cloudevent_type(), p)),
        Err(p) => Err(("other", p)),
    }
}

/// An event admitted by the in-flight limit: counted on the `events_in_flight` gauge, its
/// permit given back when dropped — after its answer is sent, even if its client is gone.
struct InFlight {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl InFlight {
    fn new(permit: OwnedSemaphorePermit, metrics: &Metrics) -> Self {
        metrics.in_flight.inc();
        Self {
            _permit: permit,
            gauge: metrics.in_flight.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Parses the event and has its lane handle it, with what other requests queued there
/// (group commit, see [`crate::group_commit`]).
async fn handle_in_lane<F: Function>(
    state: &HostState<F>,
    decoded: Decoded,
    in_flight: InFlight,
) -> Result<(String, Reply), Problem> {
    let kind = decoded.kind;
    let (event, span) = state.host.parse(decoded)?;
    let id = event.0.clone();
    let result = state.lanes.handle(event, span, Box::new(in_flight)).await;
    state.host.answer(kind, id, result)
}

/// The HTTP answer to a [`Failure`].
pub fn failure_problem(function: &str, event_id: &str, failure: Failure) -> Problem {
    match failure {
        Failure::Invalid { field, detail } => Problem::invalid(field, detail),
        Failure::Unavailable { detail, cause } => Problem::unavailable(detail, cause),
        Failure::InProgress(detail) => Problem::in_progress(detail),
        Failure::Internal(detail) => {
            tracing::error!(function, event_id, "internal error: {detail}");
            Problem::internal()
        }
    }
}

async fn readiness<F: Function>(state: web::Data<HostState<F>>) -> HttpResponse {
    match state.host.function.ready().await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ready\n"),
        Err(failure) => {
            let problem = match failure {
                Failure::Unavailable { detail, cause } => {
                    Problem::unavailable(format!("not ready: {detail}"), cause)
                }
                other => Problem::unavailable(
                    "not ready: the function cannot check what it needs (see its log)",
                    Some(other.to_string()),
                ),
            };
            tracing::warn!(function = F::NAME, "{problem}");
            actix_web::ResponseError::error_response(&problem)
        }
    }
}

async fn liveness() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("alive\n")
}

async fn metrics<F: Function>(state: web::Data<HostState<F>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.host.metrics.render())
}

async fn fallback(req: HttpRequest, routes: Routes) -> HttpResponse {
    let path = req.path();
    let known = [READINESS_PATH, LIVENESS_PATH, "/metrics"];
    let problem = if routes == Routes::HealthOnly && path == "/" {
        Problem::no_events_here()
    } else if known.contains(&path) || (path == "/" && routes == Routes::Events) {
        Problem::method_not_allowed(req.method().as_str(), path)
    } else {
        Problem::not_found(path)
    };
    actix_web::ResponseError::error_response(&problem)
}
