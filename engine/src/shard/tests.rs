//! A shard outside a server: what it answers to messages that should not reach it.

use super::msg::{Query, ShardMsg};
use super::Shard;
use crate::app::Apps;
use crate::config::{AppConfig, Limits};
use crate::shard::mesh::MeshOut;
use std::rc::Rc;
use std::sync::Arc;

/// One shard of a one-shard node, in cluster mode or not, without a gateway.
fn shard(clustered: bool) -> Rc<Shard> {
    let apps = Apps::new(&[AppConfig::new("1", "k", "s")]);
    let live = Arc::new(crate::live::Live::new(apps, Limits::default(), None));
    let mesh = Rc::new(MeshOut::new(0, 1, None, 16));
    Shard::new(
        0,
        1,
        live,
        mesh,
        crate::webhook::Webhooks::disabled(),
        Arc::default(),
        clustered,
    )
}

fn in_executor(f: impl FnOnce() + Send + 'static) {
    glommio::LocalExecutorBuilder::default()
        .spawn(|| async move { f() })
        .unwrap()
        .join()
        .unwrap();
}

/// A gateway-only question on a shard without the gateway, or a single-node question in a
/// cluster, is refused as `Misrouted`: never zeros or one node's part passed off as the
/// answer. (Compared by their Debug text, so the test also runs against code without
/// `Misrouted`.)
#[test]
fn misrouted_queries_are_refused_not_answered_with_data() {
    in_executor(|| {
        let counts = || Query::UserCounts {
            app: 0,
            channels: vec!["presence-a".into()],
        };
        let members = || Query::Members {
            app: 0,
            channel: Arc::from("presence-a"),
        };
        let answer = |s: &Shard, q| format!("{:?}", s.answer(q));
        let clustered = shard(true);
        assert_eq!(answer(&clustered, counts()), "Misrouted");
        assert_eq!(answer(&clustered, members()), "Misrouted");
        let single = shard(false);
        assert_eq!(answer(&single, counts()), "Misrouted");
        assert_eq!(answer(&single, members()), "Members([])");
    });
}

/// A gateway message on a shard without the gateway is dropped with an error, not a panic.
#[test]
fn gateway_messages_on_another_shard_do_not_panic() {
    in_executor(|| {
        let s = shard(true);
        s.handle(ShardMsg::ClusterTerminate {
            app: 0,
            user: Arc::from("u"),
        });
        s.handle(ShardMsg::ClusterLeave {
            app: 0,
            channel: Arc::from("presence-a"),
            user: Arc::from("u"),
        });
    });
}

/// A connection whose handshake found its app just before a reload removed it is refused at
/// admission with 4001 (the sweep of removed apps' connections may have run already).
#[test]
fn admission_refuses_an_app_removed_since_the_handshake() {
    in_executor(|| {
        let s = shard(false);
        let old = s.app(0);
        let (next, _) = s.apps().reloaded(&[AppConfig::new("2", "k2", "s2")]);
        s.live.apply(crate::live::Update {
            apps: Some(Arc::new(next)),
            ..Default::default()
        });
        assert_eq!(s.admit(&old), Err((4001, "App removed")));
        assert_eq!(
            old.counters
                .connections
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        let new = s.apps().by_key("k2").cloned().unwrap();
        assert_eq!(s.admit(&new), Ok(()));
    });
}
