//! A shard outside a server: what it answers to messages that should not reach it.

use super::gateway::ToGateway;
use super::msg::{GatewayMsg, Query, ShardMsg};
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

/// A single-node question in a cluster is refused as `Misrouted`: never one node's part
/// passed off as the answer. (Compared by their Debug text.)
#[test]
fn misrouted_queries_are_refused_not_answered_with_data() {
    in_executor(|| {
        let members = || Query::Members {
            app: 0,
            channel: Arc::from("presence-a"),
        };
        let answer = |s: &Shard, q| format!("{:?}", s.answer(q));
        assert_eq!(answer(&shard(true), members()), "Misrouted");
        assert_eq!(answer(&shard(false), members()), "Members([])");
    });
}

/// A gateway message on a shard without the gateway (which `to_gateway` never sends, but a
/// bug might) is dropped with an error, not a panic; a question gets `Misrouted`.
#[test]
fn gateway_messages_on_another_shard_do_not_panic() {
    in_executor(|| {
        let s = shard(true);
        let by_hand = |m| ShardMsg::Gateway(ToGateway::by_hand(m));
        s.handle(by_hand(GatewayMsg::Terminate {
            app: 0,
            user: Arc::from("u"),
        }));
        s.handle(by_hand(GatewayMsg::Leave {
            app: 0,
            channel: Arc::from("presence-a"),
            user: Arc::from("u"),
        }));
        s.handle(by_hand(GatewayMsg::UserCounts {
            from: 0,
            id: 1,
            app: 0,
            channels: vec!["presence-a".into()],
        }));
        s.handle(by_hand(GatewayMsg::Publish {
            app: 0,
            channel: Arc::from("a"),
            event: crate::channel::event::Event {
                name: "e".into(),
                data: Arc::from("{}"),
                user_id: None,
                source: crate::channel::event::Source::Api,
            },
            exclude: None,
            t0: std::time::Instant::now(),
            ack: Some((0, 2)),
        }));
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
