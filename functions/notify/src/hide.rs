//! What an answer must not show: the recipient's stored address and the stored targets of
//! their endpoints.
//!
//! An answer (the reply CloudEvent, a `503`'s detail) goes back to whoever sent the event.
//! The texts that explain a delivery's end come from the mail server and the endpoints
//! ("550 5.1.1 <ada@example.test>: user unknown", "https://hooks.example/… answered 410"), and
//! they name what is stored. The deliveries table and the log keep them whole; before a text
//! goes into an answer, every stored value of the reminder's recipient it contains is replaced
//! by a name for it: `<recipient>`, `<endpoint N>`. Replacing the known values (rather than
//! guessing at addresses and URLs with patterns) hides exactly what is stored and nothing else.

use todo_events_store::ReminderContext;

/// The stored values of one reminder's recipient, with the name each is shown as.
pub(crate) struct Hidden {
    values: Vec<(String, String)>,
}

impl Hidden {
    /// The address of `ctx`'s user, and each endpoint's target with its host (the form the
    /// channels' texts show a target in: `https://host/…`).
    pub(crate) fn of(ctx: &ReminderContext) -> Self {
        let mut values = vec![(ctx.email.clone(), "<recipient>".to_owned())];
        for endpoint in &ctx.endpoints {
            let name = format!("<endpoint {}>", endpoint.id);
            values.push((endpoint.target.clone(), name.clone()));
            if let Ok(url) = url::Url::parse(&endpoint.target) {
                if let Some(host) = url.host_str() {
                    let shown = match url.port() {
                        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
                        None => format!("{}://{host}/…", url.scheme()),
                    };
                    values.push((shown, name.clone()));
                    values.push((host.to_owned(), name.clone()));
                }
            }
        }
        // Longest first, so that a target is replaced whole before its host is.
        values.retain(|(value, _)| !value.is_empty());
        values.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        Self { values }
    }

    /// `text` with every stored value replaced by its name.
    pub(crate) fn in_text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (value, name) in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), name);
            }
        }
        out
    }

    /// Every string of `value` (a reply's details) with the stored values replaced.
    pub(crate) fn in_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.in_text(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.in_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.in_json(v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use todo_events_domain::EndpointId;
    use todo_events_store::{Channel, Endpoint};

    #[test]
    fn the_address_targets_and_hosts_are_named_not_shown() {
        let mut ctx = crate::handler::tests::row();
        ctx.endpoints.push(Endpoint {
            id: EndpointId::new(7).unwrap(),
            channel: Channel::Webhook,
            target: "https://hooks.example.test:8443/T0/secret-path".into(),
            format: "standard".into(),
            secret: None,
            p256dh: None,
            auth: None,
        });
        let hidden = Hidden::of(&ctx);
        assert_eq!(
            hidden.in_text("550 5.1.1 <ada@example.test>: user unknown"),
            "550 5.1.1 <<recipient>>: user unknown"
        );
        assert_eq!(
            hidden.in_text("https://hooks.example.test:8443/… answered 410"),
            "<endpoint 7> answered 410"
        );
        assert_eq!(
            hidden.in_text("hooks.example.test resolves to 10.0.0.1, a private address"),
            "<endpoint 7> resolves to 10.0.0.1, a private address"
        );
        assert_eq!(
            hidden.in_text("the database is unavailable"),
            "the database is unavailable"
        );
        let mut details = serde_json::json!({"deliveries": [{"detail": "to ada@example.test"}], "n": 1});
        hidden.in_json(&mut details);
        assert_eq!(
            details,
            serde_json::json!({"deliveries": [{"detail": "to <recipient>"}], "n": 1})
        );
    }
}
