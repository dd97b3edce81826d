//! Start-up shared by the function binaries: common settings, the store, the HTTP server on
//! `PORT`, and turning errors into one clear line and an exit status.

use crate::config::{var_or, ConfigError, Flag};
use crate::server::{serve, HostOptions};
use crate::shutdown::Shutdown;
use crate::Function;
use std::process::ExitCode;
use std::sync::Arc;
use todo_events_store::{Store, StoreOptions};

/// The default database: a SQLite file in the current directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://todo-events.db";

/// Settings every function reads.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub database: StoreOptions,
    /// `RUN_MIGRATIONS`: apply migrations at start (default false: a Job does it in clusters).
    pub migrate_at_start: bool,
    /// `PORT` (default 8080).
    pub port: u16,
    /// `LISTEN_ADDRESS` (default `127.0.0.1`): the address `PORT` is bound on. Loopback by
    /// default, so that a function started by hand takes events from this machine only; the
    /// image and the manifests set `0.0.0.0`, where the platform's authentication applies
    /// (`crate::auth`).
    pub listen: std::net::IpAddr,
    pub host: HostOptions,
}

impl CommonSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut database = StoreOptions::new(var_or("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?);
        database.max_connections = var_or("DATABASE_MAX_CONNECTIONS", database.max_connections)?;
        if database.max_connections == 0 {
            return Err(ConfigError("DATABASE_MAX_CONNECTIONS must be at least 1".into()));
        }
        Ok(Self {
            database,
            migrate_at_start: var_or("RUN_MIGRATIONS", Flag(false))?.0,
            port: var_or("PORT", 8080u16)?,
            listen: var_or("LISTEN_ADDRESS", std::net::IpAddr::from([127, 0, 0, 1]))?,
            host: HostOptions::from_env()?,
        })
    }

    /// The listening socket: `LISTEN_ADDRESS` and `PORT`.
    pub fn listener(&self) -> anyhow::Result<std::net::TcpListener> {
        std::net::TcpListener::bind((self.listen, self.port)).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on LISTEN_ADDRESS={} PORT={}: {e}",
                self.listen,
                self.port
            )
        })
    }

    /// Opens the store (and migrates it when asked). A bad `DATABASE_URL` is a config error.
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        let store = Store::open(&self.database).map_err(|e| ConfigError(e.to_string()))?;
        if self.migrate_at_start {
            store.migrate().await?;
        }
        Ok(store)
    }
}

/// Serves `function` on `PORT` until SIGTERM / Ctrl-C.
pub async fn serve_on_port<F: Function>(function: F, common: &CommonSettings) -> anyhow::Result<()> {
    let listener = common.listener()?;
    tracing::info!(function = F::NAME, port = common.port, "starting");
    common.host.auth.warn_if_open(F::NAME, listener.local_addr()?);
    serve(
        Arc::new(function),
        listener,
        common.host.clone(),
        Shutdown::on_signals(),
    )
    .await?;
    tracing::info!(function = F::NAME, "stopped");
    Ok(())
}

/// Turns the result of a binary's `main` into an exit status: configuration errors exit 2,
/// other failures 1, each as one line on stderr.
pub fn exit_status(program: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("{program}: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!(
                "{program}: {}",
                todo_events_domain::redact::passwords(&format!("{e:#}"))
            );
            ExitCode::from(1)
        }
    }
}
