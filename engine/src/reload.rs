//! Reload without a restart (docs/adr/0008-reload.md): re-read the configuration the server
//! started from and put what can change in force, on SIGHUP or `POST /admin/reload`.
//!
//! A reload reads and checks everything first (the file, the overrides of the command line
//! and the environment, the TLS files), exactly as a start would; any error refuses the
//! whole reload, names the field, and leaves the running configuration as it was. Only
//! then are the new apps, limits and certificate swapped in ([`Live::apply`]), the webhook
//! endpoints updated, and the cluster secret file re-read.
//!
//! What a reload changes, and when it takes effect:
//! - apps added: at once (new connections and API requests); removed: the API and new
//!   connections at once, open connections are closed with 4001 within a second (the
//!   sweeper); changed (a rotated secret, options, quotas, webhooks): at once, open
//!   connections included;
//! - limits: new connections take the new per-connection bounds (outbox, message size,
//!   activity timeout), everything else applies at once;
//! - TLS: the certificate and key are read again even when the paths are the same (certbot
//!   renews in place); new connections get them, open ones keep theirs.
//!
//! Settings that shape the running process (addresses, shards, the cluster's identity and
//! addresses, the metrics listener, `webhooks.ca_file`, `limits.mesh_queue_capacity`, test
//! switches) keep their running values; the report names each one that differs, as
//! `restart_required`.

use crate::config::{Config, ConfigError, Overrides};
use crate::live::{read_files, Files, Live, Update};
use crate::webhook::Webhooks;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// What else a reload re-reads: a cluster node's secret file.
pub type ReloadSecrets = Box<dyn Fn() + Send + Sync + 'static>;

/// Re-reads the configuration and puts it in force. One per process, shared by the signal
/// thread and the admin route; `Send + Sync`.
pub struct Reloader {
    file: Option<PathBuf>,
    over: Overrides,
    live: Arc<Live>,
    webhooks: Webhooks,
    secrets: Option<ReloadSecrets>,
    /// The configuration in force. A lock, not an atomic swap: it also serializes reloads
    /// (a SIGHUP and an admin request at once), which are rare and never on a data path.
    #[allow(clippy::disallowed_types)]
    running: std::sync::Mutex<Config>,
}

/// What one reload did; the body of `POST /admin/reload`'s answer.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub apps: crate::app::AppChanges,
    /// The limits changed.
    pub limits: bool,
    /// The TLS certificate and key were read again (TLS is configured).
    pub tls: bool,
    /// Settings whose new value needs a restart; their running values stay.
    pub restart_required: Vec<&'static str>,
}

impl Reloader {
    /// `file` and `over`: what the server started from, read again on every reload.
    pub fn new(
        file: Option<PathBuf>,
        over: Overrides,
        running: Config,
        live: Arc<Live>,
        webhooks: Webhooks,
        secrets: Option<ReloadSecrets>,
    ) -> Reloader {
        #[allow(clippy::disallowed_types)]
        let running = std::sync::Mutex::new(running);
        Reloader {
            file,
            over,
            live,
            webhooks,
            secrets,
            running,
        }
    }

    /// Reads the configuration again and puts it in force; an error keeps the running one.
    /// Blocking (file reads): call it on the signal thread or `spawn_blocking`, never on a
    /// shard's executor.
    pub fn reload(&self) -> Result<Report, ConfigError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut cfg = Config::load(self.file.as_deref(), &self.over)?;
        let Files { tls, .. } = read_files(&cfg)?;
        let restart_required = restart_required(&running, &cfg);
        keep_running_values(&running, &mut cfg);
        let (apps, changes) = self.live.apps().reloaded(&cfg.apps);
        let report = Report {
            apps: changes,
            limits: cfg.limits != running.limits,
            tls: tls.is_some(),
            restart_required,
        };
        let apps = Arc::new(apps);
        self.live.apply(Update {
            apps: Some(apps.clone()),
            limits: report.limits.then(|| cfg.limits.clone()),
            tls: (tls.is_some() || running.tls.is_some()).then_some(tls),
        });
        self.webhooks.reload(&apps);
        if let Some(secrets) = &self.secrets {
            secrets();
        }
        tracing::info!(
            apps_added = ?report.apps.added,
            apps_removed = ?report.apps.removed,
            apps_changed = ?report.apps.changed,
            limits = report.limits,
            tls = report.tls,
            restart_required = ?report.restart_required,
            "configuration reloaded"
        );
        if !report.restart_required.is_empty() {
            tracing::warn!(fields = ?report.restart_required, "these settings changed but take effect only after a restart; their running values stay");
        }
        *running = cfg;
        Ok(report)
    }

    /// SIGHUP: [`Reloader::reload`], with the outcome in the log.
    pub fn reload_logged(&self) {
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "reload refused; the running configuration stays");
        }
    }
}

/// Puts the running values of the restart-only settings into `new`, so the configuration
/// kept as running says what is in force, and the next reload still reports each of them
/// that differs from the file.
fn keep_running_values(running: &Config, new: &mut Config) {
    new.bind = running.bind;
    new.shards = running.shards;
    new.pin_shards = running.pin_shards;
    new.testing = running.testing.clone();
    new.metrics = running.metrics.clone();
    new.admin = running.admin.clone();
    new.webhooks = running.webhooks.clone();
    new.history = running.history.clone();
    new.limits.mesh_queue_capacity = running.limits.mesh_queue_capacity;
    if let (Some(n), Some(r)) = (new.cluster.as_mut(), running.cluster.as_ref()) {
        // The secrets have their own reload; the rest is the node's identity.
        let (secrets, file) = (n.secrets.clone(), n.secret_file.clone());
        *n = r.clone();
        (n.secrets, n.secret_file) = (secrets, file);
    } else {
        new.cluster = running.cluster.clone();
    }
}

/// The settings that differ between `old` and `new` but cannot change in a running process.
fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut differs = |field, changed: bool| {
        if changed {
            fields.push(field);
        }
    };
    differs("bind", old.bind != new.bind);
    differs("shards", old.effective_shards() != new.effective_shards());
    differs("pin_shards", old.pin_shards != new.pin_shards);
    differs("testing", old.testing != new.testing);
    differs("metrics", old.metrics != new.metrics);
    differs("admin", old.admin != new.admin);
    differs("webhooks.ca_file", old.webhooks != new.webhooks);
    differs("history", old.history != new.history);
    differs(
        "limits.mesh_queue_capacity",
        old.limits.mesh_queue_capacity != new.limits.mesh_queue_capacity,
    );
    // The secrets have their own reload (the secret file); the rest is the node's identity.
    let identity = |c: &Config| {
        c.cluster.clone().map(|mut c| {
            c.secrets.clear();
            c.secret_file = None;
            c
        })
    };
    differs("cluster", identity(old) != identity(new));
    fields
}
