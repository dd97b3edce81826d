//! Logs and traces.
//!
//! Logs go through `tracing` to stderr: human-readable by default, JSON with
//! `LOG_FORMAT=json`, filtered by `RUST_LOG` (default `info`).
//!
//! Traces are exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; `OTEL_EXPORTER_OTLP_PROTOCOL` picks
//! `http/protobuf` (default) or `http/json`, `OTEL_SERVICE_NAME` the service name (default the
//! program's). A trace follows each event from the scheduler through Kafka or HTTP to the
//! function, carried in the CloudEvents `traceparent` extension (W3C Trace Context), see
//! [`inject`] and [`extract`].

use crate::config::env_var;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::io::IsTerminal;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Keeps the trace exporter alive; flushes pending spans when dropped (end of `main`).
#[must_use = "traces are flushed when this guard is dropped"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("traces could not be flushed: {e}");
            }
        }
    }
}

/// Installs logging (and tracing export when configured) for `program`. Later calls are
/// no-ops for logging (tests start many apps in one process).
pub fn init(program: &str) -> Telemetry {
    let filter = env_var(EnvFilter::DEFAULT_ENV)
        .ok()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info,actix_server=warn,actix_web=warn,sqlx=warn"));
    let json = env_var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Logs go to stderr: stdout stays for command output (listings, summaries).
    let logs = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        fmt::layer()
            .compact()
            .with_target(false)
            // Colours only on a terminal: log files and collectors get plain text.
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed()
    };
    let provider = match tracer_provider(program) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{program}: trace export disabled: {e}");
            None
        }
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("todo-events"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init();
    Telemetry { provider }
}

fn tracer_provider(program: &str) -> Result<Option<SdkTracerProvider>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| env_var(v).is_ok_and(|s| !s.trim().is_empty()));
    if !configured {
        return Ok(None);
    }
    let protocol = match env_var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("http/json") => Protocol::HttpJson,
        Ok("http/protobuf") | Err(_) => Protocol::HttpBinary,
        Ok(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported (http/protobuf or http/json)"
            ))
        }
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| e.to_string())?;
    let service = env_var("OTEL_SERVICE_NAME").unwrap_or_else(|_| program.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

struct MapCarrier<'a>(&'a mut HashMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapReader<'a>(&'a HashMap<String, String>);

impl Extractor for MapReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The W3C `traceparent` (and `tracestate`) of `span`, for the CloudEvents Distributed
/// Tracing extension. Empty when the span is not being traced.
pub fn inject(span: &tracing::Span) -> HashMap<String, String> {
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut MapCarrier(&mut map));
    map
}

/// Makes `span` a child of the trace named by `traceparent` / `tracestate`.
pub fn extract(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    let mut map = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(state) = tracestate {
        map.insert("tracestate".into(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&MapReader(&map));
    let _ = span.set_parent(cx);
}
