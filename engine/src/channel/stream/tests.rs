use super::*;
use crate::channel::history::Kind;

fn stored(data: &str, at: Instant) -> Stored {
    Stored {
        frame: Frame::text(data.as_bytes()),
        data: Arc::from(data),
        stored: at,
    }
}

#[test]
fn a_cache_stream_keeps_the_last_event_for_its_ttl() {
    let t0 = Instant::now();
    let mut s = ChannelStream::default();
    assert!(s.last(t0).is_none());
    s.append(stored("one", t0));
    s.append(stored("two", t0 + Duration::from_secs(1)));
    let (e, left) = s.last(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!((&*e.data, left), ("two", CACHE_TTL));
    assert_eq!(s.retained.len(), 1, "capacity 1");
    let late = t0 + Duration::from_secs(1) + CACHE_TTL;
    assert!(s.last(late).is_none());
}

#[test]
fn streams_are_per_app_and_channel_and_expire_whole() {
    let t0 = Instant::now();
    let mut all = ChannelStreams::new(HistorySettings::default());
    let c: Arc<str> = Arc::from("cache-x");
    all.append(3, &c, Frame::text(b"f"), Arc::from("d"), t0);
    assert!(all.last(3, "cache-x", t0).is_some());
    assert!(all.last(0, "cache-x", t0).is_none());
    assert!(all.last(3, "cache-y", t0).is_none());
    all.expire(t0 + CACHE_TTL);
    assert!(
        all.last(3, "cache-x", t0).is_none(),
        "the stream itself is gone"
    );
    assert!(all.apps.get(3).unwrap().is_empty());
}

fn entry(offset: u64, len: usize, at: Instant) -> Entry {
    Entry {
        offset,
        kind: Kind::Message,
        name: "m".into(),
        data: Arc::from("x".repeat(len)),
        user_id: None,
        frame: Frame::text(b""),
        time_ms: 0,
        stored: at,
        edited: false,
        deleted: false,
    }
}

fn settings(max_bytes: usize, max_channels: usize) -> HistorySettings {
    HistorySettings {
        max_bytes_per_shard: max_bytes,
        max_channels_per_shard: max_channels,
        ..HistorySettings::default()
    }
}

#[test]
fn history_takes_dense_offsets_per_channel() {
    let t0 = Instant::now();
    let mut all = ChannelStreams::new(HistorySettings::default());
    let rule = HistoryRule::new("*");
    let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
    let p0 = all.position(0, &a, &rule, t0);
    assert_eq!(p0.offset, 0);
    for _ in 0..3 {
        all.append_history(0, &a, &rule, t0, |o| entry(o, 10, t0));
    }
    all.append_history(0, &b, &rule, t0, |o| entry(o, 10, t0));
    let pa = all.position(0, &a, &rule, t0);
    assert_eq!((pa.epoch.clone(), pa.offset), (p0.epoch, 3), "same epoch");
    assert_eq!(all.history(0, "b").unwrap().top(), 1);
    assert_ne!(all.history(0, "b").unwrap().epoch(), &pa.epoch);
    assert_eq!(all.figures().channels, 2);
    assert_eq!(all.figures().bytes, 4 * entry(0, 10, t0).bytes());
}

#[test]
fn the_byte_bound_drops_the_least_recently_appended_channel_first() {
    let t0 = Instant::now();
    let one = entry(0, 1000, t0).bytes();
    let mut all = ChannelStreams::new(settings(3 * one, 100));
    let rule = HistoryRule::new("*");
    let names: Vec<Arc<str>> = ["a", "b", "c", "d"].iter().map(|s| Arc::from(*s)).collect();
    for n in &names {
        all.append_history(0, n, &rule, t0, |o| entry(o, 1000, t0));
    }
    // "a" was appended least recently: its events are gone, its position is not.
    let a = all.history(0, "a").unwrap();
    assert!(a.is_empty());
    assert_eq!(a.top(), 1);
    for n in &names[1..] {
        assert_eq!(all.history(0, n).unwrap().len(), 1);
    }
    assert_eq!(all.figures().bytes, 3 * one);
    // A channel alone over the bound loses its oldest events, never its newest.
    let mut all = ChannelStreams::new(settings(3 * one, 100));
    for _ in 0..5 {
        all.append_history(0, &names[0], &rule, t0, |o| entry(o, 1000, t0));
    }
    let a = all.history(0, "a").unwrap();
    let offs: Vec<u64> = a.entries().map(|e| e.offset).collect();
    assert_eq!((a.top(), offs), (5, vec![3, 4, 5]));
    assert_eq!(all.figures().bytes, 3 * one);
    let mut all = ChannelStreams::new(settings(one - 1, 100));
    all.append_history(0, &names[0], &rule, t0, |o| entry(o, 1000, t0));
    assert_eq!(
        all.history(0, "a").unwrap().len(),
        1,
        "one event always fits"
    );
}

#[test]
fn the_position_bound_forgets_the_least_recently_appended_channel() {
    let t0 = Instant::now();
    let mut all = ChannelStreams::new(settings(1 << 20, 2));
    let rule = HistoryRule::new("*");
    let names: Vec<Arc<str>> = ["a", "b", "c"].iter().map(|s| Arc::from(*s)).collect();
    for n in &names {
        all.append_history(0, n, &rule, t0, |o| entry(o, 10, t0));
    }
    assert!(
        all.history(0, "a").is_none(),
        "forgotten: a new epoch next time"
    );
    assert_eq!(all.figures().channels, 2);
    assert_eq!(all.figures().bytes, 2 * entry(0, 10, t0).bytes());
}

#[test]
fn positions_outlive_their_events_until_the_position_ttl() {
    let t0 = Instant::now();
    let mut all = ChannelStreams::new(HistorySettings {
        position_ttl_secs: 600,
        ..HistorySettings::default()
    });
    let mut rule = HistoryRule::new("*");
    rule.ttl_secs = 10;
    let a: Arc<str> = Arc::from("a");
    all.append_history(0, &a, &rule, t0, |o| entry(o, 10, t0));
    all.expire(t0 + Duration::from_secs(10));
    let h = all.history(0, "a").unwrap();
    assert_eq!((h.len(), h.top()), (0, 1));
    assert_eq!(all.figures().bytes, 0);
    all.expire(t0 + Duration::from_secs(600));
    assert!(all.history(0, "a").is_none());
    assert_eq!(all.figures(), HistoryFigures::default());
    assert!(all.apps.get(0).unwrap().is_empty());
}

#[test]
fn changes_keep_the_byte_count() {
    let t0 = Instant::now();
    let mut all = ChannelStreams::new(HistorySettings::default());
    let rule = HistoryRule::new("*");
    let a: Arc<str> = Arc::from("a");
    all.append_history(0, &a, &rule, t0, |o| entry(o, 10, t0));
    all.append_history(0, &a, &rule, t0, |o| entry(o, 10, t0));
    all.change(0, "a", |h| h.delete(1)).unwrap().unwrap();
    assert_eq!(all.figures().bytes, all.history(0, "a").unwrap().bytes());
    all.change(0, "a", |h| h.clear()).unwrap();
    assert_eq!(all.figures().bytes, 0);
    assert!(all.change(0, "zz", |h| h.clear()).is_none());
}

#[test]
fn a_snapshot_reads_back_whole() {
    use crate::channel::journal::Restored;
    let t0 = Instant::now();
    let mut all = ChannelStreams::new(HistorySettings::default());
    let mut rule = HistoryRule::new("*");
    rule.size = 3;
    let (a, empty): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("empty"));
    for _ in 0..5 {
        all.append_history(0, &a, &rule, t0, |o| entry(o, 10, t0));
    }
    all.position(0, &empty, &rule, t0);
    let mut bytes = Vec::new();
    for r in all.snapshot(|_| Some("1".to_string())) {
        r.line(&mut bytes);
    }
    Record::Clean.line(&mut bytes);
    let mut back = Restored::default();
    back.read_log(&bytes);
    let s = &back.streams[&("1".to_string(), "a".to_string())];
    let offs: Vec<u64> = s.events.iter().map(|e| e.offset).collect();
    assert_eq!(
        (s.top, offs),
        (5, vec![3, 4, 5]),
        "the kept ring, not only the position"
    );
    assert_eq!(s.epoch, **all.history(0, "a").unwrap().epoch());
    let e = &back.streams[&("1".to_string(), "empty".to_string())];
    assert_eq!((e.top, e.events.len()), (0, 0));
}

#[test]
fn a_change_after_the_clean_mark_is_reported_once() {
    let t0 = Instant::now();
    let mut all = ChannelStreams::new(HistorySettings::default());
    all.keep_journal();
    let rule = HistoryRule::new("*");
    let a: Arc<str> = Arc::from("a");
    all.append_history(0, &a, &rule, t0, |o| entry(o, 10, t0));
    assert!(!all.take_dirty(), "not sealed yet");
    all.seal();
    assert!(!all.take_dirty(), "nothing changed since");
    all.append_history(0, &a, &rule, t0, |o| entry(o, 10, t0));
    assert!(all.take_dirty());
    assert!(!all.take_dirty(), "once");
    // A failed write: the next one is a whole rewrite.
    all.must_rewrite();
    assert!(matches!(all.take_journal(), Some(Pending::Snapshot)));
}
