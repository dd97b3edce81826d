//! A pod: one container of a manifest, run as its real binary with the environment the
//! manifest gives it. Starting one takes the container start delay first (scheduling, image
//! pull, container creation: the parameter `--container-start`), then the program's own
//! start-up until its readiness probe answers, as the kubelet would see it.

use crate::cgroups::{Cgroups, Slot};
use crate::manifests::Container;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// What a cluster supplies beside the manifests: the addresses behind the Secrets and
/// ConfigMap placeholders (database, brokers, relay), and where logs go.
#[derive(Clone)]
pub struct Cluster {
    pub binaries: PathBuf,
    pub logs: PathBuf,
    /// Replaces the same keys of every container's environment.
    pub addresses: BTreeMap<String, String>,
    /// Added to a container that checks OIDC sender identity (`OIDC_AUDIENCE` set): where
    /// the cluster's issuer is and the pod's service-account token (`World::oidc`), as a pod
    /// finds them at `https://kubernetes.default.svc` and in its mounted token.
    pub oidc: BTreeMap<String, String>,
    pub container_start: Duration,
    /// Where each pod's `limits.cpu` is enforced (`None`: `--no-cpu-limits`).
    pub cgroups: Option<Arc<Cgroups>>,
}

pub struct Pod {
    pub name: String,
    pub port: u16,
    child: Child,
    grace: Duration,
    /// The pod's CPU cgroup, ended with the pod.
    cgroup: Option<(Arc<Cgroups>, Slot)>,
}

static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// The command a container runs: its binary, args, and environment (manifest values,
    /// then the cluster's addresses, then `extra`, e.g. Knative's `PORT`).
    fn command(&self, c: &Container, extra: &[(&str, String)]) -> Command {
        let mut cmd = Command::new(self.binaries.join(&c.binary));
        cmd.args(&c.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        // `limits.cpu`: inside such a container actix and tokio size themselves to it
        // (std's available_parallelism reads the cgroup quota); here the program is moved
        // into its cgroup only after it has started, so say it.
        if let Some(cpus) = c.cpu_limit {
            let n = (cpus.ceil() as usize).max(1).to_string();
            cmd.env("TOKIO_WORKER_THREADS", &n).env("HTTP_WORKERS", &n);
        }
        for (k, v) in &self.addresses {
            cmd.env(k, v);
        }
        if c.env.contains_key("OIDC_AUDIENCE") {
            for (k, v) in &self.oidc {
                cmd.env(k, v);
            }
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `container` as pod `name` after the container start delay and returns once
    /// its readiness probe answers `200` (programs with a port) or at once (jobs).
    pub async fn start(
        &self,
        name: &str,
        container: &Container,
        serves_http: bool,
        grace: Duration,
    ) -> anyhow::Result<Pod> {
        self.start_if(name, container, serves_http, grace, || true)
            .await?
            .context("a pod that is always wanted was not started")
    }

    /// [`Cluster::start`], unless `wanted` says after the container start delay that the pod
    /// was deleted meanwhile (a ReplicaSet scaled down while its pod was still being
    /// created): then `None`, and the program never ran.
    pub async fn start_if(
        &self,
        name: &str,
        container: &Container,
        serves_http: bool,
        grace: Duration,
        wanted: impl Fn() -> bool,
    ) -> anyhow::Result<Option<Pod>> {
        tokio::time::sleep(self.container_start).await;
        if !wanted() {
            return Ok(None);
        }
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let pod_name = format!("{name}-{n}");
        let port = todo_events_testkit::kafka::free_port();
        let log = std::fs::File::create(self.logs.join(format!("{pod_name}.log")))?;
        let mut cmd = self.command(
            container,
            &[("PORT", port.to_string()), ("HOSTNAME", pod_name.clone())],
        );
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", container.binary))?;
        let cgroup = match &self.cgroups {
            Some(cgroups) => {
                let slot = cgroups.slot(&pod_name, container.cpu_limit, container.cpu_request)?;
                slot.add(child.id().context("the pod's process id")?)?;
                Some((cgroups.clone(), slot))
            }
            None => None,
        };
        let mut pod = Pod {
            name: pod_name,
            port,
            child,
            grace,
            cgroup,
        };
        if serves_http {
            pod.wait_ready(Duration::from_secs(60)).await?;
        }
        Ok(Some(pod))
    }
}

impl Pod {
    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/health/readiness", self.port);
        loop {
            if let Ok(r) = client.get(&url).timeout(Duration::from_secs(1)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} before it was ready", self.name);
            }
            if started.elapsed() > timeout {
                bail!("{} not ready after {timeout:?}", self.name);
            }
            // Knative's queue-proxy probes a starting container every 50 ms when the
            // readiness probe has no periodSeconds (knative/serving
            // pkg/queue/readiness/probe.go, shouldProbeAggressively).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the program to exit by itself (a job), up to `deadline`.
    pub async fn wait(
        &mut self,
        deadline: Option<Duration>,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match deadline {
            Some(d) => match tokio::time::timeout(d, self.child.wait()).await {
                Ok(status) => Ok(Some(status?)),
                Err(_) => Ok(None),
            },
            None => Ok(Some(self.child.wait().await?)),
        }
    }

    /// The kubelet's stop: SIGTERM, then SIGKILL after the grace period.
    pub async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            todo_events_testkit::signal(pid, todo_events_testkit::Signal::TERM);
        }
        if tokio::time::timeout(self.grace, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

impl Drop for Pod {
    /// The pod's cgroup goes with it, its throttling counted.
    fn drop(&mut self) {
        if let Some((cgroups, slot)) = self.cgroup.take() {
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.start_kill();
                let _ = self.child.try_wait();
            }
            cgroups.finish(slot);
        }
    }
}
