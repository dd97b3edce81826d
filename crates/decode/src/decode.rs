//! From an HTTP request to the data a function needs, with every rejection naming its cause.
//!
//! Decoding itself is the CloudEvents SDK's (binary and structured content modes). Around it
//! sit the checks that make a rejection useful: which attribute is missing, which data field
//! is wrong. The seed system's Dapr envelope is translated here, so functions see one shape.

use crate::problem::Problem;
use cloudevents::binding::http_0_2::Headers;
use cloudevents::event::{EventBuilderError, SpecVersion};
use cloudevents::{AttributesReader, Data, Event};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use todo_events_domain::time::parse_instant;
use todo_events_domain::{EventKind, RecurringTaskDue, ReminderDue};

/// Dapr's CloudEvent type for everything published through its pub/sub API.
const DAPR_TYPE: &str = "com.dapr.event.sent";
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

/// An event accepted by the host, ready for the function.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The CloudEvent id (the deterministic id for translated legacy events).
    pub id: String,
    pub kind: EventKind,
    pub data: Value,
    /// Whether it arrived in the seed system's Dapr envelope.
    pub legacy: bool,
    /// W3C trace context from the CloudEvents Distributed Tracing extension.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// actix-web's request headers as the SDK's [`Headers`], for [`decode_http`]. The SDK's own
/// actix binding has this too, but enabling it turns on every default feature of actix-web
/// (brotli and zstd compression, cookies, HTTP/2) wherever the host is linked.
#[cfg(feature = "actix")]
pub struct ActixHeaders<'r>(pub &'r actix_web::http::header::HeaderMap);

#[cfg(feature = "actix")]
impl<'a> Headers<'a> for ActixHeaders<'_> {
    type Iterator = actix_web::http::header::map::Iter<'a>;

    fn get<K: http::header::AsHeaderName>(&self, name: K) -> Option<&http::HeaderValue> {
        self.0.get(name.as_str())
    }

    fn iter(&'a self) -> Self::Iterator {
        self.0.iter()
    }
}

/// Decodes an HTTP request carrying one CloudEvent for a function accepting the kinds
/// `accepts`.
///
/// `headers` is any map the SDK's HTTP binding reads: actix-web's ([`ActixHeaders`]) in the
/// host, `http`'s in the fuzz targets.
pub fn decode_http<'a, H: Headers<'a>>(
    headers: &'a H,
    body: &[u8],
    accepts: &[EventKind],
) -> Result<Decoded, Problem> {
    let content_type = headers
        .get("content-type")
        .map(|v| {
            v.to_str()
                .map_err(|_| Problem::unsupported_media_type("the content-type header is not ASCII"))
        })
        .transpose()?
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let ct = content_type.as_deref();
    if ct == Some("application/cloudevents-batch+json") {
        return Err(Problem::unsupported_media_type(
            "batch mode is not supported: send one event per request",
        ));
    }
    if ct.is_some_and(|c| c.starts_with("application/cloudevents")) {
        if ct != Some("application/cloudevents+json") {
            return Err(Problem::unsupported_media_type(format!(
                "structured mode must be application/cloudevents+json, got {}",
                ct.unwrap_or_default()
            )));
        }
        precheck_structured(body)?;
    } else if headers.get("ce-specversion").is_some() {
        if let Some(c) = ct {
            if !is_json(c) {
                return Err(Problem::unsupported_media_type(format!(
                    "event data must be application/json, got {c}"
                )));
            }
        }
        // An attribute has one value: a repeated ce-* header is ambiguous (the SDK would take
        // the last one, which may be empty — found by fuzzing), so it is refused.
        for (name, _) in headers.iter() {
            let Some(attr) = name.as_str().strip_prefix("ce-") else {
                continue;
            };
            let times = headers.iter().filter(|(n, _)| *n == name).count();
            if times > 1 {
                return Err(Problem::invalid(
                    attr.to_owned(),
                    format!("the {name} header appears {times} times; a CloudEvent attribute has one value"),
                ));
            }
        }
        for attr in REQUIRED {
            let value = headers.get(format!("ce-{attr}"));
            if value.is_none_or(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace)) {
                return Err(Problem::invalid(
                    attr,
                    format!("the ce-{attr} header is missing or empty"),
                ));
            }
        }
    } else if ct.is_some_and(|c| !is_json(c)) {
        return Err(Problem::unsupported_media_type(format!(
            "expected a CloudEvent (binary mode with ce-* headers and application/json data, \
             or application/cloudevents+json), got {}",
            ct.unwrap_or_default()
        )));
    } else {
        return Err(Problem::invalid(
            "specversion",
            "not a CloudEvent: send binary mode (ce-specversion, ce-id, ce-source, ce-type headers) \
             or structured mode (content-type application/cloudevents+json)",
        ));
    }

    let event = cloudevents::binding::http_0_2::to_event(headers, body.to_vec()).map_err(sdk_problem)?;
    from_event(event, accepts)
}

/// Checks an already-decoded CloudEvent (from any transport) and extracts its data.
pub fn from_event(event: Event, accepts: &[EventKind]) -> Result<Decoded, Problem> {
    if event.id().trim().is_empty() {
        return Err(Problem::invalid("id", "the event id is empty"));
    }
    if event.specversion() != SpecVersion::V10 {
        return Err(Problem::invalid(
            "specversion",
            format!("specversion must be 1.0, got {}", event.specversion()),
        ));
    }
    if let Some(dct) = event.datacontenttype() {
        if !is_json(&dct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()) {
            return Err(Problem::unsupported_media_type(format!(
                "datacontenttype must be application/json, got {dct}"
            )));
        }
    }
    let data = data_value(&event)?;
    let legacy_type = data
        .get("event_type")
        .and_then(Value::as_str)
        .and_then(EventKind::from_legacy_type);
    let traceparent = event.extension("traceparent").map(|v| v.to_string());
    let tracestate = event.extension("tracestate").map(|v| v.to_string());
    if event.ty() == DAPR_TYPE || (EventKind::from_type(event.ty()).is_none() && legacy_type.is_some()) {
        return from_dapr_envelope(data, accepts).map(|d| Decoded {
            traceparent,
            tracestate,
            ..d
        });
    }
    let kind = EventKind::from_type(event.ty())
        .filter(|k| accepts.contains(k))
        .ok_or_else(|| {
            Problem::invalid(
                "type",
                format!("this function accepts {}, not {:?}", names(accepts), event.ty()),
            )
        })?;
    Ok(Decoded {
        id: event.id().to_owned(),
        kind,
        data,
        legacy: false,
        traceparent,
        tracestate,
    })
}

/// The accepted types, for a rejection: `a` or `a or b`.
fn names(accepts: &[EventKind]) -> String {
    let names: Vec<_> = accepts.iter().map(|k| k.cloudevent_type()).collect();
    names.join(" or ")
}

/// Parses event data into a function's type; a failure names the field (`data.remind_at`).
pub fn parse_data<T: DeserializeOwned>(data: Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize::<_, T>(data).map_err(|e| {
        let path = e.path().to_string();
        let detail = e.inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        let missing = detail
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => format!("data.{name}"),
            (".", None) => "data".to_owned(),
            (p, Some(name)) => format!("data.{p}.{name}"),
            (p, None) => format!("data.{p}"),
        };
        Problem::invalid(field, detail)
    })
}

fn is_json(content_type: &str) -> bool {
    content_type == "application/json" || content_type == "text/json" || content_type.ends_with("+json")
}

/// Structured mode: the body must be a JSON object with the required attributes as strings.
fn precheck_structured(body: &[u8]) -> Result<(), Problem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::invalid("body", format!("the body is not valid JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| Problem::invalid("body", "a structured CloudEvent must be a JSON object"))?;
    for attr in REQUIRED {
        match object.get(attr) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(Problem::invalid(
                    attr,
                    format!("the {attr} attribute is missing or empty"),
                ))
            }
            Some(_) => {
                return Err(Problem::invalid(
                    attr,
                    format!("the {attr} attribute must be a string"),
                ))
            }
        }
    }
    if let Some(encoded) = object.get("data_base64") {
        let valid = encoded.as_str().is_some_and(|e| {
            e.len() % 4 == 0
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        });
        if !valid {
            return Err(Problem::invalid(
                "data_base64",
                "data_base64 must be a base64 string",
            ));
        }
    }
    if let Some(time) = object.get("time").filter(|t| !t.is_null()) {
        if time.as_str().is_none_or(|t| parse_instant(t).is_err()) {
            return Err(Problem::invalid(
                "time",
                "the time attribute must be an RFC 3339 timestamp",
            ));
        }
    }
    Ok(())
}

fn sdk_problem(e: cloudevents::message::Error) -> Problem {
    use cloudevents::message::Error as E;
    let detail = e.to_string();
    let field = match &e {
        E::EventBuilderError { source } => match source {
            EventBuilderError::MissingRequiredAttribute { attribute_name }
            | EventBuilderError::ParseTimeError { attribute_name, .. }
            | EventBuilderError::ParseUrlError { attribute_name, .. }
            | EventBuilderError::InvalidUriRefError { attribute_name } => (*attribute_name).to_owned(),
        },
        E::UnknownSpecVersion { .. } => "specversion".into(),
        E::ParseTimeError { .. } => "time".into(),
        E::ParseUrlError { .. } => "source".into(),
        E::UnknownAttribute { name } => name.clone(),
        E::Base64DecodingError { .. } => "data_base64".into(),
        _ => "body".into(),
    };
    Problem::invalid(field, detail)
}

fn data_value(event: &Event) -> Result<Value, Problem> {
    let value = match event.data() {
        None => return Err(Problem::invalid("data", "the event has no data")),
        Some(Data::Json(v)) => v.clone(),
        Some(Data::Binary(bytes)) => serde_json::from_slice(bytes)
            .map_err(|e| Problem::invalid("data", format!("data is not valid JSON: {e}")))?,
        Some(Data::String(s)) => serde_json::from_str(s)
            .map_err(|e| Problem::invalid("data", format!("data is not valid JSON: {e}")))?,
    };
    // Dapr clients often publish `json.dumps(...)`: a JSON document inside a JSON string.
    match value {
        Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| Problem::invalid("data", format!("data is a string, not a JSON object: {e}"))),
        Value::Object(_) => Ok(value),
        _ => Err(Problem::invalid("data", "data must be a JSON object")),
    }
}

/// Translates the seed system's payload (`event_id`, `event_type`, ids at the top level and
/// times inside `data`) into this system's data, with the deterministic event id.
fn from_dapr_envelope(data: Value, accepts: &[EventKind]) -> Result<Decoded, Problem> {
    let empty = Map::new();
    let inner = data.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let kind = data
        .get("event_type")
        .and_then(Value::as_str)
        .and_then(EventKind::from_legacy_type)
        .ok_or_else(|| {
            Problem::invalid(
                "data.event_type",
                "a Dapr envelope must carry event_type reminder.due or recurring_task.due",
            )
        })?;
    if !accepts.contains(&kind) {
        return Err(Problem::invalid(
            "data.event_type",
            format!("this function accepts {}, not {kind:?}", names(accepts)),
        ));
    }
    let pick = |name: &str| {
        data.get(name)
            .or_else(|| inner.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (translated, id) = match kind {
        EventKind::ReminderDue => {
            let translated = json!({
                "reminder_id": pick("reminder_id"),
                "task_id": pick("task_id"),
                "user_id": pick("user_id"),
                "remind_at": legacy_time(&pick("remind_at")),
            });
            let id = parse_data::<ReminderDue>(translated.clone())?.event_id();
            (translated, id)
        }
        EventKind::RecurringTaskDue => {
            let translated = json!({
                "recurring_task_id": pick("recurring_task_id"),
                "user_id": pick("user_id"),
                "occurrence_at": legacy_time(&pick("next_occurrence")),
            });
            let id = parse_data::<RecurringTaskDue>(translated.clone())?.event_id();
            (translated, id)
        }
        // The seed system had no agenda: no legacy type names one.
        EventKind::AgendaDue => {
            return Err(Problem::invalid(
                "data.event_type",
                "no Dapr envelope carries an agenda",
            ))
        }
    };
    Ok(Decoded {
        id,
        kind,
        data: translated,
        legacy: true,
        traceparent: None,
        tracestate: None,
    })
}

/// The seed wrote Python `datetime.utcnow().isoformat()`: UTC without an offset. Such times
/// are read as UTC; anything else is passed on for the normal parser to judge.
fn legacy_time(value: &Value) -> Value {
    if let Some(s) = value.as_str() {
        if parse_instant(s).is_err() {
            if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Value::String(todo_events_domain::time::rfc3339(naive.and_utc()));
            }
        }
    }
    value.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderMap, HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    const DATA: &str = r#"{"reminder_id":1,"task_id":2,"user_id":3,"remind_at":"2026-11-27T09:00:00Z"}"#;

    fn binary() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ce-specversion", "1.0"),
            ("ce-id", "reminder/1/2026-11-27T09:00:00Z"),
            ("ce-source", "/todo/scheduler-cron"),
            ("ce-type", "dev.todo.reminder.due"),
            ("content-type", "application/json"),
        ]
    }

    #[test]
    fn binary_mode_with_knative_kafka_extensions() {
        let mut h = binary();
        h.push(("ce-knativekafkaoffset", "17"));
        h.push(("ce-knativekafkapartition", "0"));
        h.push(("ce-key", "3"));
        let d = decode_http(&headers(&h), DATA.as_bytes(), &[EventKind::ReminderDue]).unwrap();
        assert_eq!(d.id, "reminder/1/2026-11-27T09:00:00Z");
        assert_eq!(d.data["task_id"], 2);
        let r: ReminderDue = parse_data(d.data).unwrap();
        assert_eq!(r.reminder_id.get(), 1);
    }

    #[test]
    fn structured_mode() {
        let body = format!(
            r#"{{"specversion":"1.0","id":"x","source":"/s","type":"dev.todo.reminder.due",
               "datacontenttype":"application/json","data":{DATA}}}"#
        );
        let h = headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]);
        let d = decode_http(&h, body.as_bytes(), &[EventKind::ReminderDue]).unwrap();
        assert_eq!(d.id, "x");
    }

    #[test]
    fn rejections_name_the_field() {
        let mut h = binary();
        h.retain(|(k, _)| *k != "ce-id");
        let p = decode_http(&headers(&h), DATA.as_bytes(), &[EventKind::ReminderDue]).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (400, Some("id")));

        let p = decode_http(
            &headers(&binary()),
            DATA.as_bytes(),
            &[EventKind::RecurringTaskDue],
        )
        .unwrap_err();
        assert_eq!(p.field.as_deref(), Some("type"));

        let bad = DATA.replace("2026-11-27T09:00:00Z", "yesterday");
        let d = decode_http(&headers(&binary()), bad.as_bytes(), &[EventKind::ReminderDue]).unwrap();
        let p = parse_data::<ReminderDue>(d.data).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("data.remind_at"));

        let mut h = binary();
        h[0] = ("ce-specversion", "0.3");
        let p = decode_http(&headers(&h), DATA.as_bytes(), &[EventKind::ReminderDue]).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("specversion"));

        let mut h = binary();
        h[4] = ("content-type", "text/plain");
        let p = decode_http(&headers(&h), DATA.as_bytes(), &[EventKind::ReminderDue]).unwrap_err();
        assert_eq!(p.status, 415);

        let p = decode_http(
            &headers(&[("content-type", "application/json")]),
            DATA.as_bytes(),
            &[EventKind::ReminderDue],
        )
        .unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (400, Some("specversion")));
    }

    #[test]
    fn dapr_envelope_from_the_seed_system() {
        let body = r#"{"specversion":"1.0","id":"5b6c","source":"backend","type":"com.dapr.event.sent",
            "topic":"reminders","pubsubname":"kafka-pubsub","datacontenttype":"application/json",
            "data":{"event_id":"reminder-1-1770000000.5","event_type":"reminder.due",
                    "timestamp":"2026-02-13T10:00:00","user_id":3,"reminder_id":1,"task_id":2,
                    "data":{"reminder_id":1,"task_id":2,"task_title":"Pay rent",
                            "remind_at":"2026-11-27T09:00:00","notification_channels":"email"}}}"#;
        let h = headers(&[("content-type", "application/cloudevents+json")]);
        let d = decode_http(&h, body.as_bytes(), &[EventKind::ReminderDue]).unwrap();
        assert!(d.legacy);
        assert_eq!(d.id, "reminder/1/2026-11-27T09:00:00Z");
        assert_eq!(d.data["remind_at"], "2026-11-27T09:00:00Z");
    }
}
