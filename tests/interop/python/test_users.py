"""Users and presence with PyPI `pusher` 3.3.4 and a raw `websockets` subscriber.

* `authenticate_user(socket_id, user_data)` signs the `pusher:signin` frame sent by hand;
  `send_to_user()` (a trigger on `#server-to-user-{id}`) reaches every connection of that user;
  `terminate_user_connections()` (posted to /users/{id}/terminate_connections, without the
  /apps/{id} prefix) sends pusher:error 4009 and closes with 4009.
* `authenticate(channel="presence-…", socket_id, custom_data)` signs a presence subscription;
  `users_info()` and `channel_info(…, ["user_count"])` see the member.

Wire contract: docs/protocol.md ("Users", "Presence").
"""

from __future__ import annotations

import itertools
import json
import os
import time

from websockets.exceptions import ConnectionClosed

from conftest import WAIT_S, wait_until

_users = itertools.count(1)


def unique_user(prefix: str = "py-user") -> str:
    return f"{prefix}-{os.getpid()}-{next(_users)}"


def signin(sdk, sub, user_data: dict) -> None:
    """Sign in as pusher-js does, then subscribe to #server-to-user-{id} (pusher-js does that too)."""
    auth = sdk.authenticate_user(sub.socket_id, user_data)
    # The SDK's own output: key:hex(HMAC) over "socket_id::user::user_data" and the JSON it signed.
    assert auth["user_data"] == json.dumps(user_data)
    assert auth["auth"].startswith("app-key:")
    sub.send({"event": "pusher:signin", "data": {"auth": auth["auth"], "user_data": auth["user_data"]}})
    ok = sub.recv_json()
    assert ok["event"] == "pusher:signin_success", ok
    # docs/protocol.md: signin_success carries `data` as an object (pusher-js accepts both forms).
    assert ok["data"] == {"user_data": auth["user_data"]}, ok
    sub.subscribe(f"#server-to-user-{user_data['id']}")


def recv_until_closed(sub, timeout: float = WAIT_S):
    """Read frames until the server closes; return (frames as dicts, close code)."""
    frames = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"connection not closed within {timeout}s; frames: {frames}")
        try:
            frames.append(json.loads(sub.recv(remaining)))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, f"no close frame received ({closed!r})"
            return frames, closed.rcvd.code


def test_send_to_user_reaches_every_connection_of_the_user(sdk, subscribers):
    user = unique_user()
    a1, a2, other = subscribers(), subscribers(), subscribers()
    signin(sdk, a1, {"id": user})
    signin(sdk, a2, {"id": user, "user_info": {"name": "Py"}})
    other_user = unique_user("py-other")
    signin(sdk, other, {"id": other_user})

    assert sdk.send_to_user(user, "ev", {"message": "hi", "n": 1}) == {}
    expected = {"event": "ev", "channel": f"#server-to-user-{user}", "data": '{"message": "hi", "n": 1}'}
    assert a1.recv_json() == expected
    assert a2.recv_json() == expected

    # The other user gets only its own event, sent afterwards.
    sdk.send_to_user(other_user, "ev", "for other")
    assert other.recv_json() == {"event": "ev", "channel": f"#server-to-user-{other_user}", "data": "for other"}
    a1.expect_nothing()
    a2.expect_nothing()


def test_server_to_user_channel_refused_when_not_signed_in_as_that_user(sdk, subscribers):
    user = unique_user()
    sub = subscribers()
    signin(sdk, sub, {"id": unique_user("py-someone-else")})
    sub.send({"event": "pusher:subscribe", "data": {"auth": "", "channel": f"#server-to-user-{user}"}})
    frame = sub.recv_json()
    assert frame["event"] == "pusher:subscription_error", frame
    assert frame["channel"] == f"#server-to-user-{user}"
    data = json.loads(frame["data"])
    assert (data["type"], data["status"]) == ("AuthError", 403), frame


def test_terminate_user_connections_closes_with_4009(sdk, subscribers):
    user = unique_user()
    a1, a2, other, anon = subscribers(), subscribers(), subscribers(), subscribers()
    signin(sdk, a1, {"id": user})
    signin(sdk, a2, {"id": user})
    other_user = unique_user("py-other")
    signin(sdk, other, {"id": other_user})

    # PyPI pusher 3.3.4 posts to /users/{id}/terminate_connections (no /apps/{id} prefix).
    assert sdk.terminate_user_connections(user) == {}

    for sub in (a1, a2):
        frames, code = recv_until_closed(sub)
        assert code == 4009
        errors = [f for f in frames if f.get("event") == "pusher:error"]
        assert len(errors) == 1, frames
        assert errors[0]["data"]["code"] == 4009, frames

    # Another user's connection and an anonymous one stay open and working.
    other.expect_nothing()
    sdk.send_to_user(other_user, "still-here", {"ok": True})
    assert other.recv_json() == {
        "event": "still-here",
        "channel": f"#server-to-user-{other_user}",
        "data": '{"ok": true}',
    }
    anon.send({"event": "pusher:ping", "data": {}})
    assert anon.recv_json() == {"event": "pusher:pong", "data": "{}"}


def test_presence_subscribe_with_authenticate_and_users_info(sdk, subscribers, channel_name):
    c = channel_name("presence-py")
    sub = subscribers()
    member = {"user_id": "py-1", "user_info": {"name": "Py", "langs": ["en", "fr"]}}
    auth = sdk.authenticate(channel=c, socket_id=sub.socket_id, custom_data=member)
    # Python's json.dumps spacing, signed as is: the server must verify the exact string.
    assert auth["channel_data"] == json.dumps(member)
    assert " " in auth["channel_data"]
    sub.send(
        {
            "event": "pusher:subscribe",
            "data": {"auth": auth["auth"], "channel_data": auth["channel_data"], "channel": c},
        }
    )
    frame = sub.recv_json()
    assert frame["event"] == "pusher_internal:subscription_succeeded", frame
    assert frame["channel"] == c
    assert json.loads(frame["data"]) == {
        "presence": {"ids": ["py-1"], "hash": {"py-1": {"name": "Py", "langs": ["en", "fr"]}}, "count": 1}
    }

    assert wait_until(lambda: sdk.users_info(c), {"users": [{"id": "py-1"}]}) == {"users": [{"id": "py-1"}]}
    expected = {"occupied": True, "user_count": 1}
    assert wait_until(lambda: sdk.channel_info(c, ["user_count"]), expected) == expected

    # A second member: the first gets member_added with the exact user_info.
    sub2 = subscribers()
    member2 = {"user_id": "py-2", "user_info": {"name": "Two"}}
    auth2 = sdk.authenticate(channel=c, socket_id=sub2.socket_id, custom_data=member2)
    sub2.send(
        {
            "event": "pusher:subscribe",
            "data": {"auth": auth2["auth"], "channel_data": auth2["channel_data"], "channel": c},
        }
    )
    assert sub2.recv_json()["event"] == "pusher_internal:subscription_succeeded"
    added = sub.recv_json()
    assert added["event"] == "pusher_internal:member_added" and added["channel"] == c, added
    assert json.loads(added["data"]) == {"user_id": "py-2", "user_info": {"name": "Two"}}

    def ids():
        return sorted(u["id"] for u in sdk.users_info(c)["users"])

    assert wait_until(ids, ["py-1", "py-2"]) == ["py-1", "py-2"]

    sub2.close()
    removed = sub.recv_json()
    assert removed["event"] == "pusher_internal:member_removed" and removed["channel"] == c, removed
    assert json.loads(removed["data"]) == {"user_id": "py-2"}
    assert wait_until(lambda: sdk.users_info(c), {"users": [{"id": "py-1"}]}) == {"users": [{"id": "py-1"}]}


def test_presence_subscribe_with_a_wrong_signature_is_refused(sdk, subscribers, channel_name):
    c = channel_name("presence-py")
    sub = subscribers()
    auth = sdk.authenticate(channel=c, socket_id=sub.socket_id, custom_data={"user_id": "py-1"})
    # Signed over different channel_data than the one sent.
    sub.send(
        {
            "event": "pusher:subscribe",
            "data": {"auth": auth["auth"], "channel_data": '{"user_id":"py-2"}', "channel": c},
        }
    )
    frame = sub.recv_json()
    assert frame["event"] == "pusher:subscription_error" and frame["channel"] == c, frame
    data = json.loads(frame["data"])
    assert (data["type"], data["status"]) == ("AuthError", 401), frame
    assert sdk.channel_info(c) == {"occupied": False}
    assert sdk.users_info(c) == {"users": []}


def test_authenticate_user_with_user_info_and_empty_watchlist(sdk, subscribers):
    # json.dumps escapes non-ASCII (\u00dc...); the signature is over that exact string.
    sub = subscribers()
    signin(sdk, sub, {"id": unique_user(), "user_info": {"name": "Ünïcödé"}, "watchlist": []})
    sub.expect_nothing()
