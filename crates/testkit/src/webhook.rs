//! A real receiver of webhooks and Web Push messages for tests: `peers/webhook_receiver.py` in
//! the test virtualenv, on a free loopback port, storing every request it gets (each copy) in
//! a directory. It checks each Standard Webhooks signature itself, from the specification,
//! with Python's own HMAC; as a push service and browser in one it makes each subscription's
//! keys, checks the VAPID token with `cryptography` and decrypts each message with `http_ece`
//! (Mozilla's RFC 8291 implementation): nothing of notify's code is shared with it. Its
//! answers can be changed while it runs ([`WebhookReceiver::command`]), e.g. a burst of `503`
//! with `Retry-After`, or `410` for a subscription that is gone. Stopped on drop.

use crate::peer::Peer;
use base64::Engine;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An endpoint of the receiver: `/hooks/<name>`, its signatures checked with `secret`.
pub struct Endpoint<'a> {
    pub name: &'a str,
    pub secret: Option<&'a str>,
}

/// How the receiver behaves from its start.
#[derive(Default, Clone)]
pub struct Options {
    /// Fixed replies: `NAME|*[:TIMES]=STATUS[;HEADER: VALUE]...` (see the script).
    pub replies: Vec<String>,
    /// Seconds to wait before answering each request.
    pub delay: Option<f64>,
    /// Push subscriptions to make: `/push/<name>` ([`WebhookReceiver::subscription`]).
    pub push: Vec<String>,
}

/// A push subscription as a browser hands it to the todo app (base64url keys).
#[derive(Debug, Clone)]
pub struct PushSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub endpoint: Option<String>,
    pub method: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
    /// `Some(true)`: the signature checked out; `Some(false)`: it did not (see `problem`);
    /// `None`: no secret is configured for the endpoint.
    pub signature_valid: Option<bool>,
    pub signature_problem: Option<String>,
    /// Push only: whether the VAPID token checked out, and why not.
    pub vapid_valid: Option<bool>,
    pub vapid_problem: Option<String>,
    /// Push only: the message as the browser decrypted it (`None`: it did not decrypt).
    pub decrypted: Option<Vec<u8>>,
    /// Push only: what was wrong with the headers or the encryption.
    pub push_problem: Option<String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub struct WebhookReceiver {
    pub port: u16,
    /// Before `dir`: fields drop in order, so the process is gone before its directory.
    peer: Peer,
    dir: tempfile::TempDir,
}

/// The script, for documentation and hand use.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/webhook_receiver.py")
}

impl WebhookReceiver {
    pub fn start(endpoints: &[Endpoint<'_>], options: &Options) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script()).arg("--dir").arg(dir.path());
        for e in endpoints {
            cmd.arg("--endpoint").arg(match e.secret {
                Some(secret) => format!("{}={secret}", e.name),
                None => e.name.to_owned(),
            });
        }
        for reply in &options.replies {
            cmd.arg("--reply").arg(reply);
        }
        if let Some(delay) = options.delay {
            cmd.arg("--delay").arg(delay.to_string());
        }
        for name in &options.push {
            cmd.arg("--push").arg(name);
        }
        let peer = Peer::start(cmd, "the test webhook receiver");
        Self {
            port: peer.port,
            peer,
            dir,
        }
    }

    /// Push subscription `name`, as the browser would hand it over.
    pub fn subscription(&self, name: &str) -> PushSubscription {
        let all: Value = serde_json::from_slice(
            &std::fs::read(self.dir.path().join("subscriptions.json")).expect("subscriptions.json"),
        )
        .expect("subscriptions JSON");
        let s = &all[name];
        let text = |k: &str| {
            s[k].as_str()
                .unwrap_or_else(|| panic!("no subscription {name}"))
                .to_owned()
        };
        PushSubscription {
            endpoint: text("endpoint"),
            p256dh: text("p256dh"),
            auth: text("auth"),
        }
    }

    /// The URL of endpoint `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hooks/{name}", self.port)
    }

    /// Sends a command (e.g. `reply a:2=503;Retry-After: 7`) and waits until it is in force.
    pub fn command(&mut self, line: &str) {
        self.peer.command(line);
    }

    /// How many requests were received so far (cheap: the files are counted, not read).
    pub fn received(&self) -> usize {
        self.request_files().len()
    }

    fn request_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .expect("receiver dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("req-"))
            })
            .collect()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        let mut files = self.request_files();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("request file"))
                    .expect("request JSON");
                Request {
                    endpoint: v["endpoint"].as_str().map(str::to_owned),
                    method: v["method"].as_str().unwrap_or_default().to_owned(),
                    headers: serde_json::from_value(v["headers"].clone()).expect("headers"),
                    body: base64::engine::general_purpose::STANDARD
                        .decode(v["body"].as_str().unwrap_or_default())
                        .expect("base64 body"),
                    status: v["status"].as_u64().unwrap_or_default() as u16,
                    signature_valid: v["signature_valid"].as_bool(),
                    signature_problem: v["signature_problem"].as_str().map(str::to_owned),
                    vapid_valid: v["vapid_valid"].as_bool(),
                    vapid_problem: v["vapid_problem"].as_str().map(str::to_owned),
                    decrypted: v["decrypted"].as_str().map(|b| {
                        base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .expect("base64 plaintext")
                    }),
                    push_problem: v["push_problem"].as_str().map(str::to_owned),
                }
            })
            .collect()
    }

    /// Copies received so far per `webhook-id` (`(none)` for requests without one) that
    /// were answered 2xx: what "delivered once" is checked against.
    pub fn delivered(&self) -> HashMap<String, u32> {
        let mut copies = HashMap::new();
        for r in self
            .requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
        {
            let id = r.header("webhook-id").unwrap_or("(none)").to_owned();
            *copies.entry(id).or_insert(0) += 1;
        }
        copies
    }
}
