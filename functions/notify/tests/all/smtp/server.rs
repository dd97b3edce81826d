//! The tests' SMTP server lives in the test kit (`todo_events_testkit::smtp`); what only
//! notify's TLS tests need is here.

use std::path::{Path, PathBuf};
pub use todo_events_testkit::smtp::{Options, SmtpServer};

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
