//! The settings a reload can change while the server runs (docs/adr/0008-reload.md): the
//! apps, the limits and the TLS certificate. Each is an immutable value that a reload
//! replaces whole; shards read the current one and never see half of a change.
//!
//! Why `arc-swap` and not a lock or per-shard copies: a shard reads the apps on every API
//! request and subscription, and the limits on every frame it admits. An `ArcSwap` load is a
//! few nanoseconds and writes only to the reading thread's own slot, so shards never contend
//! on it; a reload (rare, from the signal thread or an admin request) stores a new value and
//! bumps [`Live::generation`], which the shards poll to act on what changed (close the
//! connections of a removed app, make a new TLS acceptor).

use crate::app::Apps;
use crate::config::{Config, Limits};
use crate::tls::Tls;
use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Live {
    apps: ArcSwap<Apps>,
    limits: ArcSwap<Limits>,
    tls: ArcSwapOption<Tls>,
    /// Bumped after every reload, once the new values are in place.
    generation: AtomicU64,
}

/// What one reload puts in force; `None` leaves a setting as it is.
#[derive(Default)]
pub struct Update {
    pub apps: Option<Arc<Apps>>,
    pub limits: Option<Limits>,
    /// `Some(None)`: TLS was removed from the configuration.
    pub tls: Option<Option<Tls>>,
}

impl Live {
    pub fn new(apps: Apps, limits: Limits, tls: Option<Tls>) -> Live {
        Live {
            apps: ArcSwap::from_pointee(apps),
            limits: ArcSwap::from_pointee(limits),
            tls: ArcSwapOption::from_pointee(tls),
            generation: AtomicU64::new(0),
        }
    }

    /// The current apps. Hold the guard for one lookup, not across an `await`.
    pub fn apps(&self) -> Guard<Arc<Apps>> {
        self.apps.load()
    }

    /// The current limits. Hold the guard for one use, not across an `await`.
    pub fn limits(&self) -> Guard<Arc<Limits>> {
        self.limits.load()
    }

    /// The current TLS settings, if TLS is configured.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.load_full()
    }

    /// Changes whenever a reload put something new in force.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Puts `update` in force: every read after this returns the new values.
    pub fn apply(&self, update: Update) {
        if let Some(apps) = update.apps {
            self.apps.store(apps);
        }
        if let Some(limits) = update.limits {
            self.limits.store(Arc::new(limits));
        }
        if let Some(tls) = update.tls {
            self.tls.store(tls.map(Arc::new));
        }
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// What a start reads besides the config file itself.
pub struct Files {
    pub tls: Option<Tls>,
    pub webhook_roots: ureq::tls::RootCerts,
}

/// Reads the files the configuration names (TLS certificate and key, the webhook CA file or
/// the system roots): the one place both a start and `raptor config check` do it, so a check
/// fails exactly where a start would. Errors name the field.
pub fn read_files(cfg: &Config) -> Result<Files, crate::config::ConfigError> {
    Ok(Files {
        tls: cfg.tls.as_ref().map(crate::tls::load).transpose()?,
        webhook_roots: crate::webhook::tls::roots(&cfg.webhooks)?,
    })
}
