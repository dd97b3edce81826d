//! A real SMTP server for the tests: `smtp_server.py` (aiosmtpd) in the test virtualenv, on a
//! free loopback port, storing what it accepts in a temporary directory. Stopped on drop.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// How the server behaves.
#[derive(Default, Clone)]
pub struct Options {
    /// Offer and require STARTTLS with this certificate and key (PEM files).
    pub starttls: Option<(PathBuf, PathBuf)>,
    /// TLS from the first byte (smtps) with this certificate and key.
    pub implicit_tls: Option<(PathBuf, PathBuf)>,
    /// Require AUTH with this user and password.
    pub auth: Option<(String, String)>,
    /// Fixed replies: `PHASE[:ADDRESS|*][:TIMES]=CODE TEXT` (see the script).
    pub replies: Vec<String>,
    /// Seconds to wait before answering the end of DATA.
    pub data_delay: Option<f64>,
}

/// A message the server accepted.
pub struct Received {
    pub raw: Vec<u8>,
    /// `mail_from`, `rcpt_tos`, `tls`, `auth_user`.
    pub meta: Value,
}

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
    _stdin: ChildStdin,
}

impl SmtpServer {
    pub fn start(options: &Options) -> Self {
        let python = todo_events_testkit::python();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtp_server.py");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(python);
        cmd.arg(&script).arg("--dir").arg(dir.path());
        if let Some((cert, key)) = &options.starttls {
            cmd.arg("--starttls").arg(cert).arg(key);
        }
        if let Some((cert, key)) = &options.implicit_tls {
            cmd.arg("--implicit-tls").arg(cert).arg(key);
        }
        if let Some((user, password)) = &options.auth {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
        }
        for reply in &options.replies {
            cmd.arg("--reply").arg(reply);
        }
        if let Some(delay) = options.data_delay {
            cmd.arg("--data-delay").arg(delay.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("the test SMTP server cannot start: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the test SMTP server did not say READY within 60 s");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the test SMTP server did not start: {line:?}"));
        Self {
            port,
            dir,
            child,
            _stdin: stdin,
        }
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let mut metas: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("server dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json") && p.file_name() != Some("stats.json".as_ref())
            })
            .collect();
        metas.sort();
        metas
            .into_iter()
            .map(|meta| Received {
                raw: std::fs::read(meta.with_extension("eml")).expect("message file"),
                meta: serde_json::from_slice(&std::fs::read(&meta).expect("meta file")).expect("meta JSON"),
            })
            .collect()
    }

    /// `sessions` (total), `open`, `max_open` (most at once), `auth_failures`.
    pub fn stats(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("stats.json")).expect("stats"))
            .expect("stats JSON")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM files in `dir`:
/// `(certificate, key)`.
pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("certificate generated");
    let cert = dir.join("relay-cert.pem");
    let key = dir.join("relay-key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("certificate written");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key written");
    (cert, key)
}
