"""Events published with PyPI `pusher` 3.3.4 reach a WebSocket subscriber byte-exact.

The Python SDK JSON-encodes dict data with Python's default separators (`{"message": "hello"}`,
with a space); the server must relay `data` as that exact string.
"""

import json

import pusher.errors
import pytest

from conftest import APP_SECRET, wait_until


def test_trigger_dict_data_exact_frame(sdk, subscribers, channel_name):
    c = channel_name()
    sub = subscribers()
    sub.subscribe(c)

    assert sdk.trigger(c, "my-event", {"message": "hello"}) == {}

    frame = sub.recv_json()
    assert frame == {"event": "my-event", "channel": c, "data": '{"message": "hello"}'}


def test_trigger_string_data_exact_frame(sdk, subscribers, channel_name):
    c = channel_name()
    sub = subscribers()
    sub.subscribe(c)

    sdk.trigger(c, "my-event", "raw string with \"quotes\", a \\ backslash and ünïcödé")

    frame = sub.recv_json()
    assert frame == {
        "event": "my-event",
        "channel": c,
        "data": "raw string with \"quotes\", a \\ backslash and ünïcödé",
    }


def test_trigger_preencoded_json_string_is_not_reencoded(sdk, subscribers, channel_name):
    c = channel_name()
    sub = subscribers()
    sub.subscribe(c)

    # Odd but legal spacing/ordering: the server must not normalise it.
    payload = '{ "b" :2,"a": [1,  2] }'
    sdk.trigger(c, "my-event", payload)

    frame = sub.recv_json()
    assert frame == {"event": "my-event", "channel": c, "data": payload}


def test_trigger_multiple_channels(sdk, subscribers, channel_name):
    c1, c2, c3 = channel_name(), channel_name(), channel_name()
    a = subscribers()
    b = subscribers()
    a.subscribe(c1)
    a.subscribe(c2)
    b.subscribe(c2)
    # c3 has no subscribers.

    sdk.trigger([c1, c2, c3], "multi", {"n": 1})

    got_a = [a.recv_json(), a.recv_json()]
    assert sorted(got_a, key=lambda f: f["channel"]) == sorted(
        [
            {"event": "multi", "channel": c1, "data": '{"n": 1}'},
            {"event": "multi", "channel": c2, "data": '{"n": 1}'},
        ],
        key=lambda f: f["channel"],
    )
    assert b.recv_json() == {"event": "multi", "channel": c2, "data": '{"n": 1}'}
    a.expect_nothing()
    b.expect_nothing()


def test_trigger_batch(sdk, subscribers, channel_name):
    c1, c2 = channel_name(), channel_name()
    sub = subscribers()
    sub.subscribe(c1)
    sub.subscribe(c2)

    resp = sdk.trigger_batch(
        [
            {"channel": c1, "name": "e1", "data": {"a": 1}},
            {"channel": c2, "name": "e2", "data": "s"},
            {"channel": c1, "name": "e3", "data": {"b": [1, 2]}},
        ]
    )
    assert resp == {} or (isinstance(resp.get("batch"), list) and len(resp["batch"]) == 3), resp

    got = [sub.recv_json() for _ in range(3)]
    # Per-channel order must follow the batch order.
    assert [f for f in got if f["channel"] == c1] == [
        {"event": "e1", "channel": c1, "data": '{"a": 1}'},
        {"event": "e3", "channel": c1, "data": '{"b": [1, 2]}'},
    ]
    assert [f for f in got if f["channel"] == c2] == [{"event": "e2", "channel": c2, "data": "s"}]
    sub.expect_nothing()


def test_socket_id_exclusion(sdk, subscribers, channel_name):
    c = channel_name()
    excluded = subscribers()
    other = subscribers()
    excluded.subscribe(c)
    other.subscribe(c)

    sdk.trigger(c, "not-for-sender", {"x": 1}, socket_id=excluded.socket_id)
    assert other.recv_json() == {"event": "not-for-sender", "channel": c, "data": '{"x": 1}'}

    # Barrier: the next (non-excluded) event must be the first thing the excluded socket sees.
    sdk.trigger(c, "for-all", {"x": 2})
    assert excluded.recv_json() == {"event": "for-all", "channel": c, "data": '{"x": 2}'}
    assert other.recv_json() == {"event": "for-all", "channel": c, "data": '{"x": 2}'}
    excluded.expect_nothing()


def test_ordering_100_sequential_triggers(sdk, subscribers, channel_name):
    c = channel_name()
    sub = subscribers()
    sub.subscribe(c)
    for i in range(100):
        sdk.trigger(c, "seq", {"i": i})
    got = [sub.recv_json(timeout=10) for _ in range(100)]
    assert [json.loads(f["data"])["i"] for f in got] == list(range(100))
    assert {f["event"] for f in got} == {"seq"}


def test_no_delivery_after_unsubscribe(sdk, subscribers, channel_name):
    c = channel_name()
    leaver = subscribers()
    stayer = subscribers()
    leaver.subscribe(c)
    stayer.subscribe(c)
    leaver.unsubscribe(c)

    count = wait_until(
        lambda: sdk.channel_info(c, ["subscription_count"]).get("subscription_count"), 1, timeout=3
    )
    assert count == 1

    sdk.trigger(c, "after", "x")
    assert stayer.recv_json() == {"event": "after", "channel": c, "data": "x"}
    leaver.expect_nothing()


def test_bad_secret_is_rejected_with_401(server, subscribers, channel_name):
    import pusher as pusher_mod

    c = channel_name()
    sub = subscribers()
    sub.subscribe(c)
    bad = pusher_mod.Pusher(
        app_id="1", key="app-key", secret=APP_SECRET + "-wrong", host="127.0.0.1", port=server.port, ssl=False
    )
    with pytest.raises(pusher.errors.PusherBadAuth):
        bad.trigger(c, "forged", {"x": 1})
    with pytest.raises(pusher.errors.PusherBadAuth):
        bad.channels_info()
    sub.expect_nothing()
