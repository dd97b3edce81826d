//! The hostile-caller table, events (`data/hostile_events.json`, explained at its top):
//! well-formed events that a caller other than the scheduler could send — early, for the
//! future, chained, with another owner's ids or the wrong time — and the answer each must get.
//! Like [`crate::bad_requests`], this module only reads the rows; the functions' tests
//! (`functions/notify/tests/all/hostile.rs`, `functions/recur/tests/all/hostile.rs`, and through
//! the consumers `tests/system/kafka/end_to_end.rs`) store what a row needs, send it and check that
//! nothing was sent or written.

use crate::{RecurringFixture, ReminderFixture};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use todo_events_domain::time::rfc3339;

/// How many rows the table holds for each function: a row lost from the file fails the tests
/// instead of silently checking less.
pub const HOSTILE_NOTIFY_ROWS: usize = 10;
pub const HOSTILE_RECUR_ROWS: usize = 9;

/// A signed offset as the table writes it: `2h`, `-1m`, `+400d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offset(pub Duration);

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let (sign, rest) = match text.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, text.strip_prefix('+').unwrap_or(&text)),
        };
        let std = humantime::parse_duration(rest).map_err(serde::de::Error::custom)?;
        let duration = Duration::from_std(std).map_err(serde::de::Error::custom)?;
        Ok(Offset(duration * sign))
    }
}

impl Offset {
    pub fn from(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t + self.0
    }
}

/// An id an event carries instead of the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherId {
    /// The id of another user's (or task's) row that exists.
    Other,
    /// An id no row has.
    Missing,
}

/// How a notify row's event differs from the scheduler's event for its reminder.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderEdit {
    pub remind_at: Option<Offset>,
    pub user_id: Option<OtherId>,
    pub task_id: Option<OtherId>,
    pub reminder_id: Option<OtherId>,
}

/// How a recur row's event differs from the scheduler's event for its next occurrence.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OccurrenceEdit {
    pub occurrence_at: Option<Offset>,
    pub user_id: Option<OtherId>,
    pub recurring_task_id: Option<OtherId>,
}

/// One notify row: the reminder stored (due `due_in` from now), the event sent, the answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostileReminder {
    pub name: String,
    pub due_in: Offset,
    pub event: ReminderEdit,
    pub outcome: String,
    pub early: bool,
    pub reason: String,
}

/// One recur row: a daily task in UTC whose next occurrence is `next_in` from now, the event
/// sent (and `chain` occurrences followed after it), the answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostileOccurrence {
    pub name: String,
    pub next_in: Offset,
    pub event: OccurrenceEdit,
    #[serde(default)]
    pub chain: usize,
    pub outcome: String,
    pub early: bool,
    pub reason: String,
}

/// The id an event carries for `which`: `other`'s, or one no row has.
fn id_of(which: OtherId, other: i64) -> i64 {
    match which {
        OtherId::Other => other,
        OtherId::Missing => 999_999_999,
    }
}

impl HostileReminder {
    /// The row's event data for the stored reminder `r`, borrowing `other`'s ids (another
    /// user's reminder) where the row says so.
    pub fn data(&self, r: &ReminderFixture, other: &ReminderFixture) -> Value {
        let mut data = r.data();
        let edit = &self.event;
        if let Some(offset) = edit.remind_at {
            data["remind_at"] = json!(rfc3339(offset.from(r.remind_at)));
        }
        if let Some(which) = edit.user_id {
            data["user_id"] = json!(id_of(which, other.user_id.get()));
        }
        if let Some(which) = edit.task_id {
            data["task_id"] = json!(id_of(which, other.task_id.get()));
        }
        if let Some(which) = edit.reminder_id {
            data["reminder_id"] = json!(id_of(which, other.reminder_id.get()));
        }
        data
    }
}

impl HostileOccurrence {
    /// The row's event data for the stored recurring task `rt` whose next occurrence is
    /// `next`, borrowing `other`'s ids (another user's task) where the row says so. For a
    /// chain row: the due occurrence's event, then the `chain` occurrences after it (the
    /// rule is daily), in order.
    pub fn data(&self, rt: &RecurringFixture, next: DateTime<Utc>, other: &RecurringFixture) -> Vec<Value> {
        if self.chain > 0 {
            return (0..=self.chain as i64)
                .map(|k| rt.data(next + Duration::days(k)))
                .collect();
        }
        let mut data = rt.data(next);
        let edit = &self.event;
        if let Some(offset) = edit.occurrence_at {
            data["occurrence_at"] = json!(rfc3339(offset.from(next)));
        }
        if let Some(which) = edit.user_id {
            data["user_id"] = json!(id_of(which, other.user_id.get()));
        }
        if let Some(which) = edit.recurring_task_id {
            data["recurring_task_id"] = json!(id_of(which, other.id.get()));
        }
        vec![data]
    }

    /// The DTSTART (local, UTC) of the row's daily task whose next occurrence is `next`.
    pub fn dtstart(next: DateTime<Utc>) -> String {
        (next - Duration::days(10))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }
}

#[derive(Deserialize)]
struct Table {
    notify: Vec<HostileReminder>,
    recur: Vec<HostileOccurrence>,
}

fn table() -> Table {
    let table: Table = serde_json::from_str(include_str!("../data/hostile_events.json"))
        .expect("data/hostile_events.json is well-formed");
    assert_eq!(
        table.notify.len(),
        HOSTILE_NOTIFY_ROWS,
        "notify rows of the hostile-caller table"
    );
    assert_eq!(
        table.recur.len(),
        HOSTILE_RECUR_ROWS,
        "recur rows of the hostile-caller table"
    );
    table
}

/// The table's notify rows.
pub fn reminder_rows() -> Vec<HostileReminder> {
    table().notify
}

/// The table's recur rows.
pub fn occurrence_rows() -> Vec<HostileOccurrence> {
    table().recur
}

/// How many token rows `data/bad_tokens.json` holds.
pub const BAD_TOKEN_ROWS: usize = 18;

/// One token row: the `Authorization` header a caller sends, and the answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadToken {
    pub name: String,
    /// Sent as is; absent (and no JWT asked for): no header at all.
    #[serde(default, deserialize_with = "present")]
    pub header: Option<Option<String>>,
    /// Edits of a dispatcher's claims: a value replaces the claim, `null` removes it, a
    /// string offset (`-1h`) on `exp` / `nbf` / `iat` is from now.
    #[serde(default)]
    pub claims: serde_json::Map<String, Value>,
    #[serde(default)]
    pub signer: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    pub status: u16,
    pub detail: String,
}

/// Tells a `"header": null` (no header) from a row without `header` (a JWT).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl BadToken {
    /// The row's `Authorization` header, if any, against the issuer stand-in.
    pub fn authorization(&self, issuer: &crate::oidc::Issuer) -> Option<String> {
        use crate::oidc::{unsigned, Signer};
        if let Some(header) = &self.header {
            return header.clone();
        }
        let mut claims = issuer.claims();
        for (name, value) in &self.claims {
            match value {
                Value::Null => {
                    claims.as_object_mut().unwrap().remove(name);
                }
                Value::String(offset) if ["exp", "nbf", "iat"].contains(&name.as_str()) => {
                    let offset: Offset = serde_json::from_value(json!(offset)).expect("an offset");
                    claims[name] = json!(offset.from(Utc::now()).timestamp());
                }
                other => claims[name] = other.clone(),
            }
        }
        let token = match self.alg.as_deref() {
            Some(alg) if alg != "RS256" => unsigned(alg, &claims),
            _ => {
                let signer = match self.signer.as_deref() {
                    Some("attacker") => Signer::Attacker,
                    None | Some("issuer") => Signer::Issuer,
                    Some(other) => panic!("signer {other:?}"),
                };
                issuer.sign(&claims, signer, self.kid.as_deref())
            }
        };
        Some(format!("Bearer {token}"))
    }
}

#[derive(Deserialize)]
struct Tokens {
    rows: Vec<BadToken>,
}

/// The token rows of the hostile-caller table.
pub fn token_rows() -> Vec<BadToken> {
    let tokens: Tokens = serde_json::from_str(include_str!("../data/bad_tokens.json"))
        .expect("data/bad_tokens.json is well-formed");
    assert_eq!(tokens.rows.len(), BAD_TOKEN_ROWS, "rows of data/bad_tokens.json");
    tokens.rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_rows_load_and_each_makes_its_header() {
        let issuer = crate::oidc::Issuer::start();
        let rows = token_rows();
        assert_eq!(rows[0].authorization(&issuer), None, "{}", rows[0].name);
        for row in &rows[1..] {
            assert!(row.authorization(&issuer).unwrap().contains(' '), "{}", row.name);
        }
    }

    #[test]
    fn the_table_loads_with_its_counts_and_offsets() {
        let notify = reminder_rows();
        assert_eq!(notify[0].due_in, Offset(Duration::hours(2)));
        assert_eq!(notify[3].event.remind_at, Some(Offset(Duration::days(400))));
        assert_eq!(occurrence_rows().len(), HOSTILE_RECUR_ROWS);
    }
}
