//! `decode_http` on arbitrary headers and bodies: never panics, rejects only with 400/415
//! naming a field, and whatever it accepts is for the function that asked.
//!
//! Input: the first line picks the function (`recur`, or anything else for notify, which
//! accepts reminders and daily agendas), the
//! following lines up to the first empty line are `name: value` headers (values may hold any
//! byte), the rest is the body.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use todo_events_decode::decode::{decode_http, parse_data};
use todo_events_domain::{AgendaDue, EventKind, RecurringTaskDue, ReminderDue};

fuzz_target!(|input: &[u8]| {
    let (head, body) = match input.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&input[..i], &input[i + 2..]),
        None => (input, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let accepts: &[EventKind] = match lines.next() {
        Some(b"recur") => &[EventKind::RecurringTaskDue],
        _ => &[EventKind::ReminderDue, EventKind::AgendaDue],
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    match decode_http(&headers, body, accepts) {
        Ok(decoded) => {
            assert!(
                accepts.contains(&decoded.kind),
                "{:?} not asked for",
                decoded.kind
            );
            assert!(!decoded.id.trim().is_empty(), "accepted an event without an id");
            let parsed = match decoded.kind {
                EventKind::ReminderDue => parse_data::<ReminderDue>(decoded.data).map(|_| ()),
                EventKind::RecurringTaskDue => parse_data::<RecurringTaskDue>(decoded.data).map(|_| ()),
                EventKind::AgendaDue => parse_data::<AgendaDue>(decoded.data).map(|_| ()),
            };
            if let Err(p) = parsed {
                assert_eq!(p.status, 400, "{p:?}");
                assert!(p.field.as_deref().is_some_and(|f| f.starts_with("data")), "{p:?}");
            }
        }
        Err(p) => {
            assert!(matches!(p.status, 400 | 415), "unexpected status: {p:?}");
            assert!(p.field.is_some(), "a rejection must name its field: {p:?}");
            assert!(!p.detail.is_empty());
        }
    }
});
