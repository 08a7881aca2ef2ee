use super::*;

fn entry(offset: u64, data: &str, at: Instant) -> Entry {
    Entry {
        offset,
        kind: Kind::Message,
        name: "m".into(),
        data: Arc::from(data),
        user_id: None,
        frame: Frame::text(format!("f{offset}:{data}").as_bytes()),
        time_ms: 0,
        stored: at,
        edited: false,
        deleted: false,
    }
}

fn filled(n: u64, size: usize, t0: Instant) -> History {
    let mut h = History::new(Arc::from("E"), 0, size, Duration::from_secs(60));
    for i in 1..=n {
        h.push(entry(i, &format!("d{i}"), t0));
    }
    h
}

fn payloads(r: &Recovery) -> Vec<String> {
    r.frames
        .iter()
        .map(|f| String::from_utf8(f.payload().to_vec()).unwrap())
        .collect()
}

fn at(epoch: &str, offset: u64) -> Position {
    Position {
        epoch: Arc::from(epoch),
        offset,
    }
}

#[test]
fn offsets_are_dense_and_the_ring_keeps_size() {
    let h = filled(5, 3, Instant::now());
    assert_eq!(h.top(), 5);
    assert_eq!(h.len(), 3);
    assert_eq!(h.next_offset(), 6);
    let offs: Vec<u64> = h.entries().map(|e| e.offset).collect();
    assert_eq!(offs, [3, 4, 5]);
}

#[test]
fn recovers_everything_after_a_position_or_nothing() {
    let h = filled(10, 5, Instant::now());
    let r = h.recover(&at("E", 7), 300, usize::MAX);
    assert!(r.recovered);
    assert_eq!(payloads(&r), ["f8:d8", "f9:d9", "f10:d10"]);
    // At the top: recovered, nothing to replay.
    let r = h.recover(&at("E", 10), 300, usize::MAX);
    assert!(r.recovered && r.frames.is_empty());
    // The oldest kept event is 6: from 5 is still complete, from 4 is not.
    assert!(h.recover(&at("E", 5), 300, usize::MAX).recovered);
    let r = h.recover(&at("E", 4), 300, usize::MAX);
    assert!(!r.recovered && r.frames.is_empty());
    // Another epoch, a position ahead of the top, more than the cap: nothing.
    assert!(!h.recover(&at("X", 9), 300, usize::MAX).recovered);
    assert!(!h.recover(&at("E", 11), 300, usize::MAX).recovered);
    let r = h.recover(&at("E", 7), 2, usize::MAX);
    assert!(!r.recovered && r.frames.is_empty());
    assert!(h.recover(&at("E", 7), 3, usize::MAX).recovered);
}

#[test]
fn the_position_outlives_expired_and_removed_events() {
    let t0 = Instant::now();
    let mut h = filled(4, 10, t0);
    assert!(h.bytes() > 0);
    h.expire(t0 + Duration::from_secs(59));
    assert_eq!(h.len(), 4);
    h.expire(t0 + Duration::from_secs(60));
    assert!(h.is_empty());
    assert_eq!((h.top(), h.bytes()), (4, 0));
    assert!(
        h.recover(&at("E", 4), 300, usize::MAX).recovered,
        "at the top"
    );
    assert!(
        !h.recover(&at("E", 3), 300, usize::MAX).recovered,
        "data aged out"
    );
    let mut h = filled(4, 10, t0);
    assert!(h.clear() > 0);
    assert_eq!((h.top(), h.next_offset()), (4, 5));
}

#[test]
fn edits_change_the_entry_and_deletes_leave_a_tombstone() {
    let t0 = Instant::now();
    let mut h = filled(3, 10, t0);
    let before = h.bytes();
    h.edit(2, Arc::from("new data"), "c").unwrap();
    let edited = h.entries().nth(1).unwrap();
    assert!(edited.edited);
    assert_eq!(
        std::str::from_utf8(edited.frame.payload()).unwrap(),
        r#"{"event":"m","channel":"c","data":"new data","offset":2}"#
    );
    assert_eq!(
        h.bytes(),
        before - "f2:d2d2".len() + edited.frame.payload().len() + 8
    );
    h.delete(3).unwrap();
    assert_eq!(h.delete(3), Err(ChangeError::Deleted));
    assert_eq!(h.changeable(4), Err(ChangeError::NotFound));
    assert_eq!(h.changeable(0), Err(ChangeError::NotFound));
    let r = h.recover(&at("E", 0), 300, usize::MAX);
    assert_eq!(
        payloads(&r),
        [
            "f1:d1",
            r#"{"event":"m","channel":"c","data":"new data","offset":2}"#
        ],
        "the tombstone is skipped"
    );
    let read: Vec<u64> = h.read(None, 10, false).iter().map(|e| e.offset).collect();
    assert_eq!(read, [1, 2]);
    let mut edit = entry(4, "{}", t0);
    edit.kind = Kind::Edit;
    h.push(edit);
    assert_eq!(h.changeable(4), Err(ChangeError::NotAMessage));
}

#[test]
fn reads_page_from_either_end() {
    let h = filled(6, 10, Instant::now());
    let offs = |v: Vec<&Entry>| v.iter().map(|e| e.offset).collect::<Vec<_>>();
    assert_eq!(offs(h.read(None, 2, false)), [1, 2]);
    assert_eq!(offs(h.read(None, 2, true)), [6, 5]);
    assert_eq!(offs(h.read(Some(4), 10, false)), [5, 6]);
    assert_eq!(offs(h.read(Some(4), 1, true)), [6]);
    assert!(h.read(Some(6), 10, false).is_empty());
}

#[test]
fn a_smaller_size_trims_at_once() {
    let mut h = filled(6, 10, Instant::now());
    assert!(h.set_bounds(2, Duration::from_secs(1)) > 0);
    assert_eq!(h.len(), 2);
}

#[test]
fn epochs_differ() {
    let a = new_epoch();
    assert_eq!(a.len(), 12);
    assert_ne!(a, new_epoch());
}

#[test]
fn a_replay_over_the_byte_cap_is_not_recovered() {
    let h = filled(10, 10, Instant::now());
    // Frames "f8:d8", "f9:d9", "f10:d10": 5 + 5 + 7 bytes.
    assert!(h.recover(&at("E", 7), 300, 17).recovered);
    let r = h.recover(&at("E", 7), 300, 16);
    assert!(!r.recovered && r.frames.is_empty());
}
