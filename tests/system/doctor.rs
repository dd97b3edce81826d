//! `todo-events doctor` as an operator runs it: bad flags refused as usage errors; the cluster
//! read from kubectl's JSON (files, standard input); and, with the `kafka` feature, a real
//! Kafka-protocol broker (Tansu) and a fresh PostgreSQL database, first with what is missing
//! (too few partitions, a partition without a committed offset, no migrations, too few
//! connections) and then fixed, `--commit-missing-offsets` among the fixes.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_todo-events");

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/doctor")
        .join(name)
        .display()
        .to_string()
}

/// `todo-events doctor args` with no Kafka or database settings but `env`.
fn doctor(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("doctor").args(args).env("NO_COLOR", "1");
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_") || name == "DATABASE_URL" {
            cmd.env_remove(name);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every line of `expected` is a line of the report (as a prefix).
fn assert_lines(out: &Output, expected: &[&str]) {
    let text = stdout(out);
    for line in expected {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no line starting {line:?} in:\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn doctor_refuses_bad_flags_as_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[],
            "the following required arguments were not provided:\n  --shape <SHAPE>",
        ),
        (
            &["--shape", "openshift"],
            "invalid value 'openshift' for '--shape <SHAPE>'",
        ),
        (
            &["--shape", "keda", "--partitions", "0"],
            "invalid value '0' for '--partitions <N>'",
        ),
        (
            &["--shape", "keda", "--partitions", "six"],
            "invalid value 'six' for '--partitions <N>'",
        ),
        (
            &["--shape", "keda", "--connections", "0"],
            "invalid value '0' for '--connections <N>'",
        ),
        (
            &["--shape", "keda", "--connections", "-5"],
            "unexpected argument '-5'",
        ),
        (
            &["--shape", "keda", "--skip-cluster", "--cluster-json", "x.json"],
            "the argument '--skip-cluster' cannot be used with '--cluster-json <FILE>'",
        ),
        (
            &["--shape", "keda", "--commit-missing-offsets=yes"],
            "unexpected value 'yes'",
        ),
        (
            &["--shape", "keda", "--group-notify"],
            "a value is required for '--group-notify <GROUP>'",
        ),
        (
            &["--shape", "keda", "--kubectl"],
            "a value is required for '--kubectl <PATH>'",
        ),
    ];
    for (args, says) in cases {
        let out = doctor(args, &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing checked");
    }
    assert_eq!(cases.len(), 10);
}

/// No services: the cluster from kubectl's JSON, Kafka and the database not set up.
#[test]
fn doctor_reads_the_cluster_from_files_or_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("doctor.db").display());
    let kafka_line = if cfg!(feature = "kafka") {
        "MISSING Kafka settings: KAFKA_BROKERS is not set"
    } else {
        "skipped Kafka: this build has no Kafka client"
    };
    let problems_beside_the_cluster = usize::from(cfg!(feature = "kafka"));

    // Nothing installed, on standard input.
    let mut child = doctor(
        &["--shape", "knative", "--cluster-json", "-"],
        &[("DATABASE_URL", &sqlite)],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let empty = std::fs::read(fixture("empty-list.json")).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &empty).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_lines(
        &out,
        &[
            "MISSING CRD scaledobjects.keda.sh (ScaledObject keda.sh/v1alpha1): not installed. Fix: kubectl apply",
            "MISSING CRD kafkasources.sources.knative.dev (KafkaSource sources.knative.dev/v1beta1): not installed",
            "MISSING knative-eventing/config-kafka-features controller-autoscaler-keda=enabled: the ConfigMap does not exist",
            "MISSING knative-eventing/config-features authentication-oidc=enabled",
            kafka_line,
            "skipped database: DATABASE_URL is a SQLite file",
            &format!("doctor: {} problem(s)", 7 + problems_beside_the_cluster),
        ],
    );
    assert!(
        !dir.path().join("doctor.db").exists(),
        "the doctor creates no database"
    );

    // Everything installed, from two files (the CRDs, the ConfigMaps), as kubectl prints them.
    let out = doctor(
        &[
            "--shape",
            "knative",
            "--cluster-json",
            &fixture("crds-installed.json"),
            "--cluster-json",
            &fixture("configmaps-enabled.json"),
        ],
        &[("DATABASE_URL", &sqlite)],
    )
    .output()
    .unwrap();
    let report = stdout(&out);
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok   ")).count(),
        7,
        "{report}"
    );
    assert_lines(
        &out,
        &[&format!("doctor: {problems_beside_the_cluster} problem(s)")],
    );

    // An old KafkaSource CRD does not matter to keda/; the cluster not checked at all.
    let out = doctor(
        &[
            "--shape",
            "keda",
            "--cluster-json",
            &fixture("crds-kafkasource-v1alpha1.json"),
        ],
        &[("DATABASE_URL", &sqlite)],
    )
    .output()
    .unwrap();
    assert_lines(
        &out,
        &[
            "ok   CRD scaledobjects.keda.sh",
            "ok   CRD triggerauthentications.keda.sh",
        ],
    );
    assert!(!stdout(&out).contains("kafkasources"), "{}", stdout(&out));
    let out = doctor(
        &["--shape", "keda", "--skip-cluster"],
        &[("DATABASE_URL", &sqlite)],
    )
    .output()
    .unwrap();
    assert_lines(&out, &["skipped cluster: --skip-cluster"]);

    // kubectl that cannot reach a cluster: one finding, with the ways around it.
    let out = doctor(
        &["--shape", "keda", "--kubectl", "/bin/false"],
        &[("DATABASE_URL", &sqlite)],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_lines(
        &out,
        &["MISSING cluster objects: `/bin/false get crd scaledobjects.keda.sh triggerauthentications.keda.sh -o json --ignore-not-found` failed"],
    );
    assert!(stdout(&out).contains("--cluster-json FILE"), "{}", stdout(&out));
}

#[cfg(not(feature = "kafka"))]
#[test]
fn doctor_against_a_broker_needs_the_kafka_feature() {
    todo_events_testkit::require::kafka_feature(
        "the doctor against a real broker and PostgreSQL (tests/system/doctor.rs, with_services)",
    );
}

#[cfg(feature = "kafka")]
mod with_services {
    use super::*;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::Duration;
    use todo_events_kafka::admin::{commit_offsets, ensure_topics, group_offsets};
    use todo_events_kafka::KafkaConfig;
    use todo_events_testkit::kafka::MemoryBroker;
    use todo_events_testkit::require;

    /// A database created empty (no migrations, unlike the testkit's), dropped at the end.
    struct EmptyDatabase {
        admin: String,
        name: String,
        url: String,
    }

    impl EmptyDatabase {
        async fn create(admin: String) -> Self {
            use sqlx::Connection;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            // te_: CI drops the test databases earlier runs left (.ci/run).
            let name = format!("te_doctor_{}_{nanos}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let url = format!("{}/{name}", admin.rsplit_once('/').expect("…/<database>").0);
            Self { admin, name, url }
        }

        async fn max_connections(&self) -> u32 {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let max: String = sqlx::query_scalar("SHOW max_connections")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            max.parse().unwrap()
        }
    }

    impl Drop for EmptyDatabase {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        use sqlx::Connection;
                        let mut conn = sqlx::PgConnection::connect(&admin).await?;
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await
                    })
            })
            .join();
        }
    }

    /// One message on each of `partitions` of `topic`.
    fn produce(kafka: &KafkaConfig, topic: &str, partitions: &[i32]) {
        let producer: BaseProducer = kafka.client_config().create().unwrap();
        for &p in partitions {
            producer
                .send(BaseRecord::to(topic).partition(p).key("k").payload("v"))
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    /// A consumer that has joined `group` on `topic` (and commits nothing); it leaves the
    /// group when dropped.
    fn member_of(group: &str, topic: &str, kafka: &KafkaConfig) -> BaseConsumer {
        let consumer: BaseConsumer = kafka
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            // The functions' session timeout (KAFKA_SESSION_TIMEOUT): the group forms in
            // seconds (with librdkafka's 45 s, the join took 25 s here).
            .set("session.timeout.ms", "6000")
            .set("max.poll.interval.ms", "10000")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while consumer.assignment().unwrap().count() == 0 {
            assert!(std::time::Instant::now() < deadline, "no partitions assigned");
            let _ = consumer.poll(Duration::from_millis(100));
        }
        consumer
    }

    fn run(cmd: &mut Command) -> Output {
        let out = cmd.output().unwrap();
        eprintln!("{}", stdout(&out));
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn doctor_finds_what_is_missing_then_passes_once_fixed() {
        let _turn = crate::kafka::turns::shared().await;
        if !require::kafka_broker() {
            return;
        }
        let Some(admin) = require::postgres() else {
            return;
        };
        let logs = tempfile::tempdir().unwrap();
        let broker = MemoryBroker::start(&logs.path().join("tansu.log")).unwrap();
        let kafka = KafkaConfig::plaintext(broker.brokers());
        let db = EmptyDatabase::create(admin).await;
        let max = db.max_connections().await;
        let installed = fixture("crds-installed.json");
        let env = |reminders: &str, task_events: &str| -> Vec<(String, String)> {
            vec![
                ("KAFKA_BROKERS".into(), broker.brokers()),
                ("KAFKA_TOPIC_REMINDERS".into(), reminders.into()),
                ("KAFKA_TOPIC_TASK_EVENTS".into(), task_events.into()),
                ("DATABASE_URL".into(), db.url.clone()),
            ]
        };
        let doctor_with = |env: &[(String, String)], extra: &[&str]| {
            let mut args = vec!["--shape", "keda", "--cluster-json", &installed];
            args.extend(extra);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            doctor(&args, &env)
        };

        // Too few partitions, one partition of notify's group without a committed offset, no
        // migrations, one connection too few.
        let small = [
            "small-reminders",
            "small-task-events",
            "small-reminders.dlq",
            "small-task-events.dlq",
        ];
        ensure_topics(&kafka, &small, 2).await.unwrap();
        commit_offsets(&kafka, "todo-events-notify", "small-reminders", &[(0, 0)]).unwrap();
        commit_offsets(
            &kafka,
            "todo-events-recur",
            "small-task-events",
            &[(0, 0), (1, 0)],
        )
        .unwrap();
        let first = env("small-reminders", "small-task-events");
        let too_many = (max + 1).to_string();
        let out = run(&mut doctor_with(&first, &["--connections", &too_many]));
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert_lines(
            &out,
            &[
                "ok   CRD scaledobjects.keda.sh",
                "MISSING topic small-reminders with at least 6 partitions: it has 2",
                "MISSING topic small-task-events with at least 6 partitions: it has 2",
                "MISSING topic small-reminders.dlq with at least 6 partitions: it has 2",
                "MISSING topic small-task-events.dlq with at least 6 partitions: it has 2",
                "MISSING committed offsets of group todo-events-notify on small-reminders: partition(s) 1 of 2 have none",
                "ok   committed offsets of group todo-events-recur on small-task-events: all 2 partitions",
                &format!("MISSING PostgreSQL max_connections of at least {too_many}: it is {max}"),
                "MISSING database migrations applied: none is (no _sqlx_migrations table)",
                "doctor: 7 problem(s)",
            ],
        );

        // A consumer in the group: the fix refuses to commit beside it, and commits nothing.
        let member = member_of("todo-events-notify", "small-reminders", &kafka);
        let out = run(&mut doctor_with(
            &first,
            &["--connections", &too_many, "--commit-missing-offsets"],
        ));
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert_lines(
            &out,
            &[
                "MISSING committing the missing offsets of group todo-events-notify on small-reminders: the group has 1 consumer(s) (state Stable)",
                "MISSING committed offsets of group todo-events-notify on small-reminders: partition(s) 1 of 2 have none",
                "skipped committing the missing offsets of group todo-events-recur on small-task-events: every partition has a committed offset",
                "doctor: 8 problem(s)",
            ],
        );
        drop(member);

        // Fixed: topics with 6 partitions (under the names the functions are told), the
        // missing offsets committed, the migrations applied.
        let topics = ["reminders", "task-events", "reminders.dlq", "task-events.dlq"];
        ensure_topics(&kafka, &topics, 6).await.unwrap();
        produce(&kafka, "reminders", &[0, 0, 3]);
        commit_offsets(&kafka, "todo-events-notify", "reminders", &[(0, 1)]).unwrap();
        let migrate = Command::new(BIN)
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(migrate.status.success(), "{migrate:?}");
        let fixed = env("reminders", "task-events");
        let enough = max.to_string();
        let out = run(&mut doctor_with(
            &fixed,
            &["--connections", &enough, "--commit-missing-offsets"],
        ));
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        let low = |p: i32| {
            group_offsets(
                &kafka,
                "todo-events-notify",
                "reminders",
                &[p],
                Duration::from_secs(10),
            )
            .unwrap()[0]
                .low
        };
        let notify_commits = (1..6)
            .map(|p| format!("partition {p} at {}", low(p)))
            .collect::<Vec<_>>()
            .join(", ");
        assert_lines(
            &out,
            &[
                "ok   topic reminders: 6 partitions",
                "ok   topic task-events.dlq: 6 partitions",
                &format!("ok   committed group todo-events-notify on reminders at each partition's log start offset: {notify_commits}"),
                "ok   committed group todo-events-recur on task-events at each partition's log start offset: partition 0 at 0, partition 1 at 0,",
                "ok   committed offsets of group todo-events-notify on reminders: all 6 partitions",
                "ok   committed offsets of group todo-events-recur on task-events: all 6 partitions",
                &format!("ok   PostgreSQL max_connections {max} (at least {max})"),
                "ok   database migrations applied: all ",
                "doctor: 0 problem(s)",
            ],
        );
        // The partition that had a committed offset kept it.
        let notify = group_offsets(
            &kafka,
            "todo-events-notify",
            "reminders",
            &[0, 1, 2, 3, 4, 5],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(notify[0].committed, Some(1), "{notify:?}");
        assert!(notify.iter().all(|p| p.committed.is_some()), "{notify:?}");

        // And again without the fix: nothing left to do.
        let out = run(&mut doctor_with(&fixed, &["--connections", &enough]));
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert!(!stdout(&out).contains("committed group"), "{}", stdout(&out));
    }
}
