"""Channel queries with PyPI `pusher` 3.3.4: channel_info() and channels_info().

Note: the Python SDK sends `body_md5` (of the empty body) on GET requests; the server must accept it.
"""

from conftest import wait_until


def test_channel_info_unoccupied(sdk, channel_name):
    assert sdk.channel_info(channel_name("py-empty")) == {"occupied": False}


def test_channel_info_occupied_without_attributes(sdk, subscribers, channel_name):
    c = channel_name()
    subscribers().subscribe(c)
    assert wait_until(lambda: sdk.channel_info(c), {"occupied": True}) == {"occupied": True}


def test_channel_info_subscription_count(sdk, subscribers, channel_name):
    c = channel_name()
    n = 3
    for _ in range(n):
        subscribers().subscribe(c)
    expected = {"occupied": True, "subscription_count": n}
    assert wait_until(lambda: sdk.channel_info(c, ["subscription_count"]), expected) == expected


def test_channel_info_counts_multiple_subscriptions_of_one_connection_once_per_channel(
    sdk, subscribers, channel_name
):
    c1, c2 = channel_name(), channel_name()
    a = subscribers()
    b = subscribers()
    a.subscribe(c1)
    a.subscribe(c2)
    b.subscribe(c1)
    e1 = {"occupied": True, "subscription_count": 2}
    e2 = {"occupied": True, "subscription_count": 1}
    assert wait_until(lambda: sdk.channel_info(c1, ["subscription_count"]), e1) == e1
    assert wait_until(lambda: sdk.channel_info(c2, ["subscription_count"]), e2) == e2


def test_channel_becomes_unoccupied_when_last_subscriber_disconnects(sdk, subscribers, channel_name):
    c = channel_name()
    sub = subscribers()
    sub.subscribe(c)
    assert wait_until(lambda: sdk.channel_info(c), {"occupied": True}) == {"occupied": True}
    sub.close()
    assert wait_until(lambda: sdk.channel_info(c), {"occupied": False}, timeout=3) == {"occupied": False}


def test_channels_info_lists_channel(sdk, subscribers, channel_name):
    c = channel_name()
    subscribers().subscribe(c)

    def listed():
        body = sdk.channels_info()
        assert set(body) == {"channels"}, body
        return body["channels"].get(c)

    assert wait_until(listed, {}) == {}


def test_channels_info_prefix_filter(sdk, subscribers, channel_name):
    prefix = channel_name("py-pfx")
    inside = prefix + "-in"
    outside = channel_name("py-out")
    sub = subscribers()
    sub.subscribe(inside)
    sub.subscribe(outside)
    expected = {"channels": {inside: {}}}
    assert wait_until(lambda: sdk.channels_info(prefix_filter=prefix), expected) == expected


def test_channels_info_drops_vacated_channel(sdk, subscribers, channel_name):
    c = channel_name()
    sub = subscribers()
    sub.subscribe(c)
    present = {"channels": {c: {}}}
    assert wait_until(lambda: sdk.channels_info(prefix_filter=c), present) == present
    sub.unsubscribe(c)
    gone = {"channels": {}}
    assert wait_until(lambda: sdk.channels_info(prefix_filter=c), gone, timeout=3) == gone
