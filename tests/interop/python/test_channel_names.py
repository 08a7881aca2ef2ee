"""URL-shaped channel names with PyPI `pusher` 3.3.4 (docs/adr/0006-url-shaped-channel-names.md).

`.` names go through `trigger`. `/` names are valid and are other channels than their `.`
look-alikes; the SDK refuses them in `trigger` and `authenticate`, and publishes to them with
`trigger_batch(..., already_encoded=True)`, which sends `data` as given without checking names.
"""

import json

import pytest


def names(channel_name):
    base = channel_name("n")
    return f"gallery.{base}.comments", f"gallery/{base}/comments"


def test_sdk_refuses_slash_in_trigger_and_authenticate(sdk, channel_name):
    _, slash = names(channel_name)
    with pytest.raises(ValueError, match="Invalid Channel"):
        sdk.trigger(slash, "e", {})
    with pytest.raises(ValueError, match="Invalid Channel"):
        sdk.authenticate(f"private-{slash}", "1.2")


def test_dot_and_slash_names_are_two_channels(sdk, subscribers, channel_name):
    dot, slash = names(channel_name)
    on_dot = subscribers()
    on_dot.subscribe(dot)
    on_slash = subscribers()
    on_slash.subscribe(slash)

    assert sdk.trigger(dot, "new-comment", {"text": "dot"}) == {}
    batch = [{"channel": slash, "name": "new-comment", "data": json.dumps({"text": "slash"})}]
    assert sdk.trigger_batch(batch, already_encoded=True) == {}

    assert on_dot.recv_json() == {"event": "new-comment", "channel": dot, "data": '{"text": "dot"}'}
    assert on_slash.recv_json() == {"event": "new-comment", "channel": slash, "data": '{"text": "slash"}'}
    on_dot.expect_nothing()
    on_slash.expect_nothing()
