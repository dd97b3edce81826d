//! The channel settings as an operator meets them: the real `notify` binary started with a bad
//! value stops at once with exit status 2 and one line naming the variable, and never prints
//! a VAPID key, good or bad; `notify vapid-keys` prints a pair that notify accepts.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `notify` (HTTP mode, SQLite, file mailer) with `env`, in a directory of its own; a start
/// that does not end within 20 s is a failure (the value was accepted).
fn start(env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notify"));
    cmd.current_dir(dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("t.db").display()),
        )
        .env("PORT", "0")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "WEBHOOK_ALLOW_PRIVATE",
        "WEBHOOK_ALLOWED_PORTS",
        "WEBHOOK_DENY_CIDRS",
        "WEBHOOK_TIMEOUT",
        "PUSH_TTL",
        "VAPID_PRIVATE_KEY",
        "VAPID_SUBJECT",
        "DELIVERY_LEASE",
        "CHANNEL_RETRY_FIRST",
        "CHANNEL_RETRY_ATTEMPTS",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "notify started with {env:?}: {:?}",
                child.wait_with_output().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A fresh key pair from `notify vapid-keys`: (private, public).
fn vapid_keys() -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_notify"))
        .arg("vapid-keys")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_owned()
    };
    (value("VAPID_PRIVATE_KEY="), value("VAPID_PUBLIC_KEY="))
}

#[test]
fn vapid_keys_prints_a_p256_pair_in_base64url() {
    let (private, public) = vapid_keys();
    // 32-byte scalar and 65-byte uncompressed point, unpadded base64url (RFC 8292 §3.2).
    assert_eq!(private.len(), 43, "{private}");
    assert_eq!(public.len(), 87, "{public}");
    assert!(public.starts_with('B'), "uncompressed point (0x04): {public}");
    for key in [&private, &public] {
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{key}"
        );
    }
    assert_ne!(vapid_keys().0, private, "a new pair each time");
}

/// Each case's start stops with exit 2 and one line naming its variable, and never shows the
/// value of `secret` (a key, a token).
fn stops_naming_and_hiding(cases: &[(&str, &[(&str, &str)])], secret: &str) {
    for (named, env) in cases {
        let out = start(env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.contains(named), "{env:?} names {named}: {stderr}");
        for (var, value) in env.iter() {
            if *var == secret {
                assert!(
                    !stderr.contains(value),
                    "{env:?}: the value of {secret} is shown: {stderr}"
                );
            }
        }
    }
}

#[test]
fn bad_channel_settings_stop_the_start_with_one_line_naming_the_variable() {
    let (key, _) = vapid_keys();
    let subject = "mailto:ops@todo-events.test";
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("WEBHOOK_ALLOW_PRIVATE", &[("WEBHOOK_ALLOW_PRIVATE", "maybe")]),
        ("WEBHOOK_ALLOWED_PORTS", &[("WEBHOOK_ALLOWED_PORTS", "https")]),
        ("WEBHOOK_ALLOWED_PORTS", &[("WEBHOOK_ALLOWED_PORTS", "0")]),
        ("WEBHOOK_ALLOWED_PORTS", &[("WEBHOOK_ALLOWED_PORTS", "443,70000")]),
        ("WEBHOOK_ALLOWED_PORTS", &[("WEBHOOK_ALLOWED_PORTS", "443,")]),
        ("WEBHOOK_DENY_CIDRS", &[("WEBHOOK_DENY_CIDRS", "10.96.0.0/33")]),
        ("WEBHOOK_DENY_CIDRS", &[("WEBHOOK_DENY_CIDRS", "pods")]),
        (
            "WEBHOOK_DENY_CIDRS",
            &[("WEBHOOK_DENY_CIDRS", "10.96.0.0/12;fd00::/8")],
        ),
        ("WEBHOOK_DENY_CIDRS", &[("WEBHOOK_DENY_CIDRS", "10.96.0.0/12,")]),
        ("WEBHOOK_TIMEOUT", &[("WEBHOOK_TIMEOUT", "soon")]),
        ("WEBHOOK_TIMEOUT", &[("WEBHOOK_TIMEOUT", "0s")]),
        ("WEBHOOK_TIMEOUT", &[("WEBHOOK_TIMEOUT", "-5s")]),
        // The claim must outlive two requests: 2 × 90 s > DELIVERY_LEASE's 2 m.
        ("WEBHOOK_TIMEOUT", &[("WEBHOOK_TIMEOUT", "90s")]),
        (
            "WEBHOOK_TIMEOUT",
            &[("WEBHOOK_TIMEOUT", "10s"), ("DELIVERY_LEASE", "15s")],
        ),
        ("PUSH_TTL", &[("PUSH_TTL", "40d")]),
        ("PUSH_TTL", &[("PUSH_TTL", "an hour")]),
        ("CHANNEL_RETRY_FIRST", &[("CHANNEL_RETRY_FIRST", "0s")]),
        ("CHANNEL_RETRY_FIRST", &[("CHANNEL_RETRY_FIRST", "2h")]),
        ("CHANNEL_RETRY_FIRST", &[("CHANNEL_RETRY_FIRST", "soon")]),
        ("CHANNEL_RETRY_ATTEMPTS", &[("CHANNEL_RETRY_ATTEMPTS", "0")]),
        ("CHANNEL_RETRY_ATTEMPTS", &[("CHANNEL_RETRY_ATTEMPTS", "51")]),
        ("CHANNEL_RETRY_ATTEMPTS", &[("CHANNEL_RETRY_ATTEMPTS", "many")]),
        (
            "VAPID_PRIVATE_KEY",
            &[("VAPID_PRIVATE_KEY", "not-a-key"), ("VAPID_SUBJECT", subject)],
        ),
        // Base64url of the right length, but not a scalar below the curve's order.
        (
            "VAPID_PRIVATE_KEY",
            &[
                ("VAPID_PRIVATE_KEY", "__________________________________________8"),
                ("VAPID_SUBJECT", subject),
            ],
        ),
        ("VAPID_PRIVATE_KEY", &[("VAPID_SUBJECT", subject)]),
        ("VAPID_SUBJECT", &[("VAPID_PRIVATE_KEY", &key)]),
        (
            "VAPID_SUBJECT",
            &[
                ("VAPID_PRIVATE_KEY", &key),
                ("VAPID_SUBJECT", "ops@todo-events.test"),
            ],
        ),
    ];
    stops_naming_and_hiding(cases, "VAPID_PRIVATE_KEY");
    println!("{} bad channel settings checked", cases.len());
    assert_eq!(cases.len(), 27);
}

#[test]
fn bad_http_bounds_stop_the_start_with_one_line_naming_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("BODY_TIMEOUT", "soon"),
        ("BODY_TIMEOUT", "0s"),
        ("BODY_TIMEOUT", "50ms"),
        ("BODY_TIMEOUT", "10m"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS", "many"),
        ("MAX_CONNECTIONS", "25001"),
        ("CLOCK_SKEW_TOLERANCE", "2m"),
        ("CLOCK_SKEW_TOLERANCE", "soon"),
        ("CLOCK_SKEW_TOLERANCE", "10"),
    ];
    for (var, value) in cases {
        let out = start(&[(var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value} names {var}: {stderr}");
    }
    println!("{} bad HTTP bounds checked", cases.len());
    assert_eq!(cases.len(), 10);
}

#[test]
fn bad_authentication_settings_stop_the_start_and_never_show_the_token() {
    let subject = "system:serviceaccount:todo-events:reminders-oidc-sources.knative.dev-kafkasource";
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("AUTH_TOKEN", &[("AUTH_TOKEN", "short-secret-value")]),
        (
            "AUTH_TOKEN",
            &[("AUTH_TOKEN", "0123456789abcdef 0123456789abcdef-secret")],
        ),
        (
            "OIDC_ALLOWED_SUBJECTS",
            &[("OIDC_AUDIENCE", "todo-events/notify")],
        ),
        (
            "OIDC_ALLOWED_SUBJECTS",
            &[
                ("OIDC_AUDIENCE", "todo-events/notify"),
                ("OIDC_ALLOWED_SUBJECTS", " , "),
            ],
        ),
        ("OIDC_AUDIENCE", &[("OIDC_ALLOWED_SUBJECTS", subject)]),
        (
            "OIDC_AUDIENCE",
            &[("OIDC_DISCOVERY_URL", "https://kubernetes.default.svc")],
        ),
        (
            "OIDC_DISCOVERY_URL",
            &[
                ("OIDC_AUDIENCE", "todo-events/notify"),
                ("OIDC_ALLOWED_SUBJECTS", subject),
                ("OIDC_DISCOVERY_URL", "http://kubernetes.default.svc"),
            ],
        ),
        (
            "OIDC_DISCOVERY_URL",
            &[
                ("OIDC_AUDIENCE", "todo-events/notify"),
                ("OIDC_ALLOWED_SUBJECTS", subject),
                ("OIDC_DISCOVERY_URL", "not a url"),
            ],
        ),
        (
            "OIDC_TOKEN_FILE",
            &[
                ("OIDC_AUDIENCE", "todo-events/notify"),
                ("OIDC_ALLOWED_SUBJECTS", subject),
                ("OIDC_TOKEN_FILE", "/nonexistent/token"),
            ],
        ),
        (
            "OIDC_CA_FILE",
            &[
                ("OIDC_AUDIENCE", "todo-events/notify"),
                ("OIDC_ALLOWED_SUBJECTS", subject),
                ("OIDC_CA_FILE", "/nonexistent/ca.crt"),
            ],
        ),
        ("LISTEN_ADDRESS", &[("LISTEN_ADDRESS", "everywhere")]),
    ];
    stops_naming_and_hiding(cases, "AUTH_TOKEN");
    println!("{} bad authentication settings checked", cases.len());
    assert_eq!(cases.len(), 11);
}

/// notify (HTTP mode) with `env` until it logs that it listens for events, then stopped: its
/// log lines so far.
fn start_log(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_notify"))
        .current_dir(dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("t.db").display()),
        )
        .env("RUN_MIGRATIONS", "true")
        .env("PORT", "0")
        .env("NO_COLOR", "1")
        .env("LOG_FORMAT", "text")
        .env_remove("LISTEN_ADDRESS")
        .env_remove("AUTH_TOKEN")
        .env_remove("OIDC_AUDIENCE")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = todo_events_testkit::output_lines(&mut child);
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains("listening for events") && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push_str(&line);
            log.push('\n');
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("listening for events"), "{env:?}: {log}");
    log
}

#[test]
fn a_function_listening_beyond_loopback_without_authentication_says_so_at_start() {
    let warning = "no authentication: anyone who reaches this port can post events";
    // The default: loopback, open, silent.
    assert!(!start_log(&[]).contains(warning));
    // Everywhere, open: said.
    assert!(start_log(&[("LISTEN_ADDRESS", "0.0.0.0")]).contains(warning));
    // Everywhere, with a shared token: silent.
    let token = [
        ("LISTEN_ADDRESS", "0.0.0.0"),
        ("AUTH_TOKEN", "0123456789abcdef0123456789abcdef"),
    ];
    let log = start_log(&token);
    assert!(!log.contains(warning), "{log}");
    assert!(!log.contains("0123456789abcdef0123456789abcdef"), "{log}");
}
