//! The data directory (`[history] data_dir`, docs/adr/0010-history-storage.md): each shard
//! appends the changes to its histories to `shard-{id}.log` every `flush_ms` (glommio's
//! buffered file I/O on the shard's own ring, then `fdatasync`), rewrites the log from
//! memory when it passes `max_disk_bytes_per_shard`, and marks it clean at a graceful
//! shutdown. At start the main thread reads every log ([`load`]) and each shard takes back
//! the channels it owns ([`Shard::open_history_log`]). The format is `channel::journal`.
//!
//! What a `kill -9` can lose: the changes of the last `flush_ms` (they were never written),
//! and continuity: a log that does not end clean gives its channels new epochs, so clients
//! are told "not recovered" rather than replayed a history with a hole in it.

use super::Shard;
use crate::app::AppIdx;
use crate::channel::journal::{Record, Restored};
use crate::channel::stream::{record, Pending};
use crate::config::HistorySettings;
use glommio::io::{BufferedFile, OpenOptions};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads every `shard-*.log` in `dir` (creating `dir` if needed).
pub fn load(dir: &Path) -> std::io::Result<Restored> {
    std::fs::create_dir_all(dir)?;
    let mut restored = Restored::default();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if log_index(&path).is_some() {
            restored.read_log(&std::fs::read(&path)?);
        }
    }
    Ok(restored)
}

/// Removes the logs of shards `nr..` (a restart with fewer shards), once every shard has
/// rewritten its own log with the channels it took back.
pub fn remove_extra_logs(dir: &Path, nr: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if log_index(&path).is_some_and(|i| i >= nr) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an old history log");
            }
        }
    }
}

fn log_index(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("shard-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// One shard's log.
pub struct HistoryLog {
    path: PathBuf,
    file: RefCell<Option<Rc<BufferedFile>>>,
    /// Bytes in the log (where the next write goes).
    pos: Cell<u64>,
    /// A flush is writing: the next one waits (writes never interleave).
    busy: Cell<bool>,
    max_disk: u64,
    every: Duration,
    /// Write errors, logged once each time the log goes from working to failing.
    failing: Cell<bool>,
}

impl Shard {
    /// Takes back the channels this shard owns from `restored`, writes them as this shard's
    /// new log, and starts the writer. Before the shard takes connections.
    pub async fn open_history_log(
        self: &Rc<Shard>,
        settings: &HistorySettings,
        dir: &Path,
        restored: &Restored,
    ) -> std::io::Result<()> {
        self.streams.borrow_mut().keep_journal();
        self.restore_history(restored);
        let log = Rc::new(HistoryLog {
            path: dir.join(format!("shard-{}.log", self.id)),
            file: RefCell::new(None),
            pos: Cell::new(0),
            busy: Cell::new(false),
            max_disk: settings.max_disk_bytes_per_shard,
            every: Duration::from_millis(settings.flush_ms),
            failing: Cell::new(false),
        });
        log.rewrite(self).await?;
        *self.history_log.borrow_mut() = Some(log.clone());
        glommio::spawn_local(writer(Rc::downgrade(self), log)).detach();
        Ok(())
    }

    fn restore_history(&self, restored: &Restored) {
        let apps = self.apps();
        let (now, now_ms) = (Instant::now(), crate::stats::unix_ms());
        let mut streams = self.streams.borrow_mut();
        for ((app_id, channel), s) in &restored.streams {
            let Some(app) = apps.by_id(app_id) else {
                continue;
            };
            let channel: Arc<str> = Arc::from(channel.as_str());
            if self.owner_of(app.idx, &channel) != self.id {
                continue;
            }
            let Some(rule) = app.history.rule_for(&channel) else {
                continue;
            };
            streams.restore(app.idx, &channel, rule, s, now, now_ms);
        }
    }

    /// The last write of a graceful shutdown: what is pending, then the clean mark.
    pub async fn close_history_log(&self) {
        let log = self.history_log.borrow().clone();
        if let Some(log) = log {
            log.flush(self, true).await;
        }
    }

    /// After the clean mark, the first change marks the log dirty at once (a blocking
    /// append of one line, once per shutdown): the process may end before the writer runs
    /// again, and a log that ends clean must hold everything.
    pub(super) fn mark_log_if_dirty(&self) {
        if !self.streams.borrow_mut().take_dirty() {
            return;
        }
        let log = self.history_log.borrow().clone();
        if let Some(log) = log {
            log.mark_dirty();
        }
    }

    /// App `idx`'s id, for the log (`None`: removed by a reload; its history is not kept).
    fn app_id(&self, idx: AppIdx) -> Option<String> {
        let apps = self.apps();
        apps.list
            .get(idx as usize)
            .filter(|a| !a.removed)
            .map(|a| a.id.clone())
    }
}

/// Writes the shard's changes every `flush_ms` until the shard is gone.
async fn writer(shard: Weak<Shard>, log: Rc<HistoryLog>) {
    loop {
        glommio::timer::sleep(log.every).await;
        let Some(shard) = shard.upgrade() else { return };
        log.flush(&shard, false).await;
    }
}

impl HistoryLog {
    /// Appends what changed since the last flush (and, when `clean`, the clean mark), or
    /// rewrites the log when it would pass its bound or changes were dropped.
    async fn flush(&self, shard: &Shard, clean: bool) {
        while self.busy.get() {
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        self.busy.set(true);
        let pending = shard.streams.borrow_mut().take_journal();
        let mut buf = Vec::new();
        let mut snapshot = false;
        match pending {
            Some(Pending::Snapshot) => snapshot = true,
            Some(Pending::Changes(changes)) => {
                for (app, channel, change) in changes {
                    if let Some(id) = shard.app_id(app) {
                        record(&id, &channel, change).line(&mut buf);
                    }
                }
            }
            None => {}
        }
        if clean {
            Record::Clean.line(&mut buf);
        }
        let result = if snapshot || self.pos.get() + buf.len() as u64 > self.max_disk {
            self.rewrite_then(shard, clean).await
        } else {
            self.append(buf).await
        };
        match result {
            Ok(()) => {
                self.failing.set(false);
                if clean {
                    shard.streams.borrow_mut().seal();
                }
            }
            Err(e) => {
                // The changes taken are not in the log: the next write is a whole rewrite
                // (and no clean mark was written, so a restart starts new epochs).
                shard.streams.borrow_mut().must_rewrite();
                if !self.failing.replace(true) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write the history log; history is kept in memory only until it works again");
                }
            }
        }
        self.busy.set(false);
    }

    /// Appends [`Record::Dirty`] now, with plain blocking I/O (see
    /// [`Shard::mark_log_if_dirty`]).
    fn mark_dirty(&self) {
        use std::io::Write;
        let mut line = Vec::new();
        Record::Dirty.line(&mut line);
        let written = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&line).and_then(|_| f.sync_data()));
        match written {
            Ok(()) => self.pos.set(self.pos.get() + line.len() as u64),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot mark the history log dirty")
            }
        }
    }

    async fn append(&self, buf: Vec<u8>) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let file = self.file.borrow().clone().ok_or_else(|| {
            std::io::Error::other("the history log is not open (an earlier rewrite failed)")
        })?;
        let n = buf.len() as u64;
        file.write_at(buf, self.pos.get()).await?;
        file.fdatasync().await?;
        self.pos.set(self.pos.get() + n);
        Ok(())
    }

    /// Replaces the log with a snapshot of the shard's histories.
    async fn rewrite(&self, shard: &Shard) -> std::io::Result<()> {
        self.rewrite_then(shard, false).await
    }

    async fn rewrite_then(&self, shard: &Shard, clean: bool) -> std::io::Result<()> {
        // Taken together with the snapshot (no await between): the snapshot holds them.
        let _ = shard.streams.borrow_mut().take_journal();
        let records = shard.streams.borrow().snapshot(|app| shard.app_id(app));
        let mut buf = Vec::new();
        for r in &records {
            r.line(&mut buf);
        }
        if clean {
            Record::Clean.line(&mut buf);
        }
        let tmp = self.path.with_extension("log.tmp");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(&tmp)
            .await?;
        let n = buf.len() as u64;
        if n > 0 {
            file.write_at(buf, 0).await?;
        }
        file.fdatasync().await?;
        file.rename(&self.path).await?;
        let old = self.file.replace(Some(Rc::new(file)));
        self.pos.set(n);
        if let Some(old) = old.and_then(|f| Rc::try_unwrap(f).ok()) {
            let _ = old.close().await;
        }
        Ok(())
    }
}
