//! One shutdown signal for everything running in a process (servers, consumers, the
//! scheduler loop), triggered by SIGTERM (what Kubernetes and Knative send) or Ctrl-C.

use tokio_util::sync::CancellationToken;

/// A cloneable "please stop" flag.
#[derive(Clone, Default, Debug)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag that is raised on SIGTERM or SIGINT.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: finishing in-flight work");
            trigger.trigger();
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Resolves once shutdown has been requested.
    pub async fn wait(&self) {
        self.0.cancelled().await
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
