//! Which deliveries a reminder asks for, decided from its row alone (pure): e-mail to the
//! user's address when `reminders.channels` names `email`, and one delivery to each of the
//! user's active endpoints on each other channel it names.
//!
//! An endpoint is checked here, once, as its channel will use it: a webhook's URL against the
//! target guard, its format and secret; a subscription's URL and keys. An endpoint that fails
//! the check still gets its delivery, recorded as failed for good with the reason (the user
//! sees why in `deliveries`), and never holds back the others. Web Push without a VAPID key
//! cannot be delivered by this notify at all: those deliveries are not claimed, and the event
//! is answered "unavailable" (retried, then dead-lettered for a replay once the key is set),
//! after the other channels are done. The same holds an endpoint whose secret or keys are
//! stored sealed (`todo_events_store::sealed`) with a key this notify does not hold, or one
//! that does not open them: nothing is sent to it until `SECRETS_KEYS` does.

use crate::channels::guard::{Guard, Refused};
use crate::channels::webhook::{Format, WebhookEndpoint};
use crate::channels::webpush::Subscription;
use std::sync::Arc;
use todo_events_domain::UserId;
use todo_events_store::notify::Route;
use todo_events_store::sealed::{Column, Keys, Place};
use todo_events_store::{Channel, Channels, Endpoint, ReminderContext};

/// What an endpoint is checked with: the target policy, whether Web Push is on (a VAPID
/// key), and the keys that open sealed secrets.
#[derive(Clone, Copy)]
pub(crate) struct Checks<'a> {
    pub guard: &'a Guard,
    pub push_on: bool,
    pub keys: &'a Keys,
}

/// Where one delivery goes, checked. Shared (`Arc`): a send that outlasts its batch's
/// patience goes on in a task of its own, which holds its target.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Email,
    Webhook(Arc<WebhookEndpoint>),
    WebPush(Arc<Subscription>),
    /// An endpoint that cannot be used as stored (refused URL, unknown format, bad keys):
    /// claimed and recorded as failed for good, with this reason.
    Unusable(String),
}

/// What a reminder asks for.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub deliveries: Vec<(Route, Target)>,
    /// Deliveries this notify cannot make now (Web Push without a key): why.
    pub held: Option<String>,
    /// What the reminder named that leads nowhere (an unknown channel, a channel without
    /// endpoints), in words for the answer: they never quote what is stored.
    pub notes: Vec<String>,
    /// The same for the log, with what is stored (an unknown channel's name as written).
    pub log: Vec<String>,
}

/// Plans the deliveries of `ctx`.
pub(crate) fn plan(ctx: &ReminderContext, checks: Checks<'_>) -> Plan {
    let to = Recipient {
        user_id: ctx.user_id,
        channels: &ctx.channels,
        endpoints: &ctx.endpoints,
        column: "reminders.channels",
    };
    plan_routes(&to, checks)
}

/// Where a message goes: a user's channels (as a column names them) and active endpoints.
pub(crate) struct Recipient<'a> {
    pub user_id: UserId,
    pub channels: &'a Channels,
    pub endpoints: &'a [Endpoint],
    /// The column the channels come from, for the notes.
    pub column: &'static str,
}

/// Plans the deliveries to `to` (a reminder's, or the daily agenda's).
pub(crate) fn plan_routes(to: &Recipient<'_>, checks: Checks<'_>) -> Plan {
    let mut plan = Plan::default();
    let column = to.column;
    for name in &to.channels.unknown {
        plan.log.push(format!(
            "{column} names {name:?}, which is not a channel (email, webhook, webpush)"
        ));
    }
    if !to.channels.unknown.is_empty() {
        plan.notes.push(format!(
            "{column} names a value that is not a channel (email, webhook, webpush); the \
             function's log says which"
        ));
    }
    for &channel in &to.channels.known {
        if channel == Channel::Email {
            plan.deliveries.push((Route::EMAIL, Target::Email));
            continue;
        }
        let endpoints: Vec<&Endpoint> = to.endpoints.iter().filter(|e| e.channel == channel).collect();
        if endpoints.is_empty() {
            let note = format!("user {} has no active {channel} endpoint", to.user_id);
            plan.log.push(note.clone());
            plan.notes.push(note);
            continue;
        }
        if channel == Channel::WebPush && !checks.push_on {
            plan.held = Some(
                "Web Push is off (VAPID_PRIVATE_KEY and VAPID_SUBJECT are not set); the push \
                 deliveries wait for it"
                    .into(),
            );
            continue;
        }
        for endpoint in endpoints {
            let route = Route {
                channel,
                endpoint: Some(endpoint.id),
            };
            let endpoint = match opened(endpoint, to.user_id, checks.keys) {
                Ok(endpoint) => endpoint,
                Err(why) => {
                    plan.held = Some(why);
                    continue;
                }
            };
            let target = match checked(&endpoint, checks.guard) {
                Ok(target) => target,
                Err(Refused(reason)) => Target::Unusable(reason),
            };
            plan.deliveries.push((route, target));
        }
    }
    plan
}

/// `e` with its secret and keys opened where they are sealed, or why one does not open (the
/// delivery waits for the key: held).
fn opened(e: &Endpoint, user_id: UserId, keys: &Keys) -> Result<Endpoint, String> {
    let mut open = e.clone();
    let values = [&mut open.secret, &mut open.p256dh, &mut open.auth];
    for (value, column) in values.into_iter().zip(Column::ALL) {
        if let Some(stored) = value.as_mut() {
            let place = Place {
                column,
                user_id: user_id.get(),
            };
            *stored = keys.open(place, stored).map_err(|e| {
                format!(
                    "the {} of {} endpoint {} cannot be opened: {e}; its delivery waits for the key",
                    column.name(),
                    open.channel,
                    open.id
                )
            })?;
        }
    }
    Ok(open)
}

/// An endpoint as its channel will use it.
fn checked(e: &Endpoint, guard: &Guard) -> Result<Target, Refused> {
    let id = e.id.get();
    match e.channel {
        Channel::Webhook => {
            let format: Format = e.format.parse().map_err(Refused)?;
            Ok(Target::Webhook(Arc::new(WebhookEndpoint::new(
                id,
                &e.target,
                format,
                e.secret.as_deref(),
                guard,
            )?)))
        }
        Channel::WebPush => {
            let (Some(p256dh), Some(auth)) = (&e.p256dh, &e.auth) else {
                return Err(Refused("the subscription has no p256dh or auth key".into()));
            };
            Ok(Target::WebPush(Arc::new(Subscription::new(
                id, &e.target, p256dh, auth, guard,
            )?)))
        }
        Channel::Email => Err(Refused("e-mail has no endpoints".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use todo_events_domain::EndpointId;
    use todo_events_store::Channels;

    fn ctx(channels: &str, endpoints: Vec<Endpoint>) -> ReminderContext {
        ReminderContext {
            channels: Channels::parse(channels),
            endpoints,
            ..crate::handler::tests::row()
        }
    }

    fn webhook(id: i64, target: &str, format: &str) -> Endpoint {
        Endpoint {
            id: EndpointId::new(id).unwrap(),
            channel: Channel::Webhook,
            target: target.into(),
            format: format.into(),
            secret: None,
            p256dh: None,
            auth: None,
        }
    }

    fn push(id: i64) -> Endpoint {
        Endpoint {
            id: EndpointId::new(id).unwrap(),
            channel: Channel::WebPush,
            target: "https://push.example.net/send/abc".into(),
            format: "standard".into(),
            secret: None,
            // RFC 8291's example subscription keys.
            p256dh: Some(
                "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
                    .into(),
            ),
            auth: Some("BTBZMqHH6r4Tts7J_aSIgg".into()),
        }
    }

    fn checks<'a>(guard: &'a Guard, push_on: bool, keys: &'a Keys) -> Checks<'a> {
        Checks { guard, push_on, keys }
    }

    /// The plan as words: one per delivery, then the hold and the notes.
    fn planned(c: &ReminderContext, push_on: bool) -> Vec<String> {
        let p = plan(c, checks(&Guard::strict(), push_on, &Keys::default()));
        let mut out: Vec<String> = p
            .deliveries
            .iter()
            .map(|(route, target)| match target {
                Target::Email => format!("{route}"),
                Target::Webhook(_) | Target::WebPush(_) => format!("{route}: ok"),
                Target::Unusable(why) => format!("{route}: unusable: {why}"),
            })
            .collect();
        out.extend(p.held.map(|h| format!("held: {h}")));
        out.extend(p.notes.into_iter().map(|n| format!("note: {n}")));
        out
    }

    #[test]
    fn each_named_channel_goes_to_each_active_endpoint_of_the_user() {
        let endpoints = vec![
            webhook(5, "https://hooks.example.com/a", "slack"),
            push(6),
            webhook(7, "https://ntfy.example.com/topic", "ntfy"),
        ];
        assert_eq!(planned(&ctx("email", endpoints.clone()), true), ["email"]);
        assert_eq!(
            planned(&ctx("webhook, EMAIL,webpush", endpoints.clone()), true),
            [
                "email",
                "webhook endpoint 5: ok",
                "webhook endpoint 7: ok",
                "webpush endpoint 6: ok"
            ]
        );
        assert_eq!(
            planned(&ctx("webpush", endpoints), false),
            ["held: Web Push is off (VAPID_PRIVATE_KEY and VAPID_SUBJECT are not set); the push deliveries wait for it"]
        );
    }

    #[test]
    fn unknown_channels_and_missing_endpoints_are_noted_and_the_rest_delivered() {
        assert_eq!(
            planned(&ctx("email,sms,webhook", vec![]), true),
            [
                "email",
                "note: reminders.channels names a value that is not a channel (email, webhook, \
                 webpush); the function's log says which",
                "note: user 3 has no active webhook endpoint"
            ]
        );
        // The log has what is stored; the answer's notes do not quote it.
        let p = plan(
            &ctx("email,sms,webhook", vec![]),
            checks(&Guard::strict(), true, &Keys::default()),
        );
        assert_eq!(
            p.log,
            [
                "reminders.channels names \"sms\", which is not a channel (email, webhook, webpush)",
                "user 3 has no active webhook endpoint"
            ]
        );
        assert_eq!(planned(&ctx("", vec![]), true), Vec::<String>::new());
    }

    #[test]
    fn an_endpoint_that_cannot_be_used_is_planned_as_unusable_with_why() {
        let mut no_keys = push(9);
        no_keys.auth = None;
        let endpoints = vec![
            webhook(5, "http://127.0.0.1:9/hook", "standard"),
            webhook(6, "https://hooks.example.com/a", "teams"),
            webhook(7, "https://hooks.example.com/b", "standard"),
            no_keys,
        ];
        let got = planned(&ctx("webhook,webpush", endpoints), true);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with("webhook endpoint 5: unusable: "), "{got:?}");
        assert!(
            got[1].starts_with("webhook endpoint 6: unusable: unknown webhook format"),
            "{got:?}"
        );
        assert_eq!(got[2], "webhook endpoint 7: ok");
        assert_eq!(
            got[3],
            "webpush endpoint 9: unusable: the subscription has no p256dh or auth key"
        );
    }
}
