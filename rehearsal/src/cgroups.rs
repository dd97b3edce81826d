//! `resources.limits.cpu` and `requests.cpu` enforced as the kubelet enforces them: each pod
//! runs in a CPU cgroup of its own with the CFS quota its limit gives (the period 100 ms, the
//! quota limit × period) and the weight its request gives (kubernetes
//! `pkg/kubelet/cm/helpers_linux.go`, `MilliCPUToQuota`, `MilliCPUToShares`, and
//! `pkg/kubelet/cm/cgroup_manager_linux.go` for cgroup v2's `cpu.max` and `cpu.weight`). So a
//! 500m scheduler run gets half a core per 100 ms however idle the machine is, and a pod at
//! its limit is throttled, as in a cluster; the report says how long pods were throttled.
//!
//! Both cgroup versions are handled: v2 (`/sys/fs/cgroup/cgroup.controllers` lists `cpu`)
//! and v1 (a writable `cpu` hierarchy at `/sys/fs/cgroup/cpu`). Where neither can be
//! written (no privileges, a container without its own cgroup namespace), the rehearsal
//! refuses to start unless `--no-cpu-limits` says to run without them, and its table then
//! says the limits were not enforced.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The kubelet's CFS period (`cpu.cfs_period_us` / the second field of `cpu.max`).
const PERIOD_US: u64 = 100_000;
/// `MinQuotaPeriod`: the kubelet never sets a quota below 1 ms.
const MIN_QUOTA_US: u64 = 1_000;
/// `MinShares`, and `SharesPerCPU`.
const MIN_SHARES: u64 = 2;
const SHARES_PER_CPU: u64 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The rehearsal's own parent cgroup; one child per pod.
pub struct Cgroups {
    root: PathBuf,
    version: Version,
    totals: Mutex<Throttled>,
}

/// What the CFS scheduler reports for the pods that have ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct Throttled {
    pub pods: usize,
    /// Periods in which a pod ran, and those in which it hit its quota.
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled: Duration,
}

/// One pod's cgroup.
pub struct Slot {
    dir: PathBuf,
    version: Version,
}

impl Cgroups {
    /// The parent cgroup for this run, made under the machine's CPU hierarchy.
    pub fn create() -> anyhow::Result<Self> {
        let name = format!("todo-events-rehearsal-{}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        let (root, version) =
            if std::fs::read_to_string(v2).is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu")) {
                let root = Path::new("/sys/fs/cgroup").join(&name);
                std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
                // Children get the cpu controller.
                std::fs::write(root.join("cgroup.subtree_control"), "+cpu")
                    .with_context(|| format!("enabling cpu in {}", root.display()))?;
                (root, Version::V2)
            } else {
                let root = Path::new("/sys/fs/cgroup/cpu").join(&name);
                std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
                (root, Version::V1)
            };
        let cgroups = Self {
            root,
            version,
            totals: Mutex::default(),
        };
        // Fail now, not at the first pod: a child with a quota must be possible.
        let probe = cgroups.slot("probe", Some(0.1), Some(0.05))?;
        probe.remove();
        Ok(cgroups)
    }

    /// What the run's table says about CPU: the cgroup version and parent.
    pub fn describe(&self) -> String {
        format!(
            "cgroup {} CPU quota per pod (`{}`)",
            match self.version {
                Version::V1 => "v1",
                Version::V2 => "v2",
            },
            self.root.display()
        )
    }

    /// A cgroup for pod `name` with the quota of `limit` cores and the weight of `request`.
    pub fn slot(&self, name: &str, limit: Option<f64>, request: Option<f64>) -> anyhow::Result<Slot> {
        let dir = self.root.join(name);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let shares = shares(request);
        match self.version {
            Version::V1 => {
                write(&dir, "cpu.cfs_period_us", &PERIOD_US.to_string())?;
                if let Some(quota) = quota(limit) {
                    write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
                write(&dir, "cpu.shares", &shares.to_string())?;
            }
            Version::V2 => {
                let max = quota(limit).map_or("max".to_owned(), |q| q.to_string());
                write(&dir, "cpu.max", &format!("{max} {PERIOD_US}"))?;
                write(&dir, "cpu.weight", &weight(shares).to_string())?;
            }
        }
        Ok(Slot {
            dir,
            version: self.version,
        })
    }

    /// Adds what a pod's cgroup counted to the totals, and removes the cgroup.
    pub fn finish(&self, slot: Slot) {
        let t = slot.throttled();
        {
            let mut totals = self.totals.lock().expect("not poisoned");
            totals.pods += 1;
            totals.periods += t.periods;
            totals.throttled_periods += t.throttled_periods;
            totals.throttled += t.throttled;
        }
        slot.remove();
    }

    pub fn totals(&self) -> Throttled {
        *self.totals.lock().expect("not poisoned")
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        // Pods dropped without a stop were killed (kill_on_drop); their cgroups empty as
        // the processes go.
        for _ in 0..50 {
            let children: Vec<PathBuf> = std::fs::read_dir(&self.root)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            for c in &children {
                let _ = std::fs::remove_dir(c);
            }
            if std::fs::remove_dir(&self.root).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("cgroup {} left behind (still in use)", self.root.display());
    }
}

impl Slot {
    /// Moves process `pid` (all its threads) into the pod's cgroup.
    pub fn add(&self, pid: u32) -> anyhow::Result<()> {
        write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn throttled(&self) -> Throttled {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(0)
        };
        Throttled {
            pods: 1,
            periods: field("nr_periods"),
            throttled_periods: field("nr_throttled"),
            throttled: match self.version {
                Version::V1 => Duration::from_nanos(field("throttled_time")),
                Version::V2 => Duration::from_micros(field("throttled_usec")),
            },
        }
    }

    /// Removes the cgroup once its processes are gone (a few tries: the kernel lets go of
    /// an exited process's membership shortly after it is reaped).
    fn remove(self) {
        for _ in 0..20 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn write(dir: &Path, file: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(dir.join(file), value)
        .with_context(|| format!("writing {value} to {}", dir.join(file).display()))
}

/// `MilliCPUToQuota`: limit × period, at least 1 ms; no limit, no quota.
fn quota(limit: Option<f64>) -> Option<u64> {
    let milli = (limit? * 1000.0).round() as u64;
    (milli > 0).then(|| (milli * PERIOD_US / 1000).max(MIN_QUOTA_US))
}

/// `MilliCPUToShares`: request × 1024, at least 2 (no request: 2).
fn shares(request: Option<f64>) -> u64 {
    let milli = request.map_or(0, |r| (r * 1000.0).round() as u64);
    (milli * SHARES_PER_CPU / 1000).max(MIN_SHARES)
}

/// cgroup v2's weight for v1 shares (`CpuSharesToCpuWeight` in runc's libcontainer/cgroups,
/// which the kubelet uses): 1 + ((shares − 2) × 9999) / 262142.
fn weight(shares: u64) -> u64 {
    1 + ((shares.saturating_sub(2)) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_the_kubelet_computes_them() {
        assert_eq!(quota(Some(1.0)), Some(100_000));
        assert_eq!(quota(Some(0.5)), Some(50_000));
        assert_eq!(quota(Some(0.005)), Some(1_000), "at least 1 ms");
        assert_eq!(quota(None), None);
        assert_eq!(shares(Some(0.05)), 51);
        assert_eq!(shares(None), 2);
        assert_eq!(weight(2), 1);
        assert_eq!(weight(1024), 39);
    }
}
