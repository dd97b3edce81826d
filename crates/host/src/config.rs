//! Settings from environment variables. A missing or malformed setting is one clear line
//! naming the variable, and start-up stops there.
//!
//! Every variable a program reads goes through this module, so that what a binary reads is
//! something it can say: with `TODO_EVENTS_ENV_TRACE=<file>` each lookup appends one JSON line
//! to that file (`{"name", "default", "required"}`: the default a value falls back to, the
//! message a missing required one gets). The manifest checks (tests/system/manifests.rs) run the
//! binaries so to learn the variables they really read; nothing else sets it.

use secrecy::SecretString;
use std::fmt::{Debug, Display};
use std::str::FromStr;

/// A configuration mistake, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Appends the lookup of `name` to the trace file, when one is set.
fn trace(name: &str, default: Option<String>, required: Option<&str>) {
    use std::io::Write;
    static TRACE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(path) = TRACE.get_or_init(|| std::env::var_os("TODO_EVENTS_ENV_TRACE").map(Into::into)) else {
        return;
    };
    let line = serde_json::json!({"name": name, "default": default, "required": required}).to_string() + "\n";
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Reads `name`, falling back to `default` when unset or empty.
pub fn var_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr + Debug,
    T::Err: Display,
{
    trace(name, Some(format!("{default:?}")), None);
    Ok(parse::<T>(name)?.unwrap_or(default))
}

/// Reads `name` if set (and not empty).
pub fn var<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    trace(name, None, None);
    parse(name)
}

fn parse<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|e| ConfigError(format!("{name}={v:?} is invalid: {e}"))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError(format!("{name} is not valid UTF-8"))),
    }
}

/// Reads `name`, which must be set; `what` says why, after "`name` is not set: ".
pub fn required<T>(name: &str, what: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    let missing = format!("{name} is not set: {what}");
    trace(name, None, Some(&missing));
    parse::<T>(name)?.ok_or(ConfigError(missing))
}

/// Reads `name`, which must be set, and whose value no message may repeat (it holds a
/// password): unlike [`required`], a value is never quoted, and it is not trimmed or parsed.
/// It comes back as a [`SecretString`], whose `Debug` does not show it either.
pub fn required_secret(name: &str, what: &str) -> Result<SecretString, ConfigError> {
    let missing = format!("{name} is not set: {what}");
    trace(name, None, Some(&missing));
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ConfigError(missing)),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError(format!("{name} is not valid UTF-8"))),
    }
}

/// `SECRETS_KEYS`: the keys that seal the endpoints' secrets at rest (notify opens them, the
/// scheduler and `todo-events migrate` seal plain ones; `todo_events_store::sealed`). Unset:
/// none. Read like [`required_secret`]: no message quotes it.
pub fn secrets_keys() -> Result<todo_events_store::sealed::Keys, ConfigError> {
    trace("SECRETS_KEYS", None, None);
    match std::env::var("SECRETS_KEYS") {
        Ok(v) if !v.trim().is_empty() => {
            todo_events_store::sealed::Keys::parse(&v).map_err(|e| ConfigError(e.to_string()))
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Default::default()),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError("SECRETS_KEYS is not valid UTF-8".into())),
    }
}

/// `std::env::var(name)` as it is, for readers with rules of their own (logging, trace
/// export, the host name): traced like every other lookup.
pub fn env_var(name: &str) -> Result<String, std::env::VarError> {
    trace(name, None, None);
    std::env::var(name)
}

/// A boolean in the usual spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Flag(true)),
            "0" | "false" | "no" | "off" => Ok(Flag(false)),
            _ => Err("expected true or false".into()),
        }
    }
}

/// How far ahead of its due time (`remind_at`, `occurrence_at`) an event may arrive and still
/// be acted on: the clock skew allowed between the scheduler's clock and the function's.
/// `CLOCK_SKEW_TOLERANCE`, default 10 s, at most 60 s.
///
/// Why a bound at all: the scheduler publishes an item only once it is due by its own clock,
/// so an event much earlier than that is not the scheduler's (or a clock is badly off). notify
/// and recur answer it `skipped` and leave the item as it is, so the scheduler still delivers
/// it on time; acting on it would send the reminder early and then never at its time.
pub fn clock_skew_tolerance() -> Result<chrono::Duration, ConfigError> {
    const MAX: std::time::Duration = std::time::Duration::from_secs(60);
    let default = DEFAULT_CLOCK_SKEW_TOLERANCE.to_std().unwrap_or_default();
    let tolerance = var_or("CLOCK_SKEW_TOLERANCE", todo_events_domain::HumanDuration(default))?.0;
    if tolerance > MAX {
        return Err(ConfigError(format!(
            "CLOCK_SKEW_TOLERANCE={} is too long: at most 60s (an event earlier than that is not \
             the scheduler's)",
            todo_events_domain::HumanDuration(tolerance)
        )));
    }
    chrono::Duration::from_std(tolerance).map_err(|e| ConfigError(format!("CLOCK_SKEW_TOLERANCE: {e}")))
}

/// [`clock_skew_tolerance`]'s default.
pub const DEFAULT_CLOCK_SKEW_TOLERANCE: chrono::Duration = chrono::Duration::seconds(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_values_name_the_variable() {
        std::env::set_var("TODO_EVENTS_TEST_PORT", "eighty");
        let err = var_or::<u16>("TODO_EVENTS_TEST_PORT", 8080).unwrap_err();
        assert!(
            err.to_string().contains("TODO_EVENTS_TEST_PORT=\"eighty\""),
            "{err}"
        );
        std::env::set_var("TODO_EVENTS_TEST_PORT", "");
        assert_eq!(var_or::<u16>("TODO_EVENTS_TEST_PORT", 8080).unwrap(), 8080);
        let err = required::<String>("TODO_EVENTS_TEST_MISSING", "the database").unwrap_err();
        assert!(err.to_string().contains("TODO_EVENTS_TEST_MISSING is not set"));
    }
}
