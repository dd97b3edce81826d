use super::*;
use std::time::Duration;

#[test]
fn debug_and_display_redact_the_password() {
    let s = SmtpSettings::new("smtp://relay-user:hunter2@mail.example.com:587").unwrap();
    let cfg = NotifyConfig::smtp(s);
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("smtp://relay-user:***@mail.example.com:587"),
        "{debug}"
    );
    assert_eq!(
        cfg.smtp.as_ref().unwrap().url.to_string(),
        "smtp://relay-user:***@mail.example.com:587"
    );
}

#[test]
fn from_env_reads_smtp_settings_and_never_echoes_the_password() {
    // One test touches these variables, so tests in parallel do not race on them.
    let set = |k: &str, v: &str| std::env::set_var(k, v);
    set("MAILER", "smtp");
    set("SMTP_URL", "smtp://u:hunter2@relay.example.com?tls=bogus");
    let err = NotifyConfig::from_env().unwrap_err().to_string();
    assert!(err.contains("SMTP_URL") && !err.contains("hunter2"), "{err}");

    set("SMTP_URL", "smtp://u:hunter2@relay.example.com");
    set("SMTP_TIMEOUT", "10s");
    set("SMTP_MAX_SESSIONS", "2");
    let cfg = NotifyConfig::from_env().unwrap();
    let smtp = cfg.smtp.as_ref().unwrap();
    assert_eq!((smtp.timeout, smtp.max_sessions), (Duration::from_secs(10), 2));

    set("SMTP_TIMEOUT", "1m");
    let err = NotifyConfig::from_env().unwrap_err().to_string();
    assert!(err.contains("DELIVERY_LEASE"), "{err}");
    set("SMTP_TIMEOUT", "10s");

    set("SMTP_MAX_SESSIONS", "0");
    let err = NotifyConfig::from_env().unwrap_err().to_string();
    assert!(err.contains("SMTP_MAX_SESSIONS"), "{err}");
    set("SMTP_MAX_SESSIONS", "2");

    set("APP_URL", "javascript:alert(1)");
    let err = NotifyConfig::from_env().unwrap_err().to_string();
    assert!(err.contains("APP_URL"), "{err}");
    std::env::remove_var("APP_URL");

    std::env::remove_var("SMTP_URL");
    let err = NotifyConfig::from_env().unwrap_err().to_string();
    assert!(err.contains("SMTP_URL is not set"), "{err}");

    for k in ["MAILER", "SMTP_TIMEOUT", "SMTP_MAX_SESSIONS"] {
        std::env::remove_var(k);
    }
    assert_eq!(NotifyConfig::from_env().unwrap().mailer, MailerKind::File);
}
