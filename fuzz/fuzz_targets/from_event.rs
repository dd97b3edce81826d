//! `from_event` on any CloudEvent the SDK can deserialize from JSON (the structured form; the
//! Kafka binding builds the same `Event`): never panics, rejects only with 400/415 naming a field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use todo_events_decode::decode::{from_event, parse_data};
use todo_events_domain::{AgendaDue, EventKind, RecurringTaskDue, ReminderDue};

fuzz_target!(|input: &[u8]| {
    let Ok(event) = serde_json::from_slice::<cloudevents::Event>(input) else {
        return;
    };
    // notify's kinds, recur's.
    let functions: [&[EventKind]; 2] = [
        &[EventKind::ReminderDue, EventKind::AgendaDue],
        &[EventKind::RecurringTaskDue],
    ];
    for accepts in functions {
        match from_event(event.clone(), accepts) {
            Ok(decoded) => {
                assert!(
                    accepts.contains(&decoded.kind),
                    "{:?} not asked for",
                    decoded.kind
                );
                let parsed = match decoded.kind {
                    EventKind::ReminderDue => parse_data::<ReminderDue>(decoded.data).map(|d| d.event_id()),
                    EventKind::RecurringTaskDue => {
                        parse_data::<RecurringTaskDue>(decoded.data).map(|d| d.event_id())
                    }
                    EventKind::AgendaDue => parse_data::<AgendaDue>(decoded.data).map(|d| d.event_id()),
                };
                match parsed {
                    // A translated Dapr envelope carries the deterministic id of its data.
                    Ok(id) if decoded.legacy => assert_eq!(decoded.id, id),
                    Ok(_) => {}
                    Err(p) => assert_eq!(p.status, 400, "{p:?}"),
                }
            }
            Err(p) => {
                assert!(matches!(p.status, 400 | 415), "unexpected status: {p:?}");
                assert!(p.field.is_some(), "a rejection must name its field: {p:?}");
            }
        }
    }
});
