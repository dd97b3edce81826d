//! Slow and abusive HTTP clients, for the tests and the benchmark that bound a function's
//! memory under them (functions/notify/tests/all/slow_clients.rs, `bench --only slow`): many
//! connections, each sending the headers of a `POST /` with a large `content-length` and then
//! its body a few bytes at a time, as a slowloris client does. Each connection keeps sending
//! until the server answers or closes it, or until [`SlowClients::close`]; the status of each
//! answer is counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How the clients behave.
#[derive(Debug, Clone)]
pub struct Slow {
    /// Connections opened.
    pub connections: usize,
    /// The `content-length` each announces (and would send, given time).
    pub body_bytes: usize,
    /// Bytes sent per tick, and how long between ticks.
    pub chunk: usize,
    pub every: Duration,
}

/// What happened to the connections so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Answers by status code.
    pub answers: BTreeMap<u16, usize>,
    /// Connections the server closed (or reset) without an answer.
    pub closed: usize,
    /// Connections that could not be opened (refused, or not accepted in 10 s).
    pub not_connected: usize,
    /// Connections open and still sending.
    pub open: usize,
}

/// Running slow clients; closed when dropped.
pub struct SlowClients {
    tally: Arc<Mutex<Tally>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SlowClients {
    /// Opens `slow.connections` connections to `address` (`host:port`), each with its own
    /// task, and starts trickling.
    pub async fn start(address: &str, slow: &Slow) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = CancellationToken::new();
        let mut tasks = Vec::with_capacity(slow.connections);
        for _ in 0..slow.connections {
            tasks.push(tokio::spawn(one(
                address.to_owned(),
                slow.clone(),
                tally.clone(),
                stop.clone(),
            )));
        }
        Self { tally, stop, tasks }
    }

    pub fn tally(&self) -> Tally {
        self.tally.lock().expect("not poisoned").clone()
    }

    /// Closes every connection still open and waits for the tasks.
    pub async fn close(mut self) -> Tally {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.tally()
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn one(address: String, slow: Slow, tally: Arc<Mutex<Tally>>, stop: CancellationToken) {
    let count = |f: &dyn Fn(&mut Tally)| f(&mut tally.lock().expect("not poisoned"));
    let connected = tokio::select! {
        c = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&address)) => c,
        _ = stop.cancelled() => return,
    };
    let Ok(Ok(stream)) = connected else {
        count(&|t| t.not_connected += 1);
        return;
    };
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {address}\r\nce-specversion: 1.0\r\nce-id: slow\r\n\
         ce-source: /slow\r\nce-type: dev.todo.reminder.due\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        slow.body_bytes
    );
    if write.write_all(head.as_bytes()).await.is_err() {
        count(&|t| t.closed += 1);
        return;
    }
    count(&|t| t.open += 1);
    let trickle = async {
        let chunk = vec![b' '; slow.chunk.max(1)];
        let mut sent = 0;
        while sent < slow.body_bytes {
            tokio::time::sleep(slow.every).await;
            let n = chunk.len().min(slow.body_bytes - sent);
            if write.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        // All sent: wait for the answer.
        std::future::pending::<()>().await;
    };
    let answer = async {
        let mut head = [0u8; 12];
        match read.read_exact(&mut head).await {
            Ok(_) => std::str::from_utf8(&head[9..12])
                .ok()
                .and_then(|s| s.parse::<u16>().ok()),
            Err(_) => None,
        }
    };
    tokio::select! {
        status = answer => {
            count(&|t| {
                t.open -= 1;
                match status {
                    Some(s) => *t.answers.entry(s).or_default() += 1,
                    None => t.closed += 1,
                }
            });
        }
        _ = trickle => {}
        _ = stop.cancelled() => count(&|t| t.open -= 1),
    }
}
