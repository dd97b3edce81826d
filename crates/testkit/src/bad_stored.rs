//! The bad-input table's rows for stored data: `channel_endpoints` rows, `reminders.channels`
//! values and `user_preferences` rows a todo app can write, and what each must come to (`data/bad_requests.json`,
//! `endpoints` and `channels`, explained at `stored_about`). Like [`crate::bad_requests`], this
//! module only reads the rows and fills in their placeholders; the notify test
//! (`functions/notify/tests/all/bad_stored.rs`) writes them and checks the effects.

use serde::Deserialize;

/// How many endpoint rows and channels values the table holds: a row lost from the file fails
/// the tests instead of silently checking less.
pub const BAD_ENDPOINTS: usize = 40;
pub const BAD_CHANNELS: usize = 10;
pub const BAD_PREFERENCES: usize = 27;

/// What the placeholders of the endpoint rows stand for: the test's receiver.
pub struct Placeholders<'a> {
    /// The URL of a signed webhook at the receiver.
    pub hook: &'a str,
    /// The receiver's port on 127.0.0.1.
    pub port: u16,
    /// A valid signing secret (`whsec_…`).
    pub secret: &'a str,
    /// A subscription's push-service URL and keys.
    pub push: &'a str,
    pub p256dh: &'a str,
    pub auth: &'a str,
}

/// One `channel_endpoints` row as the todo app would write it (`None`: the column left out;
/// `format` then takes its default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEndpoint {
    pub channel: String,
    pub target: Option<String>,
    pub format: Option<String>,
    pub secret: Option<String>,
    pub p256dh: Option<String>,
    pub auth: Option<String>,
}

/// What an endpoint row must come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The database refuses the row with an error containing this (lower case).
    Refused(String),
    /// The row is stored; its delivery is recorded failed with a detail containing this
    /// (lower case) and nothing reaches the receiver.
    Failed(String),
}

/// One bad endpoint row.
#[derive(Debug, Clone)]
pub struct BadEndpoint {
    pub name: String,
    /// notify runs as in production (`WEBHOOK_ALLOW_PRIVATE=false`).
    pub strict: bool,
    pub endpoint: StoredEndpoint,
    pub expect: Expect,
}

/// One bad `reminders.channels` value and what it must come to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadChannels {
    pub name: String,
    pub channels: String,
    /// The user has no endpoint at all (else one valid signed webhook).
    #[serde(default)]
    pub no_endpoints: bool,
    /// The answer's outcome word (`sent`, `skipped`).
    pub outcome: String,
    /// E-mails and webhook requests that must arrive.
    pub mails: usize,
    pub webhooks: usize,
    /// Text the answer's reason or notes must contain.
    pub says: Option<String>,
    /// Stored text the answer must not quote (an unknown channel's name goes to the log).
    #[serde(default)]
    pub never_says: Option<String>,
}

/// One `user_preferences` row and what it must come to (`preferences_about` in the table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadPreferences {
    pub name: String,
    /// The columns that differ from the table's defaults (`null`: left NULL).
    pub prefs: serde_json::Map<String, serde_json::Value>,
    /// The reminder is marked urgent.
    #[serde(default)]
    pub urgent: bool,
    /// Both databases refuse the row, with an error containing this (lower case).
    pub refused: Option<String>,
    /// PostgreSQL refuses the row with an error containing this; SQLite stores it.
    pub refused_on_postgres: Option<String>,
    /// Where the row is stored: the answer's outcome and the e-mails that arrive.
    pub outcome: Option<String>,
    #[serde(default)]
    pub mails: usize,
    /// Text the answer's reason or notes must contain.
    pub says: Option<String>,
}

impl BadPreferences {
    /// The row's columns: the table's defaults, then the row's own values.
    pub fn columns(&self) -> Vec<(String, Option<String>)> {
        let mut columns: Vec<(String, Option<String>)> = [
            ("quiet_start", "00:00"),
            ("quiet_end", "23:59:59"),
            ("quiet_days", "mon,tue,wed,thu,fri,sat,sun"),
            ("locale", "de-DE"),
            ("channels", "email"),
        ]
        .into_iter()
        .map(|(c, v)| (c.to_owned(), Some(v.to_owned())))
        .chain([("agenda_at".to_owned(), None)])
        .collect();
        for (column, value) in &self.prefs {
            let slot = columns.iter_mut().find(|(c, _)| c == column);
            let slot = slot.unwrap_or_else(|| panic!("{}: no column {column}", self.name));
            slot.1 = value.as_str().map(str::to_owned);
        }
        columns
    }
}

#[derive(Deserialize)]
struct Table {
    endpoints: Vec<EndpointRow>,
    channels: Vec<BadChannels>,
    preferences: Vec<BadPreferences>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointRow {
    name: String,
    #[serde(default)]
    strict: bool,
    endpoint: StoredEndpoint,
    refused: Option<String>,
    failed: Option<String>,
}

fn table() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/bad_requests.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The endpoint rows, placeholders filled in from `p`.
pub fn bad_endpoints(p: &Placeholders<'_>) -> Vec<BadEndpoint> {
    let fill = |s: Option<String>| {
        s.map(|s| {
            s.replace("{hook}", p.hook)
                .replace("{host_port}", &format!("127.0.0.1:{}", p.port))
                .replace("{port}", &p.port.to_string())
                .replace("{secret}", p.secret)
                .replace("{push}", p.push)
                .replace("{p256dh}", p.p256dh)
                .replace("{auth}", p.auth)
        })
    };
    let rows: Vec<BadEndpoint> = table()
        .endpoints
        .into_iter()
        .map(|row| {
            let expect = match (row.refused, row.failed) {
                (Some(text), None) => Expect::Refused(text),
                (None, Some(text)) => Expect::Failed(text),
                _ => panic!("{}: a row is either refused or failed", row.name),
            };
            let e = row.endpoint;
            BadEndpoint {
                name: row.name,
                strict: row.strict,
                endpoint: StoredEndpoint {
                    channel: e.channel,
                    target: fill(e.target),
                    format: e.format,
                    secret: fill(e.secret),
                    p256dh: fill(e.p256dh),
                    auth: fill(e.auth),
                },
                expect,
            }
        })
        .collect();
    assert_eq!(
        rows.len(),
        BAD_ENDPOINTS,
        "bad_requests.json: the number of endpoint rows changed"
    );
    rows
}

/// The `reminders.channels` values.
pub fn bad_channels() -> Vec<BadChannels> {
    let rows = table().channels;
    assert_eq!(
        rows.len(),
        BAD_CHANNELS,
        "bad_requests.json: the number of channels rows changed"
    );
    rows
}

/// The `user_preferences` rows.
pub fn bad_preferences() -> Vec<BadPreferences> {
    let rows = table().preferences;
    assert_eq!(
        rows.len(),
        BAD_PREFERENCES,
        "bad_requests.json: the number of preferences rows changed"
    );
    rows
}
