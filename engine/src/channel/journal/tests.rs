use super::*;

fn ev(ch: &str, epoch: &str, offset: u64, data: &str) -> Record {
    Record::Event {
        app: "1".into(),
        ch: ch.into(),
        epoch: epoch.into(),
        offset,
        kind: 'm',
        name: "e".into(),
        data: data.into(),
        user_id: None,
        time_ms: 1,
        edited: false,
        deleted: false,
    }
}

fn log(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        r.line(&mut out);
    }
    out
}

fn key(ch: &str) -> (String, String) {
    ("1".into(), ch.into())
}

#[test]
fn a_line_is_one_json_object() {
    let mut out = Vec::new();
    ev("c", "E", 3, "x\"y").line(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"t\":\"event\",\"app\":\"1\",\"ch\":\"c\",\"epoch\":\"E\",\"offset\":3,\"kind\":\"m\",\"name\":\"e\",\"data\":\"x\\\"y\",\"time_ms\":1}\n"
    );
}

#[test]
fn a_clean_log_keeps_its_epochs_and_events() {
    let mut r = Restored::default();
    r.read_log(&log(&[
        Record::Stream {
            app: "1".into(),
            ch: "c".into(),
            epoch: "E".into(),
            top: 0,
        },
        ev("c", "E", 1, "a"),
        ev("c", "E", 2, "b"),
        ev("c", "E", 3, "c"),
        Record::Edit {
            app: "1".into(),
            ch: "c".into(),
            epoch: "E".into(),
            offset: 2,
            data: "B".into(),
        },
        Record::Delete {
            app: "1".into(),
            ch: "c".into(),
            epoch: "E".into(),
            offset: 3,
        },
        Record::Clean,
    ]));
    let s = &r.streams[&key("c")];
    assert!(s.continuous);
    assert_eq!((s.epoch.as_str(), s.top), ("E", 3));
    let got: Vec<_> = s
        .events
        .iter()
        .map(|e| (e.offset, e.data.as_str(), e.edited, e.deleted))
        .collect();
    assert_eq!(
        got,
        [
            (1, "a", false, false),
            (2, "B", true, false),
            (3, "", false, true)
        ]
    );
}

#[test]
fn a_torn_or_unclean_log_is_not_continuous() {
    let mut bytes = log(&[ev("c", "E", 1, "a"), ev("c", "E", 2, "b"), Record::Clean]);
    bytes.extend_from_slice(b"{\"t\":\"event\",\"app\":\"1\",\"ch\"");
    let mut r = Restored::default();
    r.read_log(&bytes);
    let s = &r.streams[&key("c")];
    assert_eq!(
        (s.top, s.continuous),
        (2, true),
        "the torn line is the last"
    );
    let mut r = Restored::default();
    r.read_log(&log(&[ev("c", "E", 1, "a")]));
    assert!(!r.streams[&key("c")].continuous);
}

#[test]
fn removals_gaps_new_epochs_and_forgets() {
    let mut r = Restored::default();
    r.read_log(&log(&[
        ev("c", "E", 1, "a"),
        ev("c", "E", 2, "b"),
        Record::Remove {
            app: "1".into(),
            ch: "c".into(),
        },
        ev("c", "E", 3, "c"),
        ev("c", "E", 3, "dup"),
        ev("c", "E", 5, "after a gap"),
        ev("d", "E", 1, "x"),
        ev("d", "F", 1, "new epoch"),
        ev("g", "E", 1, "gone"),
        Record::Forget {
            app: "1".into(),
            ch: "g".into(),
        },
    ]));
    let c = &r.streams[&key("c")];
    let offs: Vec<u64> = c.events.iter().map(|e| e.offset).collect();
    assert_eq!((c.top, offs), (5, vec![5]));
    let d = &r.streams[&key("d")];
    assert_eq!(
        (d.epoch.as_str(), d.events[0].data.as_str()),
        ("F", "new epoch")
    );
    assert!(!r.streams.contains_key(&key("g")));
    // Another log with a lower position for "c" does not replace it.
    r.read_log(&log(&[ev("c", "Z", 1, "old"), Record::Clean]));
    assert_eq!(r.streams[&key("c")].epoch, "E");
}
