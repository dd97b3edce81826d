//! The notice both channel tests send: reminder 11 of task 7, due 10:00 in Berlin.

use notify::channels::Notice;
use notify::i18n::{Language, Languages};
use todo_events_domain::{ReminderId, TaskId, UserId};

pub fn notice() -> Notice<'static> {
    Notice {
        reminder_id: ReminderId::new(11).unwrap(),
        task_id: TaskId::new(7).unwrap(),
        user_id: UserId::new(3).unwrap(),
        remind_at: "2026-11-30T08:45:00Z".parse().unwrap(),
        task_title: "Water the plants",
        task_due_at: Some("2026-11-30T09:00:00Z".parse().unwrap()),
        timezone: "Europe/Berlin",
        task_url: "http://localhost:3000/tasks/7".into(),
        language: english(),
    }
}

/// The built-in English, as notify speaks to a user without preferences.
pub fn english() -> &'static Language {
    static LANGUAGES: std::sync::OnceLock<Languages> = std::sync::OnceLock::new();
    LANGUAGES
        .get_or_init(|| Languages::load(None).expect("the built-in languages load"))
        .pick("en")
}

/// Seconds since the epoch: the time of signing.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
