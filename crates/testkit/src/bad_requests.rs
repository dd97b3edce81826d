//! The shared bad-input table: malformed requests and the answer each must get. The table is
//! data (`data/bad_requests.json`, its placeholders explained at its top) so that what the
//! functions must reject can be read and extended without reading Rust; this module only
//! fills in the placeholders for one function and sends the requests.

use crate::TestApp;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How many cases the table holds: a case lost from the file fails the tests instead of
/// silently checking less.
pub const BAD_CASES: usize = 53;

/// One malformed request and the answer it must get.
#[derive(Debug, Clone, PartialEq)]
pub struct BadCase {
    pub name: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// The `field` the problem must name (when the status is 400); `None`: a field of the
    /// event data (`data.…`).
    pub field: Option<String>,
}

#[derive(Deserialize)]
struct Table {
    cases: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    name: String,
    headers: Headers,
    body: Body,
    status: u16,
    field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Headers {
    binary: Option<String>,
    exactly: Option<Vec<(String, String)>>,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    without: Vec<String>,
    #[serde(default)]
    append: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum Body {
    Data(DataEdit),
    Text(String),
    Bytes(Vec<u8>),
    Json(Value),
    Spaces(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DataEdit {
    #[serde(default)]
    set: Map<String, Value>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    half: bool,
}

/// What the placeholders of the table stand for, for one function.
struct Params<'a> {
    ty: &'a str,
    other_type: &'a str,
    data: &'a Map<String, Value>,
    id_key: String,
    time_key: String,
    max_body: usize,
}

impl Params<'_> {
    fn text(&self, s: &str) -> String {
        s.replace("{type}", self.ty)
            .replace("{TYPE}", &self.ty.to_uppercase())
            .replace("{other_type}", self.other_type)
            .replace("{max_body}", &self.max_body.to_string())
    }

    fn key(&self, k: &str) -> String {
        match k {
            "{id}" => self.id_key.clone(),
            "{time}" => self.time_key.clone(),
            other => other.to_owned(),
        }
    }

    fn json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) if s == "{data}" => Value::Object(self.data.clone()),
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.json(i)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), self.json(v))).collect()),
            other => other.clone(),
        }
    }

    fn headers(&self, h: Headers) -> Vec<(String, String)> {
        let pairs = |v: Vec<(String, String)>| v.into_iter().map(|(k, v)| (k, self.text(&v)));
        let base: Vec<(String, String)> = match (h.binary, h.exactly) {
            (Some(ty), None) => vec![
                ("ce-specversion".into(), "1.0".into()),
                ("ce-id".into(), "bad-1".into()),
                ("ce-source".into(), "/tests".into()),
                ("ce-type".into(), self.text(&ty)),
                ("content-type".into(), "application/json".into()),
            ],
            (None, Some(exactly)) => pairs(exactly).collect(),
            _ => panic!("bad_requests.json: headers are either binary or exactly"),
        };
        base.into_iter()
            .filter(|(k, _)| !h.without.contains(k))
            .map(|(k, v)| match h.set.get(&k) {
                Some(value) => (k, self.text(value)),
                None => (k, v),
            })
            .chain(pairs(h.append))
            .collect()
    }

    fn body(&self, b: Body) -> Vec<u8> {
        match b {
            Body::Data(edit) => {
                let mut d = self.data.clone();
                for k in &edit.remove {
                    d.remove(&self.key(k));
                }
                for (k, v) in edit.set {
                    d.insert(self.key(&k), v);
                }
                let bytes = Value::Object(d).to_string().into_bytes();
                if edit.half {
                    bytes[..bytes.len() / 2].to_vec()
                } else {
                    bytes
                }
            }
            Body::Text(t) => t.into_bytes(),
            Body::Bytes(b) => b,
            Body::Json(v) => self.json(&v).to_string().into_bytes(),
            Body::Spaces(n) => {
                let n: usize = self
                    .text(&n)
                    .split('+')
                    .map(|part| part.trim().parse::<usize>().expect("spaces: numbers and +"))
                    .sum();
                vec![b' '; n]
            }
        }
    }
}

/// The table for a function accepting `ty`, around a valid `data` object for it (with a field
/// ending in `_id` and one ending in `_at`). `other_type` is a known type the function does
/// not accept; `max_body` the largest body it accepts.
pub fn bad_cases(ty: &str, other_type: &str, data: &Value, max_body: usize) -> Vec<BadCase> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/bad_requests.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let table: Table = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let data = data.as_object().expect("data is an object");
    let key_ending = |suffix: &str| {
        data.keys()
            .find(|k| k.ends_with(suffix))
            .unwrap_or_else(|| panic!("data has a field ending in {suffix}"))
            .clone()
    };
    let params = Params {
        ty,
        other_type,
        data,
        id_key: key_ending("_id"),
        time_key: key_ending("_at"),
        max_body,
    };
    let cases: Vec<BadCase> = table
        .cases
        .into_iter()
        .map(|row| BadCase {
            name: row.name,
            headers: params.headers(row.headers),
            body: params.body(row.body),
            status: row.status,
            field: row.field,
        })
        .collect();
    assert_eq!(cases.len(), BAD_CASES, "{path}: the number of cases changed");
    cases
}

/// Sends every bad case to `app` and checks status, problem+json body and field; prints and
/// returns how many were checked.
pub async fn assert_bad_cases_rejected(app: &TestApp, cases: Vec<BadCase>) -> usize {
    let mut checked = 0;
    for case in cases {
        let mut request = app.client.post(format!("{}/", app.url)).body(case.body.clone());
        for (k, v) in &case.headers {
            request = request.header(k, v);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, case.status, "{}: status; body {body}", case.name);
        assert_eq!(
            content_type, "application/problem+json",
            "{}: content type",
            case.name
        );
        assert_eq!(body["status"], case.status, "{}: problem status", case.name);
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{}: {body}",
            case.name
        );
        if case.status == 400 {
            let field = body["field"].as_str().unwrap_or_default();
            match &case.field {
                Some(expected) => assert_eq!(field, expected, "{}: field; body {body}", case.name),
                None => assert!(
                    field.starts_with("data."),
                    "{}: field should be a data field; body {body}",
                    case.name
                ),
            }
        }
        checked += 1;
    }
    println!("{checked} bad requests rejected as the table demands");
    assert_eq!(checked, BAD_CASES, "bad requests checked");
    checked
}
