//! The pgbench scripts the limits are measured with, built from the store's own statements
//! (`todo_events_store::statements`), so that "pgbench on the same SQL" is true by
//! construction: each statement the function sends for an event (or a batch) appears once,
//! verbatim, with its `$n` parameters replaced by the values the function binds for the
//! seeded rows, and nothing else is sent. `\set` lines are pgbench's own arithmetic on the
//! client (the row ids of each transaction, distinct across clients: `-D n=0 -D clients=C`);
//! `\gset` keeps a value from the answer of a statement the function sends anyway.
//!
//! Per event (HTTP) notify sends 3 statements (read the reminder, claim its delivery, record
//! it sent) and recur 2 (read the task with its instance, then instance + reminder +
//! advance); per 100-event batch (Kafka) the same statements over arrays of 100. One value is
//! not at hand in pgbench: the batch's delivery ids, which notify keeps from the claim's
//! answer, are looked up by a subquery in the recording statement (100 index lookups on the
//! server; no extra round trip).

use std::path::{Path, PathBuf};
use todo_events_store::statements::{
    CLAIM_NEW_DELIVERIES, FINISH_DELIVERIES, INSTANTIATE, RECURRING_STATE, REMINDER_CONTEXTS,
};

/// `sql` with `$1`…`$n` replaced by `values[0]`…`values[n-1]`. Panics on a parameter
/// without a value or a value without a parameter: a script must bind exactly what the
/// statement takes.
pub fn bind(sql: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len() * 2);
    let mut used = vec![false; values.len()];
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..].chars().take_while(char::is_ascii_digit).count();
        assert!(digits > 0, "a '$' that is not a parameter in {sql}");
        let n: usize = rest[at + 1..at + 1 + digits].parse().expect("digits");
        let value = values
            .get(n - 1)
            .unwrap_or_else(|| panic!("no value for ${n} in {sql}"));
        used[n - 1] = true;
        out.push_str(value);
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    assert!(used.iter().all(|u| *u), "values without a parameter in {sql}");
    out
}

/// The ids of one event's rows: `:id` (recurring task / reminder), `:uid` (its user).
const ONE: &str = "\\set n :n + 1\n\\set id 1 + :client_id + :clients * (:n - 1)\n\\set uid 1 + :id % 1000\n";
/// The ids of a 100-event batch: `:first` … `:last`.
const HUNDRED: &str =
    "\\set n :n + 1\n\\set first 1 + 100 * (:client_id + :clients * (:n - 1))\n\\set last :first + 99\n";
const IDS: &str = "ARRAY(SELECT g FROM generate_series(:first::bigint, :last::bigint) g)";

/// recur over HTTP: one occurrence of recurring task `:id`, due 2026-11-01T08:00:00Z, next
/// 2026-11-02T08:00:00Z, one reminder 15 minutes before.
pub fn recur() -> String {
    let read = bind(RECURRING_STATE, &["ARRAY[:id]", "ARRAY['2026-11-01T08:00:00Z']"]);
    let write = bind(
        INSTANTIATE,
        &[
            "ARRAY[:id]",
            "ARRAY[:uid]",
            "ARRAY['Water the plants']",
            "ARRAY['']",
            "ARRAY['medium']",
            "ARRAY['2026-11-01T08:00:00Z']",
            "ARRAY['2026-11-02T08:00:00Z']",
            "ARRAY[true]",
            "ARRAY[:id]",
            "ARRAY['2026-11-01T07:45:00Z']",
            "now()",
            // The series cursor: none for a rule without COUNT.
            "ARRAY[NULL]",
        ],
    );
    format!("{ONE}{read};\n{write};\n")
}

/// recur consuming Kafka: the same two statements for 100 occurrences.
pub fn recur_batch() -> String {
    let at = |t: &str| format!("array_fill('{t}'::timestamptz, ARRAY[100])");
    let text = |t: &str| format!("array_fill('{t}'::text, ARRAY[100])");
    let read = bind(RECURRING_STATE, &[IDS, &at("2026-11-01T08:00:00Z")]);
    let users = "ARRAY(SELECT 1 + g % 1000 FROM generate_series(:first::bigint, :last::bigint) g)";
    let write = bind(
        INSTANTIATE,
        &[
            IDS,
            users,
            &text("Water the plants"),
            &text(""),
            &text("medium"),
            &at("2026-11-01T08:00:00Z"),
            &at("2026-11-02T08:00:00Z"),
            "array_fill(true, ARRAY[100])",
            IDS,
            &at("2026-11-01T07:45:00Z"),
            "now()",
            "array_fill(NULL::text, ARRAY[100])",
        ],
    );
    format!("{HUNDRED}{read};\n{write};\n")
}

/// notify over HTTP: reminder `:id` due 2026-11-01T09:45:00Z, mailed and recorded sent.
pub fn notify() -> String {
    // The event's time is the reminder's: nothing moved, nothing more looked up.
    let read = bind(
        REMINDER_CONTEXTS,
        &["ARRAY[:id]", "ARRAY['2026-11-01T09:45:00Z']"],
    );
    let claim = bind(
        CLAIM_NEW_DELIVERIES,
        &[
            "ARRAY[:id]",
            "ARRAY['2026-11-01T09:45:00Z']",
            "ARRAY['email']",
            "ARRAY[0]",
            "ARRAY['reminder/' || :id || '/2026-11-01T09:45:00Z']",
            "now()",
            "now() + interval '2 minutes'",
        ],
    );
    let record = bind(
        FINISH_DELIVERIES,
        &[
            "ARRAY[:claim_id]",
            "ARRAY['sent']",
            "ARRAY['user@bench.test']",
            "ARRAY['<reminder-' || :id || '@bench>']",
            "ARRAY[NULL]",
            "now()",
            // The claim's fencing token: a new claim's attempts.
            "ARRAY[1]",
        ],
    );
    format!("{ONE}{read};\n{claim} \\gset claim_\n{record};\n")
}

/// notify consuming Kafka: the same three statements for 100 reminders.
pub fn notify_batch() -> String {
    let read = bind(
        REMINDER_CONTEXTS,
        &[IDS, "array_fill('2026-11-01T09:45:00Z'::timestamptz, ARRAY[100])"],
    );
    let claim = bind(
        CLAIM_NEW_DELIVERIES,
        &[
            IDS,
            "array_fill('2026-11-01T09:45:00Z'::timestamptz, ARRAY[100])",
            "array_fill('email'::text, ARRAY[100])",
            "array_fill(0::bigint, ARRAY[100])",
            "ARRAY(SELECT 'reminder/' || g || '/2026-11-01T09:45:00Z' FROM generate_series(:first::bigint, :last::bigint) g)",
            "now()",
            "now() + interval '2 minutes'",
        ],
    );
    let record = bind(
        FINISH_DELIVERIES,
        &[
            "ARRAY(SELECT id FROM deliveries WHERE reminder_id BETWEEN :first::bigint AND :last::bigint ORDER BY reminder_id)",
            "array_fill('sent'::text, ARRAY[100])",
            "array_fill('user@bench.test'::text, ARRAY[100])",
            "ARRAY(SELECT '<reminder-' || g || '@bench>' FROM generate_series(:first::bigint, :last::bigint) g)",
            "array_fill(NULL::text, ARRAY[100])",
            "now()",
            "array_fill(1, ARRAY[100])",
        ],
    );
    format!("{HUNDRED}{read};\n{claim};\n{record};\n")
}

/// Writes every script into `dir`; their paths by name (`recur.sql`, …).
pub fn write_all(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in [
        ("recur.sql", recur()),
        ("recur_batch.sql", recur_batch()),
        ("notify.sql", notify()),
        ("notify_batch.sql", notify_batch()),
    ] {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL a script sends: its lines that are not pgbench meta-commands, without the
    /// `\gset` that may end one.
    fn statements(script: &str) -> Vec<&str> {
        script
            .lines()
            .filter(|l| !l.starts_with('\\'))
            .map(|l| l.split(" \\gset").next().unwrap().trim_end_matches(';'))
            .collect()
    }

    /// Each script sends exactly the store's statements, in the function's order, each one
    /// bound: one statement per round trip the function makes, nothing else.
    #[test]
    fn scripts_send_the_store_statements_and_nothing_else() {
        let cases: [(&str, String, &[&str]); 4] = [
            ("recur", recur(), &[RECURRING_STATE, INSTANTIATE]),
            ("recur_batch", recur_batch(), &[RECURRING_STATE, INSTANTIATE]),
            (
                "notify",
                notify(),
                &[REMINDER_CONTEXTS, CLAIM_NEW_DELIVERIES, FINISH_DELIVERIES],
            ),
            (
                "notify_batch",
                notify_batch(),
                &[REMINDER_CONTEXTS, CLAIM_NEW_DELIVERIES, FINISH_DELIVERIES],
            ),
        ];
        let mut checked = 0;
        for (name, script, store) in cases {
            let sent = statements(&script);
            assert_eq!(sent.len(), store.len(), "{name}: one statement per round trip");
            for (sent, store) in sent.iter().zip(store) {
                // The statement's text between its parameters is the store's, in order.
                let pieces: Vec<&str> = store
                    .split('$')
                    .enumerate()
                    .map(|(i, p)| {
                        if i == 0 {
                            p
                        } else {
                            p.trim_start_matches(|c: char| c.is_ascii_digit())
                        }
                    })
                    .collect();
                let mut at = 0;
                for piece in pieces {
                    let found = sent[at..].find(piece).unwrap_or_else(|| {
                        panic!("{name}: {piece:?} of the store's statement not in {sent}")
                    });
                    at += found + piece.len();
                }
                checked += 1;
            }
            for word in ["BEGIN", "COMMIT", "nextval"] {
                assert!(
                    !script.contains(word),
                    "{name} sends {word}, which the function does not"
                );
            }
        }
        assert_eq!(checked, 10, "statements checked");
    }

    /// Each script, run by pgbench on the benchmark's seed, has the function's effects:
    /// instances created and tasks advanced, deliveries recorded sent and reminders moved on.
    #[tokio::test]
    async fn scripts_run_and_have_the_functions_effects() {
        let Some(db) = todo_events_testkit::postgres().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        let pgbench = |script: &str, clients: u32, transactions: u32| {
            let out = std::process::Command::new("pgbench")
                .args(["-n", "-M", "prepared", "-D", "n=0"])
                .arg("-D")
                .arg(format!("clients={clients}"))
                .args(["-c", &clients.to_string(), "-t", &transactions.to_string()])
                .arg("-f")
                .arg(dir.path().join(script))
                .arg(&db.url)
                .output()
                .expect("pgbench runs (PostgreSQL's client tools)");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{script}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let count = |sql: &'static str| {
            let url = db.url.clone();
            async move { crate::env::scalar(&url, sql).await.unwrap() }
        };
        crate::env::seed::recurring(&db.url, 1000, crate::env::seed::DTSTART_TODAY)
            .await
            .unwrap();
        // 2 clients x 3 events, then 2 clients x 1 batch of 100 (rows 1..6, then 1..200:
        // the first six are instantiated already and advanced, as a redelivery finds them).
        pgbench("recur.sql", 2, 3);
        assert_eq!(
            count("SELECT count(*) FROM tasks WHERE recurring_task_id IS NOT NULL").await,
            6
        );
        pgbench("recur_batch.sql", 2, 1);
        assert_eq!(
            count("SELECT count(*) FROM tasks WHERE recurring_task_id IS NOT NULL").await,
            200
        );
        assert_eq!(
            count("SELECT count(*) FROM recurring_tasks WHERE next_occurrence = '2026-11-02T08:00:00Z'")
                .await,
            200
        );
        assert_eq!(
            count("SELECT count(*) FROM reminders WHERE remind_at = '2026-11-01T07:45:00Z'").await,
            200
        );

        sqlx::query("TRUNCATE users, tasks, reminders, deliveries, recurring_tasks CASCADE")
            .execute(&sqlx::PgPool::connect(&db.url).await.unwrap())
            .await
            .unwrap();
        crate::env::seed::reminders(&db.url, 1000, "2026-11-01T09:45:00Z", "published")
            .await
            .unwrap();
        pgbench("notify.sql", 2, 3);
        let sent = "SELECT count(*) FROM deliveries d JOIN reminders r ON r.id = d.reminder_id \
                    WHERE d.status = 'sent' AND r.state = 'sent' AND d.reminder_id <= 1000";
        assert_eq!(count(sent).await, 6);
        // Two batches per client: rows 1..400, of which 1..6 were sent above.
        pgbench("notify_batch.sql", 2, 2);
        assert_eq!(count(sent).await, 400, "rows 1..400 sent, the first six once");
    }

    #[test]
    fn bind_replaces_every_parameter_by_its_number() {
        assert_eq!(bind("a $1 b $3 c $2", &["x", "y", "z"]), "a x b z c y");
        let values: Vec<String> = (1..=11).map(|i| format!("v{i}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let sql: Vec<String> = (1..=11).rev().map(|i| format!("${i}")).collect();
        let bound = bind(&sql.join(","), &values);
        let expected: Vec<&str> = values.iter().rev().copied().collect();
        assert_eq!(
            bound.split(',').collect::<Vec<_>>(),
            expected,
            "$11 is not $1 followed by 1"
        );
    }

    #[test]
    #[should_panic(expected = "no value for $2")]
    fn bind_refuses_a_parameter_without_a_value() {
        bind("$1 $2", &["x"]);
    }
}
