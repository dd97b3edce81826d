//! The test virtualenv (`target/test-python`): the Python that runs the tests' independent
//! peers (the SMTP server, the webhook and push receiver, the Kafka broker's helper, a
//! reference recurrence implementation).
//!
//! Its own module because several modules ([`crate::require`], [`crate::smtp`],
//! [`crate::webhook`], [`crate::kafka`]) rely on it. Making it is a small protocol of its own
//! (a lock directory, a marker per requirements list, a clean retry after a half-made one),
//! written once, in `.ci/test-python`: `.ci/run` starts it before its build.

/// The Python interpreter of the test virtualenv (`target/test-python`), created on first use
/// with `.ci/python-requirements.txt`. Tests use it to run independent peers (an SMTP server,
/// a reference recurrence implementation). Panics with the reason when it cannot be made;
/// tests ask [`crate::require::python`] first, which skips them with a message instead (outside CI).
pub fn python() -> std::path::PathBuf {
    make_python().unwrap_or_else(|e| panic!("the test Python environment could not be created: {e}"))
}

/// Makes the test virtualenv unless it is ready, through `.ci/test-python` (which says what
/// "ready" means, and which `.ci/run` starts before its build so that the tests find it made);
/// once per process. Failures carry the script's account of the failing command.
pub(crate) fn make_python() -> Result<std::path::PathBuf, String> {
    static MADE: std::sync::OnceLock<Result<std::path::PathBuf, String>> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = root.join(".ci/test-python");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .output()
            .map_err(|e| format!("python3 {}: {e}", script.display()))?;
        let said = |o: &[u8]| String::from_utf8_lossy(o).trim().to_owned();
        if out.status.success() {
            Ok(std::path::PathBuf::from(said(&out.stdout)))
        } else {
            Err(format!(
                "{} failed ({}): {}",
                script.display(),
                out.status,
                said(&out.stderr)
            ))
        }
    })
    .clone()
}
