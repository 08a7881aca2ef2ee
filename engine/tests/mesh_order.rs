//! Stress test of the cross-shard send path: with a tiny ring that is full most of the time,
//! messages from one shard to another arrive complete and in order (the overflow queue and
//! its drain task must never let a later message overtake an earlier one).

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use raptor_engine::shard::mesh::MeshOut;
use raptor_engine::shard::msg::{Query, ShardMsg};
use std::rc::Rc;

const N: u64 = 50_000;

#[test]
fn overflowing_ring_keeps_order() {
    let mesh = MeshBuilder::<ShardMsg, _>::full(2, 2);
    let handles = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(2))
        .on_all_shards(move || {
            let mesh = mesh.clone();
            async move {
                let (tx, mut rx) = mesh.join().await.unwrap();
                let me = tx.peer_id();
                let out = Rc::new(MeshOut::new(me, 2, Some(tx), 1_000_000));
                let o = out.clone();
                glommio::spawn_local(o.drain(1 - me, |_| {})).detach();
                if me == 0 {
                    for i in 0..N {
                        // Ids carry the sequence number; Query::Stats is the smallest message.
                        out.send(
                            1,
                            ShardMsg::Query {
                                from: 0,
                                id: i,
                                query: Query::Stats,
                            },
                        );
                        // Bursts and pauses, so the ring fills, the overflow drains, and
                        // direct sends interleave with the drain task.
                        if i % 3 == 0 {
                            futures_lite::future::yield_now().await;
                        }
                        if i % 500 == 0 {
                            glommio::timer::sleep(std::time::Duration::from_micros(50)).await;
                        }
                    }
                    // Let the drain task finish before the executor ends.
                    while out.backlog(1) > 0 {
                        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                    0
                } else {
                    let (_, r) = rx.streams().pop().unwrap();
                    let mut next = 0;
                    while next < N {
                        match r.recv().await {
                            Some(ShardMsg::Query { id, .. }) => {
                                assert_eq!(id, next, "out of order");
                                next += 1;
                                // A slow consumer now and then keeps the ring full.
                                if next % 64 == 0 {
                                    futures_lite::future::yield_now().await;
                                }
                                if next % 1000 == 0 {
                                    glommio::timer::sleep(std::time::Duration::from_micros(200))
                                        .await;
                                }
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    next
                }
            }
        })
        .unwrap();
    let results: Vec<u64> = handles.join_all().into_iter().map(|r| r.unwrap()).collect();
    assert!(results.contains(&N));
}
