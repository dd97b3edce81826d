//! Settings from environment variables. A missing or malformed setting is one clear line
//! naming the variable, and start-up stops there.

use std::fmt::Display;
use std::str::FromStr;

/// A configuration mistake, worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Reads `name`, falling back to `default` when unset or empty.
pub fn var_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(var::<T>(name)?.unwrap_or(default))
}

/// Reads `name` if set (and not empty).
pub fn var<T>(name: &str) -> Result<Option<T>, ConfigError>
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

/// Reads `name`, which must be set.
pub fn required<T>(name: &str, what: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    var::<T>(name)?.ok_or_else(|| ConfigError(format!("{name} is not set: {what}")))
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
