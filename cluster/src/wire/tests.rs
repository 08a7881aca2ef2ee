//! Unit tests of `wire`.
use super::*;
use proptest::prelude::*;

fn s() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn exclude() -> impl Strategy<Value = Exclude> {
    proptest::option::of((any::<u64>(), any::<u64>()))
}

fn member() -> impl Strategy<Value = SyncMember> {
    (s(), s(), s(), proptest::option::of(s())).prop_map(|(app, channel, user_id, user_info)| {
        SyncMember {
            app,
            channel,
            user_id,
            user_info,
        }
    })
}

pub(crate) fn any_msg() -> impl Strategy<Value = NodeMsg> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (s(), s(), any::<u64>()).prop_map(|(cluster_id, node_id, generation)| {
            NodeMsg::Hello {
                cluster_id,
                node_id,
                generation,
            }
        }),
        (
            s(),
            s(),
            (s(), s(), proptest::option::of(s())),
            exclude(),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(
                |(app, channel, (name, data, user_id), exclude, retain, origin_seq)| {
                    NodeMsg::Publish {
                        app,
                        channel,
                        event: WireEvent {
                            name,
                            data,
                            user_id,
                        },
                        exclude,
                        retain,
                        confirm: !retain,
                        origin_seq,
                    }
                }
            ),
        (
            s(),
            s(),
            bytes,
            exclude(),
            any::<bool>(),
            proptest::option::of(s())
        )
            .prop_map(
                |(app, channel, payload, exclude, privileged_only, cache_data)| {
                    NodeMsg::Deliver {
                        app,
                        channel,
                        payload,
                        exclude,
                        privileged_only,
                        cache_data,
                    }
                }
            ),
        (s(), s(), any::<bool>(), any::<u64>()).prop_map(|(app, channel, on, ack)| {
            NodeMsg::Interest {
                app,
                channel,
                on,
                ack,
            }
        }),
        (s(), s(), s(), proptest::option::of(s())).prop_map(
            |(app, channel, user_id, user_info)| NodeMsg::PresenceJoin {
                app,
                channel,
                user_id,
                user_info,
            }
        ),
        (s(), s(), s()).prop_map(|(app, channel, user_id)| NodeMsg::PresenceLeave {
            app,
            channel,
            user_id
        }),
        (
            proptest::collection::vec(member(), 0..5),
            any::<bool>(),
            any::<u32>()
        )
            .prop_map(|(members, done, part)| NodeMsg::PresenceSync {
                members,
                done,
                part
            }),
        (s(), s()).prop_map(|(app, user)| NodeMsg::Terminate { app, user }),
        any::<u64>().prop_map(NodeMsg::Ping),
        any::<u64>().prop_map(NodeMsg::Pong),
        Just(NodeMsg::Leaving),
        (any::<u64>(), s(), query_kind()).prop_map(|(id, app, kind)| NodeMsg::Query {
            id,
            app,
            kind
        }),
        (any::<u64>(), answer_body()).prop_map(|(id, body)| NodeMsg::Answer { id, body }),
        (s(), s(), any::<u32>()).prop_map(|(app, channel, count)| NodeMsg::Count {
            app,
            channel,
            count
        }),
        (s(), s(), any::<u64>()).prop_map(|(app, channel, ack)| NodeMsg::InterestAck {
            app,
            channel,
            ack
        }),
        Just(NodeMsg::PresenceResync),
        (s(), s(), any::<bool>(), any::<u64>()).prop_map(|(app, pattern, on, ack)| {
            NodeMsg::Pattern {
                app,
                pattern,
                on,
                ack,
            }
        }),
        any::<u64>().prop_map(|ack| NodeMsg::PatternAck { ack }),
        (
            prop_oneof![
                Just(HandoffStep::Rerouted),
                Just(HandoffStep::Released),
                Just(HandoffStep::Seen)
            ],
            s(),
            s(),
            proptest::collection::vec(s(), 0..4)
        )
            .prop_map(|(step, old, new, peers)| NodeMsg::Handoff {
                step,
                old,
                new,
                peers
            }),
        (
            s(),
            s(),
            proptest::collection::vec((s(), s()), 0..4),
            exclude(),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(app, channel, chunks, exclude, confirm, origin_seq)| {
                NodeMsg::PublishChunks {
                    confirm,
                    app,
                    channel,
                    chunks: chunks
                        .into_iter()
                        .map(|(name, data)| WireEvent {
                            name,
                            data,
                            user_id: None,
                        })
                        .collect(),
                    exclude,
                    origin_seq,
                }
            }),
    ]
}

fn query_kind() -> impl Strategy<Value = QueryKind> {
    prop_oneof![
        s().prop_map(|channel| QueryKind::Channel { channel }),
        s().prop_map(|prefix| QueryKind::List { prefix }),
    ]
}

fn answer_body() -> impl Strategy<Value = AnswerBody> {
    prop_oneof![
        any::<u32>().prop_map(|subscription_count| AnswerBody::Channel { subscription_count }),
        (proptest::collection::vec(s(), 0..20), any::<bool>()).prop_map(|(channels, truncated)| {
            AnswerBody::List {
                channels,
                truncated,
            }
        }),
        Just(AnswerBody::Refused),
    ]
}

proptest! {
    #[test]
    fn round_trips_every_variant(msg in any_msg()) {
        let frame = encode(&msg).unwrap();
        prop_assert_eq!(frame.len() % 8, 0);
        prop_assert_eq!(&frame[..4], b"RPTR");
        prop_assert_eq!(frame[4], VERSION);
        prop_assert_eq!(frame[5], msg.tag() as u8);
        let (back, used) = decode(&frame).unwrap().unwrap();
        prop_assert_eq!(used, frame.len());
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn partial_frames_ask_for_more(msg in any_msg(), cut in 0usize..1000) {
        let frame = encode(&msg).unwrap();
        let cut = cut % frame.len();
        prop_assert_eq!(decode(&frame[..cut]).unwrap(), None);
    }

    #[test]
    fn unaligned_buffers_are_copied(msg in any_msg()) {
        let frame = encode(&msg).unwrap();
        let mut shifted = AlignedVec::<16>::new();
        shifted.extend_from_slice(&[0u8]);
        shifted.extend_from_slice(&frame);
        let (back, _) = decode(&shifted[1..]).unwrap().unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        tag in 0u8..16,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&MAGIC);
        frame.extend_from_slice(&[VERSION, tag, 0, 0]);
        frame.extend_from_slice(&(body.len() as u64).to_le_bytes());
        frame.extend_from_slice(&body);
        frame.resize(HEADER_LEN + pad8(body.len()), 0);
        let mut aligned = AlignedVec::<16>::new();
        aligned.extend_from_slice(&frame);
        let _ = decode(&aligned);
    }

    #[test]
    fn corrupted_frames_never_panic(msg in any_msg(), at in any::<usize>(), byte in any::<u8>()) {
        let mut frame = encode(&msg).unwrap();
        let at = at % frame.len();
        frame[at] = byte;
        let mut aligned = AlignedVec::<16>::new();
        aligned.extend_from_slice(&frame);
        let _ = decode(&aligned);
    }

    #[test]
    fn reader_splits_a_stream(msgs in proptest::collection::vec(any_msg(), 1..8), chunk in 1usize..97) {
        let mut stream = Vec::new();
        for m in &msgs {
            encode_into(m, &mut stream, DEFAULT_MAX_BODY).unwrap();
        }
        let mut reader = FrameReader::new(DEFAULT_MAX_BODY);
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            reader.extend(piece);
            while let Some(m) = reader.next_msg().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(reader.pending(), 0);
    }
}

#[test]
fn header_errors_are_typed() {
    let mut frame = encode(&NodeMsg::Ping(7)).unwrap();
    let good = frame.clone();
    frame[0] = b'X';
    assert!(matches!(decode(&frame), Err(WireError::BadMagic(_))));
    assert!(matches!(decode(b"XP"), Err(WireError::BadMagic(_))));
    assert_eq!(decode(b"RP"), Ok(None));

    let mut frame = good.clone();
    frame[4] = 1;
    assert_eq!(decode(&frame), Err(WireError::UnsupportedVersion(1)));

    let mut frame = good.clone();
    frame[5] = 200;
    assert_eq!(decode(&frame), Err(WireError::UnknownTag(200)));

    let mut frame = good.clone();
    frame[5] = Tag::Pong as u8;
    assert_eq!(
        decode(&frame),
        Err(WireError::TagMismatch {
            tag: Tag::Pong as u8,
            body: Tag::Ping
        })
    );

    let mut frame = good.clone();
    frame[6] = 1;
    assert_eq!(decode(&frame), Err(WireError::Reserved));

    let mut frame = good.clone();
    frame[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(decode(&frame), Err(WireError::TooLarge { .. })));
}

#[test]
fn oversized_messages_are_not_encoded() {
    let msg = NodeMsg::Deliver {
        app: "1".into(),
        channel: "c".into(),
        payload: vec![0; 2048],
        exclude: None,
        privileged_only: false,
        cache_data: None,
    };
    let mut out = vec![];
    assert!(matches!(
        encode_into(&msg, &mut out, 1024),
        Err(WireError::TooLarge { .. })
    ));
    assert!(out.is_empty());
    let frame = encode(&msg).unwrap();
    assert!(matches!(
        decode_with_limit(&frame, 1024),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn ping_frame_is_small_and_exact() {
    let frame = encode(&NodeMsg::Ping(0x0102030405060708)).unwrap();
    assert_eq!(&frame[..8], &[b'R', b'P', b'T', b'R', 2, 9, 0, 0]);
    let len = u64::from_le_bytes(frame[8..16].try_into().unwrap()) as usize;
    assert_eq!(frame.len(), HEADER_LEN + pad8(len));
    // An archived enum is as large as its largest variant (`Publish`), so even a ping
    // costs ~100 bytes; keepalives are two a second, so this does not matter.
    assert!(frame.len() <= 128, "{}", frame.len());
}

/// The `Deliver` example of docs/cluster-protocol.md, byte for byte.
#[test]
fn cache_deliver_frame_is_as_documented() {
    let msg = NodeMsg::Deliver {
        app: "1".into(),
        channel: "cache-x".into(),
        payload: vec![1, 2, 3],
        exclude: None,
        privileged_only: false,
        cache_data: Some("d".into()),
    };
    let mut want = vec![b'R', b'P', b'T', b'R', 2, 3, 0, 0, 88, 0, 0, 0, 0, 0, 0, 0];
    want.extend([1, 2, 3, 0, 0, 0, 0, 0]);
    want.extend([2, 0, 0, 0, b'1', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    want.extend(b"cache-x\xff");
    want.extend([0xe4, 0xff, 0xff, 0xff, 3, 0, 0, 0]);
    want.extend([0; 28]);
    want.extend([0, 0, 0, 0]);
    want.extend([1, 0, 0, 0, b'd', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    want.extend([0; 8]);
    assert_eq!(encode(&msg).unwrap(), want);
    // The union is still 80 bytes: a ping's body.
    assert_eq!(encode(&NodeMsg::Ping(1)).unwrap()[8], 80);
}

#[test]
fn query_and_answer_round_trip_with_their_tags() {
    let msgs = [
        NodeMsg::Query {
            id: 7,
            app: "1".into(),
            kind: QueryKind::Channel {
                channel: "presence-room".into(),
            },
        },
        NodeMsg::Query {
            id: u64::MAX,
            app: "app-with-a-long-id".into(),
            kind: QueryKind::List {
                prefix: String::new(),
            },
        },
        NodeMsg::Answer {
            id: 7,
            body: AnswerBody::Channel {
                subscription_count: 3,
            },
        },
        NodeMsg::Answer {
            id: 8,
            body: AnswerBody::List {
                channels: vec!["a".into(), "a-much-longer-channel-name".into()],
                truncated: true,
            },
        },
        NodeMsg::Answer {
            id: 9,
            body: AnswerBody::Refused,
        },
    ];
    let tags = [12, 12, 13, 13, 13];
    for (msg, tag) in msgs.iter().zip(tags) {
        let frame = encode(msg).unwrap();
        assert_eq!(frame[5], tag, "{msg:?}");
        let (back, used) = decode(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(&back, msg);
    }
    // The new variants do not grow the union: existing messages keep their bytes.
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}

#[test]
fn count_round_trips_with_tag_14_in_the_80_byte_union() {
    let msgs = [
        NodeMsg::Count {
            app: "1".into(),
            channel: "room".into(),
            count: 6,
        },
        NodeMsg::Count {
            app: "app-with-a-long-id".into(),
            channel: "a-much-longer-channel-name".into(),
            count: u32::MAX,
        },
    ];
    for msg in &msgs {
        let frame = encode(msg).unwrap();
        assert_eq!(frame[5], 14, "{msg:?}");
        let (back, used) = decode(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(&back, msg);
    }
    // Byte-exact, as docs/cluster-protocol.md shows it.
    let frame = encode(&msgs[0]).unwrap();
    let mut want = vec![0x52, 0x50, 0x54, 0x52, 2, 14, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0];
    want.extend([13, 0, 0, 0, 0x31, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    want.extend([0x72, 0x6f, 0x6f, 0x6d, 0xff, 0xff, 0xff, 0xff, 6, 0, 0, 0]);
    want.resize(96, 0);
    assert_eq!(frame, want);
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}

#[test]
fn query_with_an_answer_tag_is_refused() {
    let mut frame = encode(&NodeMsg::Query {
        id: 1,
        app: "1".into(),
        kind: QueryKind::List {
            prefix: "presence-".into(),
        },
    })
    .unwrap();
    frame[5] = Tag::Answer as u8;
    assert_eq!(
        decode(&frame),
        Err(WireError::TagMismatch {
            tag: 13,
            body: Tag::Query
        })
    );
}

/// `Interest` with an ack ticket and `InterestAck` (tag 15), byte for byte as
/// docs/cluster-protocol.md shows them; the union stays 80 bytes.
#[test]
fn interest_and_its_ack_are_as_documented() {
    let interest = NodeMsg::Interest {
        app: "1".into(),
        channel: "room".into(),
        on: true,
        ack: 7,
    };
    let ack = NodeMsg::InterestAck {
        app: "1".into(),
        channel: "room".into(),
        ack: 7,
    };
    let body = |discriminant: u8, on: u8| {
        let mut b = vec![
            discriminant,
            0,
            0,
            0,
            b'1',
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ];
        b.extend(b"room\xff\xff\xff\xff");
        b.extend([on, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        b.resize(80, 0);
        b
    };
    for (msg, tag, want_body) in [(interest, 4, body(3, 1)), (ack, 15, body(14, 0))] {
        let frame = encode(&msg).unwrap();
        let mut want = vec![
            b'R', b'P', b'T', b'R', 2, tag, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0,
        ];
        want.extend(want_body);
        assert_eq!(frame, want, "{msg:?}");
        let (back, used) = decode(&frame).unwrap().unwrap();
        assert_eq!((back, used), (msg, frame.len()));
    }
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}

/// Tag 17 carries every history message boxed: the union stays 80 bytes.
#[test]
fn history_messages_round_trip_with_tag_17() {
    use crate::wire::{HistoryAsk, HistoryMsg, HistoryReply, WireChange, WireEntry, WirePosition};
    let msgs = [
        HistoryMsg::Replicate {
            ack: 7,
            app: "1".into(),
            channel: "chat-a-much-longer-channel-name".into(),
            epoch: "AbCdEf123456".into(),
            entry: Some(WireEntry {
                offset: 42,
                kind: b'm',
                name: "e".into(),
                data: "{\"n\":1}".into(),
                user_id: Some("u".into()),
                time_ms: 1_700_000_000_000,
            }),
            change: Some(WireChange::Edit {
                offset: 3,
                data: "x".into(),
            }),
        },
        HistoryMsg::Replicated { ack: 7 },
        HistoryMsg::Published { origin_seq: 9 },
        HistoryMsg::Ask {
            id: 1,
            app: "1".into(),
            channel: "chat".into(),
            ask: HistoryAsk::Recover {
                from: Some(WirePosition {
                    offset: 5,
                    epoch: "E".into(),
                }),
            },
        },
        HistoryMsg::Reply {
            id: 1,
            reply: HistoryReply::Frames(vec![b"{}".to_vec(), vec![1; 300]]),
        },
        HistoryMsg::Reply {
            id: 2,
            reply: HistoryReply::Http {
                status: 404,
                body: b"{\"error\":\"x\"}".to_vec(),
            },
        },
        HistoryMsg::Handover {
            app: "1".into(),
            channel: "chat".into(),
            epoch: "E".into(),
            entries: vec![WireEntry {
                offset: 4,
                kind: b'm',
                name: "e".into(),
                data: "1".into(),
                user_id: None,
                time_ms: 1,
            }],
            first: true,
        },
    ];
    for m in msgs {
        let msg = NodeMsg::History(Box::new(m));
        let frame = encode(&msg).unwrap();
        assert_eq!(frame[5], 17, "{msg:?}");
        let (back, used) = decode(&frame).unwrap().unwrap();
        assert_eq!((back, used), (msg, frame.len()));
    }
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}

#[test]
fn pattern_registrations_round_trip_with_tag_19_in_the_80_byte_union() {
    let msg = NodeMsg::Pattern {
        app: "1".into(),
        pattern: "my-photo-gallery/*/comments".into(),
        on: true,
        ack: 7,
    };
    let frame = encode(&msg).unwrap();
    assert_eq!(frame[5], 19);
    let (back, used) = decode(&frame).unwrap().unwrap();
    assert_eq!((back, used), (msg, frame.len()));
    let ack = NodeMsg::PatternAck { ack: 7 };
    let frame = encode(&ack).unwrap();
    assert_eq!(frame[5], 22);
    assert_eq!(decode(&frame).unwrap().unwrap().0, ack);
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}

/// `PresenceUpdate` (tag 20), byte for byte as docs/cluster-protocol.md shows it; the union
/// stays 80 bytes.
#[test]
fn presence_update_is_as_documented() {
    let msg = NodeMsg::PresenceUpdate {
        ordered: true,
        app: "1".into(),
        channel: "presence".into(),
        user_id: "u1".into(),
        user_info: "{}".into(),
    };
    let frame = encode(&msg).unwrap();
    let mut want = vec![b'R', b'P', b'T', b'R', 2, 20, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0];
    want.extend([19, 1, 0, 0]);
    want.extend(b"1\xff\xff\xff\xff\xff\xff\xff");
    want.extend(b"presence");
    want.extend(b"u1\xff\xff\xff\xff\xff\xff");
    want.extend(b"{}\xff\xff\xff\xff\xff\xff");
    want.resize(96, 0);
    assert_eq!(frame, want);
    let (back, used) = decode(&frame).unwrap().unwrap();
    assert_eq!((back, used), (msg, frame.len()));
    let long = NodeMsg::PresenceUpdate {
        ordered: false,
        app: "app-with-a-long-id".into(),
        channel: "presence-a-much-longer-channel-name".into(),
        user_id: "a-user-id-of-some-length".into(),
        user_info: r#"{"name":"Ada","status":"away"}"#.into(),
    };
    let frame = encode(&long).unwrap();
    assert_eq!(frame[5], 20);
    assert_eq!(decode(&frame).unwrap().unwrap().0, long);
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}

/// Tag 21 carries the chunks of one large event; it does not grow the 80-byte union, so
/// every existing message keeps its bytes.
#[test]
fn publish_chunks_round_trips_with_tag_21_in_the_80_byte_union() {
    let msg = NodeMsg::PublishChunks {
        confirm: true,
        app: "1".into(),
        channel: "room".into(),
        chunks: (0..3)
            .map(|i| WireEvent {
                name: "chunked-big".into(),
                data: format!(
                    r#"{{"id":"a","index":{i},"chunk":"x","final":{},"count":3}}"#,
                    i == 2
                ),
                user_id: None,
            })
            .collect(),
        exclude: Some((1, 2)),
        origin_seq: 9,
    };
    let frame = encode(&msg).unwrap();
    assert_eq!(frame[5], 21);
    let (back, used) = decode(&frame).unwrap().unwrap();
    assert_eq!((back, used), (msg, frame.len()));
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}

/// `Handoff` (tag 23) round-trips in the 80-byte union.
#[test]
fn handoff_round_trips_with_tag_23_in_the_80_byte_union() {
    for step in [
        HandoffStep::Rerouted,
        HandoffStep::Released,
        HandoffStep::Seen,
    ] {
        let msg = NodeMsg::Handoff {
            step,
            old: "ws-1".into(),
            new: String::new(),
            peers: vec!["ws-2".into(), "ws-3".into()],
        };
        let frame = encode(&msg).unwrap();
        assert_eq!(frame[5], 23);
        let (back, used) = decode(&frame).unwrap().unwrap();
        assert_eq!((back, used), (msg, frame.len()));
    }
    let ping = encode(&NodeMsg::Ping(1)).unwrap();
    assert_eq!(u64::from_le_bytes(ping[8..16].try_into().unwrap()), 80);
}
