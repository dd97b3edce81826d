//! A function served on a random loopback port ([`spawn`], [`TestApp`]) and how a test talks
//! to it: CloudEvents posted in binary or structured mode, the answer read back ([`reply`],
//! [`assert_unavailable`]), its metrics ([`TestApp::metrics`], [`metric`]).
//!
//! Its own module because it is the in-process side of the tests (the real host, no binary):
//! everything that knows the HTTP shape of a request or answer lives here.

use serde_json::Value;
use std::net::TcpListener;
use std::sync::Arc;
use todo_events_host::{serve, Function, HostOptions, Shutdown};

/// A function served on a random loopback port; stopped when dropped.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    shutdown: Shutdown,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub async fn spawn<F: Function>(function: F) -> TestApp {
    spawn_with(
        function,
        HostOptions {
            workers: 2,
            ..HostOptions::default()
        },
    )
    .await
}

pub async fn spawn_with<F: Function>(function: F, opts: HostOptions) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    tokio::spawn(serve(Arc::new(function), listener, opts, shutdown.clone()));
    // Pooled connections are dropped after 2 s idle, before the host's keep-alive (actix's
    // 5 s) closes them: a request sent on a connection the server is closing at that moment
    // fails with "connection closed before message completed" (seen once in channel_retries).
    let client = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    for _ in 0..100 {
        if client.get(format!("{url}/health/liveness")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    TestApp {
        url,
        client,
        shutdown,
    }
}

impl TestApp {
    /// The function's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics answered");
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.expect("metrics text")
    }

    /// POSTs an event in binary mode.
    pub async fn post_binary(&self, ty: &str, id: &str, data: &Value) -> reqwest::Response {
        self.post_binary_as(ty, id, data, None).await
    }

    /// POSTs an event in binary mode with `authorization` as its `Authorization` header.
    pub async fn post_binary_as(
        &self,
        ty: &str,
        id: &str,
        data: &Value,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/", self.url))
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/todo/scheduler-cron")
            .header("ce-type", ty)
            .header("content-type", "application/json")
            .body(data.to_string());
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.send().await.expect("request sent")
    }

    /// POSTs an event in structured mode.
    pub async fn post_structured(&self, ty: &str, id: &str, data: &Value) -> reqwest::Response {
        let body = serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/todo/scheduler-cron", "type": ty,
            "datacontenttype": "application/json", "data": data,
        });
        self.client
            .post(format!("{}/", self.url))
            .header("content-type", "application/cloudevents+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }
}

/// A function's answer as a test reads it: status, reply CloudEvent type (`ce-type`) and the
/// JSON body (reply data or problem).
pub async fn reply(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let ty = response
        .headers()
        .get("ce-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, ty, response.json().await.unwrap_or(Value::Null))
}

/// Asserts a `503` problem answer that names `dependency` ("the database") and holds none
/// of `hidden` (the dependency's own error text: its address, its words):
/// what is unavailable goes to the caller, why goes to the log.
pub async fn assert_unavailable(response: reqwest::Response, dependency: &str, hidden: &[&str]) {
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(response.headers().contains_key("retry-after"));
    let body = response.text().await.expect("a body");
    let problem: Value = serde_json::from_str(&body).expect("problem+json");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(dependency),
        "the answer names {dependency}: {body}"
    );
    for text in hidden {
        assert!(!body.contains(text), "the answer shows {text:?}: {body}");
    }
}

/// The value of the sample of metric `name` whose labels include each of `labels`
/// (`key="value"`) in a Prometheus text exposition, or 0 when there is none.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name && labels.iter().all(|label| rest.contains(label))
        })
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0.0)
}
