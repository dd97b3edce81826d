//! The counts and the verdict. Counting is separate from gathering so the rules can be
//! tested on their own: nothing lost, no instance twice, no second e-mail beyond the claims a
//! SIGKILL caught in flight or the copies whose `250` never reached notify, every poison
//! message dead-lettered and nothing else.

use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// What the system produced, as gathered after the run.
pub struct Observed<'a> {
    /// The Message-ID each due reminder's e-mail must carry.
    pub expected_mails: &'a HashSet<String>,
    /// Copies the SMTP server accepted, per Message-ID.
    pub received: &'a HashMap<String, u32>,
    /// SIGKILLs that found each e-mail claimed and not recorded.
    pub claims_hit: &'a HashMap<String, u32>,
    /// Copies per Message-ID whose `250` found notify gone (killed, or it gave up waiting):
    /// delivered without notify knowing, so sending again is the only careful choice.
    pub unanswered: &'a HashMap<String, u32>,
    /// Every (recurring task, occurrence) due.
    pub expected_occurrences: &'a HashSet<(i64, DateTime<Utc>)>,
    /// Task instances per (recurring task, occurrence).
    pub instances: &'a HashMap<(i64, DateTime<Utc>), i64>,
    pub poison: usize,
    /// Poison messages still on their topics at the end: Tansu loses acknowledged messages
    /// across a restart (RELIABILITY.md), and a poison message it lost before a consumer
    /// reached it cannot be dead-lettered. Those, and only those, are excused.
    pub poison_kept: usize,
    /// Distinct messages (by topic, partition, offset) in the dead-letter topics.
    pub dead_lettered: usize,
    /// Processes that ended on their own, or not cleanly when asked to.
    pub crashes: Vec<String>,
    /// The run ended before everything due was done.
    pub timed_out: bool,
}

#[derive(Debug, PartialEq, Eq, Default)]
pub struct Tally {
    pub reminders_due: usize,
    pub mailed: usize,
    pub lost_mails: usize,
    /// Copies beyond the first.
    pub duplicate_mails: usize,
    /// E-mail claims in flight at notify's SIGKILLs (each a send that may have been under way).
    pub claims_hit: usize,
    /// Copies the SMTP server accepted after notify was gone (its `250` unheard).
    pub unanswered: usize,
    /// Duplicate copies of an e-mail beyond the SIGKILLs that caught its claim in flight and
    /// the copies whose acceptance notify never heard (whichever excuses more: a SIGKILL's
    /// copy is usually unanswered too).
    pub unexplained_duplicates: usize,
    /// Message-IDs of the unexplained duplicates, for the report.
    pub unexplained_ids: Vec<String>,
    /// E-mails no due reminder asked for.
    pub unexpected_mails: usize,
    pub occurrences_due: usize,
    pub instances: usize,
    pub lost_occurrences: usize,
    /// Instances beyond the first of an occurrence.
    pub duplicate_instances: usize,
    /// Instances of occurrences no rule made due.
    pub unexpected_instances: usize,
    pub poison: usize,
    pub poison_kept: usize,
    pub dead_lettered: usize,
    pub crashes: Vec<String>,
    pub timed_out: bool,
}

impl Tally {
    pub fn count(o: &Observed<'_>) -> Self {
        let copies = |id: &String| o.received.get(id).copied().unwrap_or(0) as usize;
        let mailed = o.expected_mails.iter().filter(|id| copies(id) > 0).count();
        let duplicate_mails = o.received.values().map(|&n| n.saturating_sub(1) as usize).sum();
        let unexplained = |id: &String, n: u32| {
            let hits = o.claims_hit.get(id).copied().unwrap_or(0);
            let unheard = o.unanswered.get(id).copied().unwrap_or(0);
            n.saturating_sub(1).saturating_sub(hits.max(unheard)) as usize
        };
        let unexplained_duplicates = o.received.iter().map(|(id, &n)| unexplained(id, n)).sum();
        let mut unexplained_ids: Vec<String> = o
            .received
            .iter()
            .filter(|(id, &n)| unexplained(id, n) > 0)
            .map(|(id, _)| id.clone())
            .collect();
        unexplained_ids.sort();
        let instances = o.instances.values().sum::<i64>() as usize;
        let present = |k: &(i64, DateTime<Utc>)| o.instances.get(k).copied().unwrap_or(0) > 0;
        Self {
            reminders_due: o.expected_mails.len(),
            mailed,
            lost_mails: o.expected_mails.len() - mailed,
            duplicate_mails,
            claims_hit: o.claims_hit.values().map(|&n| n as usize).sum(),
            unanswered: o.unanswered.values().map(|&n| n as usize).sum(),
            unexplained_duplicates,
            unexplained_ids,
            unexpected_mails: o
                .received
                .keys()
                .filter(|id| !o.expected_mails.contains(*id))
                .count(),
            occurrences_due: o.expected_occurrences.len(),
            instances,
            lost_occurrences: o.expected_occurrences.iter().filter(|k| !present(k)).count(),
            duplicate_instances: o.instances.values().map(|&n| (n - 1).max(0) as usize).sum(),
            unexpected_instances: o
                .instances
                .keys()
                .filter(|k| !o.expected_occurrences.contains(*k))
                .count(),
            poison: o.poison,
            poison_kept: o.poison_kept.min(o.poison),
            dead_lettered: o.dead_lettered,
            crashes: o.crashes.clone(),
            timed_out: o.timed_out,
        }
    }

    /// Why the run fails; empty when it passes.
    pub fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        let mut check = |bad: bool, text: String| {
            if bad {
                why.push(text);
            }
        };
        check(self.timed_out, "timed out before everything due was done".into());
        check(
            self.lost_mails > 0,
            format!("{} reminder(s) never mailed", self.lost_mails),
        );
        check(
            self.lost_occurrences > 0,
            format!("{} occurrence(s) without an instance", self.lost_occurrences),
        );
        check(
            self.duplicate_instances > 0,
            format!("{} duplicate instance(s)", self.duplicate_instances),
        );
        check(
            self.unexpected_instances > 0,
            format!(
                "{} instance(s) of occurrences no rule made due",
                self.unexpected_instances
            ),
        );
        check(
            self.unexplained_duplicates > 0,
            format!(
                "{} duplicate e-mail(s) beyond the sends a SIGKILL interrupted or notify never \
                 heard accepted: {}",
                self.unexplained_duplicates,
                self.unexplained_ids.join(" ")
            ),
        );
        check(
            self.unexpected_mails > 0,
            format!("{} e-mail(s) no reminder asked for", self.unexpected_mails),
        );
        check(
            self.dead_lettered > self.poison || self.dead_lettered < self.poison_kept,
            format!(
                "{} message(s) dead-lettered, expected the {} poison message(s) the broker kept \
                 (of {} sent)",
                self.dead_lettered, self.poison_kept, self.poison
            ),
        );
        for crash in &self.crashes {
            why.push(crash.clone());
        }
        why
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reminders    due {} · mailed {} · lost {} · duplicate mails {} (SIGKILLs caught {} accepted, unrecorded e-mail(s); accepted after notify was gone {}; unexplained {}) · unexpected {}",
            self.reminders_due,
            self.mailed,
            self.lost_mails,
            self.duplicate_mails,
            self.claims_hit,
            self.unanswered,
            self.unexplained_duplicates,
            self.unexpected_mails
        )?;
        writeln!(
            f,
            "occurrences  due {} · instances {} · lost {} · duplicate instances {} · unexpected {}",
            self.occurrences_due,
            self.instances,
            self.lost_occurrences,
            self.duplicate_instances,
            self.unexpected_instances
        )?;
        write!(
            f,
            "dead-lettered {} (poison messages sent: {}, lost by the broker before a consumer read them: {})",
            self.dead_lettered,
            self.poison,
            self.poison - self.poison_kept
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    struct Case {
        expected_mails: HashSet<String>,
        received: HashMap<String, u32>,
        claims_hit: HashMap<String, u32>,
        unanswered: HashMap<String, u32>,
        expected_occurrences: HashSet<(i64, DateTime<Utc>)>,
        instances: HashMap<(i64, DateTime<Utc>), i64>,
        poison: usize,
        poison_kept: usize,
        dead_lettered: usize,
    }

    /// Everything done once: two reminders mailed, two occurrences instantiated.
    fn clean() -> Case {
        Case {
            expected_mails: ["<a>".to_owned(), "<b>".to_owned()].into(),
            received: [("<a>".to_owned(), 1), ("<b>".to_owned(), 1)].into(),
            claims_hit: HashMap::new(),
            unanswered: HashMap::new(),
            expected_occurrences: [(1, at(0)), (1, at(5))].into(),
            instances: [((1, at(0)), 1), ((1, at(5)), 1)].into(),
            poison: 4,
            poison_kept: 4,
            dead_lettered: 4,
        }
    }

    fn tally(c: &Case) -> Tally {
        Tally::count(&Observed {
            expected_mails: &c.expected_mails,
            received: &c.received,
            claims_hit: &c.claims_hit,
            unanswered: &c.unanswered,
            expected_occurrences: &c.expected_occurrences,
            instances: &c.instances,
            poison: c.poison,
            poison_kept: c.poison_kept,
            dead_lettered: c.dead_lettered,
            crashes: Vec::new(),
            timed_out: false,
        })
    }

    #[test]
    fn a_clean_run_passes_with_its_counts() {
        let t = tally(&clean());
        assert_eq!(
            (t.reminders_due, t.mailed, t.lost_mails, t.duplicate_mails),
            (2, 2, 0, 0)
        );
        assert_eq!((t.occurrences_due, t.instances, t.lost_occurrences), (2, 2, 0));
        assert!(t.failures().is_empty(), "{:?}", t.failures());
    }

    #[test]
    fn only_a_poison_message_the_broker_lost_is_excused_from_the_dead_letters() {
        let mut c = clean();
        (c.poison_kept, c.dead_lettered) = (3, 3);
        assert!(tally(&c).failures().is_empty(), "{:?}", tally(&c).failures());
        c.dead_lettered = 2;
        assert_eq!(
            tally(&c).failures().len(),
            1,
            "one kept poison message not dead-lettered"
        );
        (c.poison_kept, c.dead_lettered) = (4, 5);
        assert_eq!(tally(&c).failures().len(), 1, "more dead letters than poison");
    }

    #[test]
    fn a_reminder_never_mailed_is_lost() {
        let mut c = clean();
        c.received.remove("<b>");
        let t = tally(&c);
        assert_eq!((t.mailed, t.lost_mails), (1, 1));
        assert_eq!(t.failures(), ["1 reminder(s) never mailed"]);
    }

    #[test]
    fn a_second_copy_passes_only_when_a_sigkill_caught_its_claim() {
        let mut c = clean();
        c.received.insert("<a>".into(), 2);
        let t = tally(&c);
        assert_eq!((t.duplicate_mails, t.unexplained_duplicates), (1, 1));
        assert_eq!(t.failures().len(), 1);
        c.claims_hit.insert("<a>".into(), 1);
        let t = tally(&c);
        assert_eq!(
            (t.duplicate_mails, t.claims_hit, t.unexplained_duplicates),
            (1, 1, 0)
        );
        assert!(t.failures().is_empty());
        // A claim caught for another e-mail does not excuse this one's copy.
        c.claims_hit = [("<b>".to_owned(), 3)].into();
        assert_eq!(tally(&c).unexplained_duplicates, 1);
        assert_eq!(tally(&c).unexplained_ids, ["<a>"]);
    }

    #[test]
    fn a_second_copy_passes_when_notify_never_heard_the_first_accepted_and_is_counted_once() {
        let mut c = clean();
        c.received.insert("<a>".into(), 3);
        c.unanswered.insert("<a>".into(), 1);
        let t = tally(&c);
        assert_eq!(
            (t.duplicate_mails, t.unanswered, t.unexplained_duplicates),
            (2, 1, 1)
        );
        // The SIGKILL's copy is unanswered too: one copy excused, not two.
        c.claims_hit.insert("<a>".into(), 1);
        assert_eq!(tally(&c).unexplained_duplicates, 1);
        c.unanswered.insert("<a>".into(), 2);
        assert!(tally(&c).failures().is_empty(), "{:?}", tally(&c).failures());
    }

    #[test]
    fn missing_duplicate_and_stray_instances_fail() {
        let mut c = clean();
        c.instances.remove(&(1, at(5)));
        assert_eq!(tally(&c).failures(), ["1 occurrence(s) without an instance"]);
        let mut c = clean();
        c.instances.insert((1, at(0)), 2);
        c.instances.insert((2, at(0)), 1);
        let t = tally(&c);
        assert_eq!(
            (t.instances, t.duplicate_instances, t.unexpected_instances),
            (4, 1, 1)
        );
        assert_eq!(t.failures().len(), 2);
    }

    #[test]
    fn dead_letters_must_be_exactly_the_poison() {
        let mut c = clean();
        c.dead_lettered = 5;
        assert_eq!(tally(&c).failures().len(), 1, "a real event dead-lettered fails");
        c.dead_lettered = 3;
        assert_eq!(
            tally(&c).failures().len(),
            1,
            "a poison message not dead-lettered fails"
        );
    }

    #[test]
    fn mail_nobody_asked_for_fails() {
        let mut c = clean();
        c.received.insert("<z>".into(), 1);
        assert_eq!(tally(&c).failures(), ["1 e-mail(s) no reminder asked for"]);
    }
}
