// Large events in chunks (docs/protocol.md, "Large events in chunks"), with pusher-js 8.6.0
// receiving and the npm `pusher` 5.3.4 SDK publishing (it sets no size limit on `data`, so a
// 1 MiB event goes through `sdk.trigger` as is).
//
// The receiver reassembles with `bindWithChunking` from Pusher's published example
// (pusher/pusher-channels-chunking-example, pusher-js/client.html), pasted as a user would;
// the only change is the `prefix` parameter, since a client event's name must start with
// `client-` (`client-chunked-{event}`).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { authOptions, subscribe, uniqueChannel, useServer, WAIT_MS } from './helpers.mjs';

let server;
let sdk;
const config = `
[limits]
max_http_body_bytes = 4194304
outbox_max_bytes = 8388608

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
max_chunked_event_bytes = 2097152
`;
const pool = useServer((s) => ({ server, sdk } = s), { config });

// Portable function you can copy-paste (the example's, plus `prefix`).
function bindWithChunking(channel, event, callback, prefix = 'chunked-') {
  channel.bind(event, callback); // Allow normal unchunked events.

  // Now the chunked variation. Allows arbitrarily long messages.
  var events = {};
  channel.bind(prefix + event, (data) => {
    if (!events.hasOwnProperty(data.id)) {
      events[data.id] = { chunks: [], receivedFinal: false };
    }
    var ev = events[data.id];
    ev.chunks[data.index] = data.chunk;
    if (data.final) ev.receivedFinal = true;
    if (ev.receivedFinal && ev.chunks.length === Object.keys(ev.chunks).length) {
      callback(JSON.parse(ev.chunks.join('')));
      delete events[data.id];
    }
  });
}

/** ~1 MiB (UTF-8) of JSON text with quotes, backslashes, newlines and non-ASCII. */
function bigObject({ astral = true } = {}) {
  const parts = ['abc', '"q"', 'é', astral ? '😀' : 'ß', '\n', '\\', 'x'];
  const out = [];
  let bytes = 0;
  for (let i = 0; bytes < (1 << 20) - 64; i++) {
    const p = parts[i % parts.length];
    out.push(p);
    bytes += Buffer.byteLength(p);
  }
  return { blob: out.join(''), n: 42 };
}

function completion(what) {
  let resolve;
  const p = new Promise((res, rej) => {
    resolve = res;
    setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), WAIT_MS * 3);
  });
  return { p, resolve };
}

test('a 1 MiB HTTP API event reaches a pusher-js receiver that reassembles the chunks', async () => {
  const name = uniqueChannel('big');
  const y = await pool.connect(server.port);
  const ych = await subscribe(y, name);
  const progress = [];
  ych.bind('chunked-my-event', (d) => progress.push([d.index, d.count]));
  const done = completion('the reassembled event');
  bindWithChunking(ych, 'my-event', done.resolve);

  const obj = bigObject();
  const data = JSON.stringify(obj);
  assert.ok(Buffer.byteLength(data) >= 1 << 20, `${Buffer.byteLength(data)} bytes`);
  const res = await sdk.trigger(name, 'my-event', data);
  assert.equal(res.status, 200);
  assert.deepEqual(await done.p, obj);
  // Progress: index/count on every chunk, in order.
  const count = progress[0][1];
  assert.ok(count > 100, `${count} chunks`);
  assert.deepEqual(progress, Array.from({ length: count }, (_, i) => [i, count]));
});

test('a 1 MiB client-chunked event from one pusher-js client reaches another intact', async () => {
  const name = uniqueChannel('private-up');
  const x = await pool.connect(server.port, authOptions(sdk));
  const y = await pool.connect(server.port, authOptions(sdk));
  const xch = await subscribe(x, name);
  const ych = await subscribe(y, name);
  const done = completion('the reassembled client event');
  bindWithChunking(ych, 'up', done.resolve, 'client-chunked-');
  const errors = [];
  x.connection.bind('error', (e) => errors.push(e));

  // The example's triggerChunked, sending client events. `substr` cuts UTF-16 code units, so
  // the text avoids astral characters (a cut between a surrogate pair would not be a string
  // the server accepts); 4,000 code units stay under 10 KB of data once escaped.
  const obj = bigObject({ astral: false });
  const str = JSON.stringify(obj);
  const chunkSize = 4000;
  const msgId = Math.random() + '';
  for (let i = 0; i * chunkSize < str.length; i++) {
    const sent = xch.trigger('client-chunked-up', {
      id: msgId,
      index: i,
      chunk: str.substr(i * chunkSize, chunkSize),
      final: chunkSize * (i + 1) >= str.length,
    });
    assert.equal(sent, true);
  }
  assert.deepEqual(await done.p, obj);
  assert.deepEqual(errors, []);
});
