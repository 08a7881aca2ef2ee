//! Once a second: server pings for silent clients, 4201 for clients that never answer, the
//! end of the grace period for sockets that are closing, and what a reload asks of the
//! shard ([`Shard::after_reload`]).

use super::Shard;
use crate::protocol::{codes, server as frames};
use crate::session::WriteState;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_secs(1);

pub async fn run(shard: Weak<Shard>) {
    loop {
        glommio::timer::sleep(TICK).await;
        let Some(shard) = shard.upgrade() else { return };
        let now = Instant::now();
        shard.tick(now);
        shard.after_reload();
        sweep(&shard, now);
        crate::xhr::tick(&shard, now);
    }
}

fn sweep(shard: &Rc<Shard>, now: Instant) {
    let activity = Duration::from_secs(shard.limits().activity_timeout_secs);
    let pong = Duration::from_secs(shard.limits().pong_timeout_secs);
    let grace = Duration::from_secs(shard.limits().close_grace_secs);
    let conns: Vec<_> = shard.conns.borrow().values().cloned().collect();
    let apps = shard.apps();
    for c in conns {
        match c.out.state() {
            WriteState::Open => {
                if let Some(t) = apps.get(c.app).authorized_connections_timeout_secs {
                    if !c.authorized.get()
                        && now.saturating_duration_since(c.connected_at) >= Duration::from_secs(t)
                    {
                        c.close_with_error(
                            codes::UNAUTHORIZED,
                            &format!("connection not authorized within {t} s"),
                            "connection unauthorized",
                        );
                        continue;
                    }
                }
                let idle = now.saturating_duration_since(c.last_seen.get());
                if !c.pinged.get() && idle >= activity {
                    c.pinged.set(true);
                    c.out.push(frames::ping());
                } else if c.pinged.get() && idle >= activity + pong {
                    tracing::info!(socket_id = %c.socket_id, "no pong after server ping, closing");
                    c.out
                        .close(codes::PONG_NOT_RECEIVED, "pong reply not received");
                }
            }
            WriteState::Closing { since } | WriteState::ShutWrite { since } => {
                if now.saturating_duration_since(since) >= grace {
                    c.out.abort();
                }
            }
            WriteState::Closed => {}
        }
    }
}
