//! Waiting for every shard to listen, and saying why one could not.
//!
//! glommio creates each shard's executor on the shard's own thread. When that fails (io_uring
//! refused or missing, locked memory below 512 KiB) the thread ends before any of our code
//! runs on it: with an error value, or with a panic inside glommio. Nothing would ever report
//! it, so the main thread watches the threads while it waits, and turns their end into one
//! line that names the cause and what to do (docs/operations.md, "Kernel and limits").

use super::StartError;
use crate::lifecycle::Node;
use glommio::{BuilderErrorKind, GlommioError, PoolThreadHandles};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The name glommio gives the shard threads (followed by `-{n}`).
pub(super) const SHARD_THREAD: &str = "raptor-shard";

/// True from [`quiet_shard_panics`] until every shard listens: a shard thread's panic is
/// recorded in [`FIRST_PANIC`] instead of printed, since the start-up error reports it.
static STARTING: AtomicBool = AtomicBool::new(false);
/// The first panic message of a shard thread while starting. glommio panics (rather than
/// returning an error) when it cannot set up io_uring at all; the other shards then panic on
/// its poisoned lazy static, so only the first message says anything.
static FIRST_PANIC: OnceLock<String> = OnceLock::new();

/// Installs (once per process) a panic hook that keeps shard threads quiet while they start;
/// any other panic, and every panic once started, goes to the previous hook as before.
pub(super) fn quiet_shard_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    STARTING.store(true, Ordering::SeqCst);
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let shard = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(SHARD_THREAD));
            if shard && STARTING.load(Ordering::SeqCst) {
                let _ = FIRST_PANIC.set(panic_text(info.payload()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Blocks until every shard listens, and hands the threads back. Fails at once, with the
/// cause, when a shard could not bind, a shard thread ended, or a signal came first.
pub(super) fn wait_for_shards(
    handles: PoolThreadHandles<()>,
    ready: &AtomicUsize,
    failed: &AtomicUsize,
    nr_shards: usize,
    node: &Node,
) -> Result<PoolThreadHandles<()>, StartError> {
    loop {
        if failed.load(Ordering::SeqCst) > 0 {
            return Err(StartError::Executors(
                "a shard failed to bind; see the log".into(),
            ));
        }
        if ready.load(Ordering::SeqCst) == nr_shards {
            STARTING.store(false, Ordering::SeqCst);
            return Ok(handles);
        }
        if node.shutting_down() {
            return Err(StartError::Executors(
                "stopped by a signal before every shard listened".into(),
            ));
        }
        if handles.handles().iter().any(|h| h.is_finished()) {
            return Err(StartError::Executors(why_ended(handles)));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A shard thread ended before listening. The usual causes (io_uring, memlock) stop every
/// shard within milliseconds, so give the others a moment and read their results; a shard
/// that did start waits for its peers forever and is not joined.
fn why_ended(handles: PoolThreadHandles<()>) -> String {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !handles.handles().iter().all(|h| h.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let error = if handles.handles().iter().all(|h| h.is_finished()) {
        handles.join_all().into_iter().find_map(Result::err)
    } else {
        None
    };
    // glommio checks this limit first, and reports it as an opaque I/O error: ask the system.
    if let Some(have) = memlock_limit().filter(|&l| l < MIN_MEMLOCK) {
        return format!(
            "the locked-memory limit (memlock) is {} KiB and io_uring needs at least {} KiB: \
             raise it (LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited`)",
            have / 1024,
            MIN_MEMLOCK / 1024
        );
    }
    if let Some(msg) = FIRST_PANIC.get() {
        return explain_panic(msg);
    }
    match error {
        Some(GlommioError::BuilderError(BuilderErrorKind::ThreadPanic(p))) => {
            explain_panic(&panic_text(p.as_ref()))
        }
        Some(e) => format!("{e} ({NEEDS})"),
        None => format!("a shard thread ended while starting ({NEEDS})"),
    }
}

/// glommio refuses to create an executor below this `RLIMIT_MEMLOCK` (its
/// `MIN_MEMLOCK_LIMIT`), even when CAP_IPC_LOCK would exempt the rings from it.
const MIN_MEMLOCK: libc::rlim_t = 512 * 1024;

/// The soft `RLIMIT_MEMLOCK` of this process, in bytes; `None` if unlimited or unknown.
fn memlock_limit() -> Option<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// What the shards need from the system, for causes not recognised more precisely.
const NEEDS: &str = "the shards need io_uring: Linux 5.8 or newer, not refused by seccomp, \
                     and a memlock limit of at least 512 KiB";

fn explain_panic(msg: &str) -> String {
    // glommio's words when it cannot create an io_uring instance to probe the kernel.
    if msg.contains("Failed to register a probe") {
        "io_uring is unavailable (glommio could not set up a ring): Raptor needs Linux 5.8 or \
         newer with io_uring allowed; a seccomp profile (Docker's default, for one) or \
         sysctl kernel.io_uring_disabled can refuse it"
            .into()
    } else {
        format!("a shard panicked: {} ({NEEDS})", msg.replace('\n', " "))
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
