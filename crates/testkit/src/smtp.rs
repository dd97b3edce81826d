//! A real SMTP server for tests and benchmarks: `peers/smtp_server.py` (aiosmtpd) in the test
//! virtualenv, on a free loopback port, storing what it accepts in a directory. Its behaviour
//! can be changed while it runs ([`SmtpServer::command`]), e.g. a burst of `451` replies.
//! Stopped on drop.

use crate::peer::Peer;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the server behaves from its start.
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
    /// Before `dir`: fields drop in order, so the process is gone before its directory.
    peer: Peer,
    dir: tempfile::TempDir,
}

/// The script, for documentation and hand use.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/smtp_server.py")
}

impl SmtpServer {
    /// Starts the server with its files in a new temporary directory.
    pub fn start(options: &Options) -> Self {
        Self::start_in(options, tempfile::tempdir().expect("temp dir"))
    }

    /// Starts the server with its files in `dir`.
    pub fn start_in(options: &Options, dir: tempfile::TempDir) -> Self {
        let mut cmd = Command::new(crate::python());
        cmd.arg(script()).arg("--dir").arg(dir.path());
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
        let peer = Peer::start(cmd, "the test SMTP server");
        Self {
            port: peer.port,
            peer,
            dir,
        }
    }

    /// Where the server writes its messages and `stats.json`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends a command (e.g. `reply rcpt:*:200=451 4.3.0 Try again later`) and waits until it
    /// is in force. Panics with the server's reason when it is refused.
    pub fn command(&mut self, line: &str) {
        self.peer.command(line);
    }

    /// How many messages (copies) were accepted so far, without reading them.
    pub fn accepted(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .expect("server dir")
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("msg-") && name.ends_with(".json")
                })
            })
            .count()
    }

    /// Copies accepted so far per Message-ID (a message without one counts under
    /// `(no Message-ID: <file>)`): what "sent once" is checked against.
    pub fn copies(&self) -> std::collections::HashMap<String, u32> {
        self.count_by_message_id(|_| true)
    }

    /// Copies per Message-ID whose `250` found the client gone (it died, or gave up waiting):
    /// delivered without the sender knowing, the one case in which a careful sender may send
    /// a message again (RFC 5321 section 6.1's duplicate problem). A copy still waiting for
    /// its answer does not count.
    pub fn unanswered(&self) -> std::collections::HashMap<String, u32> {
        self.count_by_message_id(|meta| meta["answered"] == Value::Bool(false))
    }

    fn count_by_message_id(&self, counts: impl Fn(&Value) -> bool) -> std::collections::HashMap<String, u32> {
        let mut copies = std::collections::HashMap::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("server dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|x| x != "eml") {
                continue;
            }
            let meta = std::fs::read(path.with_extension("json"))
                .ok()
                .and_then(|m| serde_json::from_slice::<Value>(&m).ok())
                .unwrap_or(Value::Null);
            if counts(&meta) {
                *copies.entry(message_id_of(&path)).or_insert(0) += 1;
            }
        }
        copies
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

    /// `sessions` (total), `open`, `max_open` (most at once), `auth_failures`, `rejected`
    /// (replies given by rules).
    pub fn stats(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("stats.json")).expect("stats"))
            .expect("stats JSON")
    }
}

/// The Message-ID header of a stored message, or `(no Message-ID: <file>)`.
fn message_id_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("message file");
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| format!("(no Message-ID: {})", path.display()))
}
