//! What notify's channel tests over HTTP share (`deliveries.rs`, `bad_stored.rs`): notify with
//! the file mailer and its channels set as a test needs them, the e-mails in its outbox, the
//! deliveries an answer lists.

use notify::config::{ChannelSettings, VapidSettings};
use notify::{Notify, NotifyConfig};
use std::path::Path;
use todo_events_testkit::{self as kit, TestApp, TestDb};

/// notify on `db`, mailing to files in `outbox`. `allow_private`: webhook and push targets on
/// loopback allowed (`WEBHOOK_ALLOW_PRIVATE=true`, where the test receiver is); `push`: Web
/// Push on, with a fresh VAPID key.
pub async fn notify(db: &TestDb, outbox: &Path, allow_private: bool, push: bool) -> TestApp {
    notify_with(db, outbox, allow_private, push, |_| {}).await
}

/// [`notify`], its channel settings then changed by `set` (the guard's port and deny lists).
#[allow(dead_code)] // deliveries.rs does not use it
pub async fn notify_with(
    db: &TestDb,
    outbox: &Path,
    allow_private: bool,
    push: bool,
    set: impl FnOnce(&mut ChannelSettings),
) -> TestApp {
    let mut config = NotifyConfig::local(outbox.to_owned());
    config.channels.allow_private = allow_private;
    config.channels.timeout = std::time::Duration::from_secs(5);
    // A webhook's retries on their own schedule start after 2 s here (30 s by default).
    config.channels.retry_first = std::time::Duration::from_secs(2);
    if push {
        let (private_key, _) = notify::channels::webpush::Vapid::generate();
        config.channels.vapid = Some(VapidSettings {
            private_key: private_key.into(),
            subject: "mailto:ops@todo-events.test".into(),
        });
    }
    set(&mut config.channels);
    kit::spawn(Notify::new(db.store.clone(), config).unwrap()).await
}

/// How many e-mails are in the outbox.
pub fn mails(outbox: &Path) -> usize {
    std::fs::read_dir(outbox).map(|d| d.count()).unwrap_or(0)
}

/// (channel, outcome) of each delivery the answer `body` lists.
pub fn outcomes(body: &serde_json::Value) -> Vec<(&str, &str)> {
    body["deliveries"]
        .as_array()
        .expect("the answer lists its deliveries")
        .iter()
        .map(|d| (d["channel"].as_str().unwrap(), d["outcome"].as_str().unwrap()))
        .collect()
}
