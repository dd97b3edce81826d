//! The test virtualenv (`target/test-python`): the Python that runs the tests' independent
//! peers (the SMTP server, the webhook and push receiver, the Kafka broker's helper, a
//! reference recurrence implementation).
//!
//! Its own module because making it is a small protocol of its own (a lock directory, a
//! marker per requirements list, a clean retry after a half-made one) that several modules
//! ([`crate::require`], [`crate::smtp`], [`crate::webhook`], [`crate::kafka`]) rely on.

/// The Python interpreter of the test virtualenv (`target/test-python`), created on first use
/// with `.ci/python-requirements.txt`. Tests use it to run independent peers (an SMTP server,
/// a reference recurrence implementation). Panics with the reason when it cannot be made;
/// tests ask [`crate::require::python`] first, which skips them with a message instead (outside CI).
pub fn python() -> std::path::PathBuf {
    make_python().unwrap_or_else(|e| panic!("the test Python environment could not be created: {e}"))
}

/// Makes the test virtualenv unless it is ready: ready means the marker of the current
/// requirements is there and its interpreter runs. Anything else (no marker: a creation that
/// failed half-way, e.g. Debian's `venv` without `ensurepip`, which leaves an interpreter
/// without pip; requirements that changed; an interpreter whose system Python is gone) is
/// removed and made again, never reused. Failures carry the output of the failing command,
/// standard output included: Debian prints its `apt install python3-venv` hint there.
pub(crate) fn make_python() -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target/test-python");
    let python = venv.join("bin/python");
    let requirements = std::fs::read(root.join(".ci/python-requirements.txt")).expect("requirements file");
    // The marker names the requirements it was made from: a changed list installs again.
    let ready = venv.join(format!(".ready-{:016x}", fnv1a(&requirements)));
    // `exists` follows the interpreter's symlink: false when its system Python is gone.
    let is_ready = || ready.exists() && python.exists();
    if is_ready() {
        return Ok(python);
    }
    // One creator at a time: `mkdir` is atomic; others wait for the marker.
    let lock = root.join("target/test-python.lock");
    std::fs::create_dir_all(root.join("target")).expect("target dir");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        if is_ready() {
            return Ok(python);
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("timed out waiting for {}", lock.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let result = (|| -> Result<(), String> {
        if is_ready() {
            return Ok(());
        }
        let run = |cmd: &mut std::process::Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                return Ok(());
            }
            let said = [&out.stdout, &out.stderr]
                .iter()
                .map(|o| String::from_utf8_lossy(o).trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            Err(format!("{cmd:?} failed ({}): {said}", out.status))
        };
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .map_err(|e| format!("removing the unfinished {}: {e}", venv.display()))?;
        }
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv))?;
        run(std::process::Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(root.join(".ci/python-requirements.txt")))?;
        std::fs::write(&ready, "").map_err(|e| e.to_string())
    })();
    let _ = std::fs::remove_dir(&lock);
    result.map(|()| python)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}
