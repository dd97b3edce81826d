//! `parse_data` on any JSON: never panics, a rejection is 400 naming a `data…` field, and what
//! it accepts survives a round trip (serialize, parse again, same value, same event id).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use todo_events_decode::decode::parse_data;
use todo_events_decode::Problem;
use todo_events_domain::{AgendaDue, RecurringTaskDue, ReminderDue};

fn check_rejection(p: &Problem) {
    assert_eq!(p.status, 400, "{p:?}");
    assert!(p.field.as_deref().is_some_and(|f| f.starts_with("data")), "{p:?}");
}

fuzz_target!(|input: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(input) else {
        return;
    };
    match parse_data::<ReminderDue>(value.clone()) {
        Ok(r) => {
            let again: ReminderDue = parse_data(serde_json::to_value(&r).unwrap()).expect("round trip");
            assert_eq!(again, r);
            assert_eq!(again.event_id(), r.event_id());
        }
        Err(p) => check_rejection(&p),
    }
    match parse_data::<RecurringTaskDue>(value.clone()) {
        Ok(r) => {
            let again: RecurringTaskDue = parse_data(serde_json::to_value(&r).unwrap()).expect("round trip");
            assert_eq!(again, r);
            assert_eq!(again.event_id(), r.event_id());
        }
        Err(p) => check_rejection(&p),
    }
    match parse_data::<AgendaDue>(value) {
        Ok(a) => {
            let again: AgendaDue = parse_data(serde_json::to_value(&a).unwrap()).expect("round trip");
            assert_eq!(again, a);
            assert_eq!(again.event_id(), a.event_id());
        }
        Err(p) => check_rejection(&p),
    }
});
