"""Writes the seed corpora under fuzz/corpus/<target>/ (small real inputs; rerun to refresh).

Usage: python3 fuzz/make_seeds.py
"""

import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# The Pusher documentation's signature example (fuzz_targets/api_signature.rs uses the same).
KEY, SECRET, TS = "278d425bdf160c739803", "7ad3773142a6692b25b8", "1353088179"


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def signed(method, path, params, body="", md5_on_get=False, ts=TS):
    """Path and query signed like the SDKs; md5_on_get adds the empty body's md5 (PyPI SDK)."""
    kv = dict(params, auth_key=KEY, auth_timestamp=ts, auth_version="1.0")
    if body or md5_on_get:
        kv["body_md5"] = hashlib.md5(body.encode()).hexdigest()
    q = "&".join(f"{k}={v}" for k, v in sorted(kv.items()))
    sig = hmac.new(SECRET.encode(), f"{method}\n{path}\n{q}".encode(), hashlib.sha256).hexdigest()
    return f"{path}?{q}&auth_signature={sig}"


def http(method, target, body="", extra=""):
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:6001\r\n{extra}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n"
    return head + "\r\n" + body


# --- client_frame: what pusher-js 8.6.0 sends (docs: test-tools §2.1), and near misses ---
frames = {
    "subscribe": '{"event":"pusher:subscribe","data":{"auth":"","channel":"public-chan"}}',
    "subscribe_private": '{"event":"pusher:subscribe","data":{"auth":"app-key:88f3da7ff92fee530940a03a32c6176d9ce22c64aa63bc2015b5d1973b41dedc","channel":"private-chan"}}',
    "subscribe_presence": '{"event":"pusher:subscribe","data":{"auth":"app-key:56283cac","channel_data":"{\\"user_id\\":\\"u-7\\",\\"user_info\\":{\\"name\\":\\"Bob\\"}}","channel":"presence-room"}}',
    "unsubscribe": '{"event":"pusher:unsubscribe","data":{"channel":"public-chan"}}',
    "ping": '{"event":"pusher:ping","data":{}}',
    "pong_string_data": '{"event":"pusher:pong","data":"{}"}',
    "client_event": '{"event":"client-typing","data":{"user":"alice","n":1},"channel":"private-chan"}',
    "signin": '{"event":"pusher:signin","data":{"auth":"app-key:d748a488","user_data":"{\\"id\\": \\"u-42\\", \\"user_info\\": {\\"name\\": \\"Alice\\"}}"}}',
    "double_encoded": '{"event":"pusher:subscribe","data":"{\\"channel\\":\\"a\\"}"}',
    "deep": '{"event":"x","data":' + "[" * 40 + "]" * 40 + "}",
    "not_object": '["pusher:ping"]',
}
for name, text in frames.items():
    write("client_frame", name, text)

# --- http_request / api_signature: requests the SDKs and pusher-js send (§2, §3) ---
upgrade = http(
    "GET",
    "/app/app-key?protocol=7&client=js&version=8.6.0&flash=false",
    extra="Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
)
body = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
post = http("POST", signed("POST", "/apps/3/events", {}, body), body)
batch_body = '{"batch":[{"channel":"my-channel","name":"e1","data":"{\\"a\\":1}"}]}'
batch = http("POST", signed("POST", "/apps/3/batch_events", {}, batch_body), batch_body)
get_py = http("GET", signed("GET", "/apps/3/channels", {"filter_by_prefix": "presence-", "info": "user_count"}, md5_on_get=True))
get_node = http("GET", signed("GET", "/apps/3/channels/presence-room", {"info": "user_count,subscription_count"}))
for name, req in {
    "upgrade": upgrade,
    "post_events": post,
    "pipelined": http("GET", "/health") + http("GET", "/", extra="Connection: close\r\n"),
    "http10": "GET /health HTTP/1.0\r\n\r\n",
    "chunked": "POST /apps/3/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}.items():
    write("http_request", name, req)
for name, req in {
    "post_events": post,
    "batch_events": batch,
    "get_channels_python": get_py,
    "get_channel_node": get_node,
    # Signed requests whose auth_timestamp made `now - ts` overflow (a panic in debug builds;
    # in release the second wrapped and passed the window): both must be refused as stale.
    "ts_i64_min": http("POST", signed("POST", "/apps/3/events", {}, body, ts=str(-2**63)), body),
    "ts_now_minus_2_63": http("POST", signed("POST", "/apps/3/events", {}, body, ts=str(int(TS) - 2**63)), body),
}.items():
    write("api_signature", name, req)


# --- ws_frames: first byte = read size - 1, then client frames (masked) ---
def frame(opcode, payload=b"", fin=True, rsv=0, mask=b"\x01\x02\x03\x04"):
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


close_1000 = frame(8, struct.pack("!H", 1000) + b"bye")
for name, (split, data) in {
    "text_then_close": (255, frame(1, frames["subscribe"].encode()) + close_1000),
    "ping_pong": (255, frame(9, b"hi") + frame(10, b"x") + frame(1, frames["ping"].encode())),
    "fragmented_with_ping": (3, frame(1, b"frag", fin=False) + frame(9, b"p") + frame(0, b"ment") + close_1000),
    "medium_text_in_pieces": (0, frame(1, b"a" * 300)),
    "binary": (255, frame(2, b"\x00\x01\x02")),
    "rsv_set": (255, frame(1, b"Hello", rsv=2)),
    "bad_utf8": (255, frame(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")),
    "close_bad_code": (255, frame(8, struct.pack("!H", 999))),
    "too_big_header": (255, bytes([0x81, 0xFF]) + struct.pack("!Q", 1 << 40) + b"\x01\x02\x03\x04"),
}.items():
    write("ws_frames", name, bytes([split]) + data)


# --- gossip_open: [mode][...]; mode 0 = a stranger's datagram, 1 = [skew i16 s][id][message] ---
def chitchat_syn(cluster_id):
    """A plaintext chitchat V0 Syn with an empty digest (what an unsealed node sends)."""
    return struct.pack("<HBBH", 45139, 0, 0, 0) + struct.pack("<H", len(cluster_id)) + cluster_id.encode()


for name, data in {
    "stranger_plain_syn": b"\x00" + chitchat_syn("raptor"),
    "stranger_short": b"\x00\x01\x02",
    "stranger_sealed_shape": b"\x00\x01" + bytes(range(24)) + bytes(14) + b"\xaa" * 16,
    "stranger_wrong_version": b"\x00\x02" + bytes(64),
    "sealed_syn": b"\x01" + struct.pack("<hB", 0, 7) + chitchat_syn("prod"),
    "sealed_empty": b"\x01" + struct.pack("<hB", 0, 1),
    "sealed_skewed": b"\x01" + struct.pack("<hB", 200, 2) + b"late",
    "sealed_big": b"\x01" + struct.pack("<hB", -30, 3) + b"interest." * 400,
}.items():
    write("gossip_open", name, data)


# --- link_handshake: [mode][...]; 0 = raw bytes to the acceptor, 1 = after TLS without the
# proof, 2 = after TLS and a valid proof (frames follow) ---
def node_frame(tag, body):
    """An inter-node frame (docs/cluster-protocol.md §4): header, body padded to 8."""
    pad = (8 - len(body) % 8) % 8
    return b"RPTR" + bytes([1, tag, 0, 0]) + struct.pack("<Q", len(body)) + body + bytes(pad)


ping = node_frame(9, b"\x08" + bytes(7) + struct.pack("<Q", 1) + bytes(64))
interest = node_frame(
    4, b"\x03\x00\x00\x00" + b"1" + b"\xff" * 7 + b"room" + b"\xff" * 4 + b"\x01\x00\x00\x00" + struct.pack("<Q", 7) + bytes(48)
)
for name, data in {
    "raw_plaintext_ping": b"\x00" + ping,
    "raw_tls_junk": b"\x00\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
    "raw_tls12_hello_head": b"\x00\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03" + bytes(32) + b"\x00\x00\x02\x00\x2f\x01\x00",
    "after_tls_no_proof": b"\x01" + ping,
    "after_tls_short": b"\x01" + b"\x00" * 31,
    "after_proof_ping": b"\x02" + ping,
    "after_proof_interest_ping": b"\x02" + interest + ping,
    "after_proof_bad_magic": b"\x02" + b"XXXX" + ping[4:],
}.items():
    write("link_handshake", name, data)
