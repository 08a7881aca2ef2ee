// Helpers for the HTTP fallback tests (xhr_transports, http_fallback_input, sse, browser_fallback):
// raw clients of pusher-js's xhr routes (SockJS-style framing, shared/reference/http-fallback.md §2)
// and of the Server-Sent Events route, written against the wire format, not against Raptor's code.

import http from 'node:http';
import net from 'node:net';

import { APP_KEY, WAIT_MS } from './helpers.mjs';

/** pusher-js's HTTP path (its `httpPath` default and Raptor's `limits.http_fallback.path`). */
export const HTTP_PATH = '/pusher';
/** The query string pusher-js puts on receive URLs (send URLs carry none). */
export const PUSHER_QUERY = 'protocol=7&client=js&version=8.6.0';

/** A TCP port nothing listens on (bound, then closed): a WebSocket to it fails at once. */
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return port;
}

/** A session id the way pusher-js makes them: 8 characters of [0-9a-v]. */
export function sessionId() {
  const alphabet = '0123456789abcdefghijklmnopqrstuv';
  let s = '';
  for (let i = 0; i < 8; i++) s += alphabet[Math.floor(Math.random() * 32)];
  return s;
}

/** `http://127.0.0.1:PORT/pusher/app/KEY/{server}/{session}/{kind}[?query]` */
export function xhrUrl(port, session, kind, { key = APP_KEY, server = '42', query } = {}) {
  const q = query === undefined ? (kind === 'xhr_send' ? '' : PUSHER_QUERY) : query;
  return `http://127.0.0.1:${port}${HTTP_PATH}/app/${key}/${server}/${session}/${kind}${q ? `?${q}` : ''}`;
}

/**
 * Parse a receive response's text into SockJS frames: {type:'o'|'h'|'a'|'c'|'?', raw, ...}.
 * `a` frames get `messages` (each element JSON-parsed again: the Pusher event), `c` frames get
 * `code` and `reason`. Only complete lines (ending in `\n`) are frames.
 */
export function parseFrames(text) {
  const frames = [];
  const lines = text.split('\n');
  lines.pop(); // the part after the last \n: incomplete (or empty)
  for (const raw of lines) {
    if (raw === 'o' || raw.startsWith('o{')) frames.push({ type: 'o', raw });
    else if (/^h+$/.test(raw)) frames.push({ type: 'h', raw });
    else if (raw.startsWith('a[')) {
      const arr = JSON.parse(raw.slice(1));
      frames.push({ type: 'a', raw, messages: arr.map((m) => JSON.parse(m)) });
    } else if (raw.startsWith('c[')) {
      const [code, reason] = JSON.parse(raw.slice(1));
      frames.push({ type: 'c', raw, code, reason });
    } else frames.push({ type: '?', raw });
  }
  return frames;
}

/** Every Pusher event in a list of frames, in order. */
export function messagesOf(frames) {
  return frames.filter((f) => f.type === 'a').flatMap((f) => f.messages);
}

/** One POST as pusher-js sends it (Content-Type: application/json); resolves with the whole answer. */
export async function post(url, body = '', { headers = {}, timeoutMs = WAIT_MS * 2 } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

/** One poll (`…/xhr`): resolves with {status, headers, text, frames}. */
export async function poll(port, session, opts = {}) {
  const r = await post(xhrUrl(port, session, 'xhr', opts), '', opts);
  return { ...r, frames: r.status === 200 ? parseFrames(r.text) : [] };
}

/** One send (`…/xhr_send`) of Pusher events (objects) as pusher-js does: a JSON array of JSON strings. */
export function send(port, session, events, opts = {}) {
  return post(xhrUrl(port, session, 'xhr_send', opts), JSON.stringify(events.map((e) => JSON.stringify(e))), opts);
}

/** The body of a JSON answer, parsed (throws with the text when it is not JSON). */
export function json(r) {
  try {
    return JSON.parse(r.text);
  } catch {
    throw new Error(`HTTP ${r.status} body is not JSON: ${JSON.stringify(r.text.slice(0, 500))}`);
  }
}

/**
 * Open a streaming receiver (`…/xhr_streaming`) with node:http and collect its frames as they
 * arrive. `waitFor(pred, what)` resolves with the first frame list for which pred(frames) holds.
 */
export function openStream(port, session, opts = {}) {
  return openRaw(new URL(xhrUrl(port, session, 'xhr_streaming', opts)), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Content-Length': '0', ...(opts.headers || {}) },
  }, (text) => parseFrames(text));
}

/**
 * Open an SSE stream: GET /pusher/app/KEY/sse?channel=...; `events` are parsed SSE events
 * {id, data (JSON-parsed when it parses), rawData, comment?}. Comments (heartbeats) are kept
 * apart in `comments`.
 */
export function openSse(port, { channels = [], token, lastEventId, lastEventIdHeader, key = APP_KEY, headers = {}, extraQuery = '' } = {}) {
  const q = new URLSearchParams();
  for (const c of channels) q.append('channel', c);
  if (token !== undefined) q.append('token', token);
  if (lastEventId !== undefined) q.append('last_event_id', lastEventId);
  const url = new URL(`http://127.0.0.1:${port}${HTTP_PATH}/app/${key}/sse?${q.toString()}${extraQuery}`);
  const h = { Accept: 'text/event-stream', ...headers };
  if (lastEventIdHeader !== undefined) h['Last-Event-ID'] = lastEventIdHeader;
  const stream = openRaw(url, { method: 'GET', headers: h }, (text) => parseSse(text));
  return stream;
}

/** Parse an event stream (complete events only, i.e. up to the last blank line). */
export function parseSse(text) {
  const events = [];
  const norm = text.replace(/\r\n?/g, '\n');
  const blocks = norm.split('\n\n');
  blocks.pop(); // incomplete
  for (const block of blocks) {
    const ev = { id: undefined, rawData: undefined, comments: [], fields: [] };
    for (const line of block.split('\n')) {
      if (line === '') continue;
      if (line.startsWith(':')) {
        ev.comments.push(line.slice(1));
        continue;
      }
      const i = line.indexOf(':');
      const name = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      ev.fields.push(name);
      if (name === 'id') ev.id = value;
      else if (name === 'data') ev.rawData = ev.rawData === undefined ? value : `${ev.rawData}\n${value}`;
    }
    if (ev.rawData !== undefined) {
      try {
        ev.data = JSON.parse(ev.rawData);
      } catch {
        ev.data = undefined;
      }
    }
    events.push(ev);
  }
  return events;
}

/** Only the SSE blocks that carry data (comments-only blocks are heartbeats). */
export function dataEvents(blocks) {
  return blocks.filter((b) => b.rawData !== undefined);
}

/**
 * A streaming request with node:http. Resolves `ready` once the head arrived
 * ({status, headers}); `text` grows; `items()` is parse(text); `waitFor(pred)`; `ended`.
 */
function openRaw(url, { method, headers }, parse) {
  const state = { text: '', status: undefined, headers: undefined, ended: false, error: undefined };
  const waiters = [];
  const check = () => {
    const items = parse(state.text);
    for (const w of [...waiters]) {
      let ok = false;
      try {
        ok = w.pred(items, state);
      } catch (e) {
        ok = false;
      }
      if (ok) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.res(items);
      }
    }
  };
  let resolveEnded;
  const ended = new Promise((r) => {
    resolveEnded = r;
  });
  const req = http.request(url, { method, headers, agent: false });
  const ready = new Promise((res, rej) => {
    req.on('response', (resp) => {
      state.status = resp.statusCode;
      state.headers = resp.headers;
      resp.setEncoding('utf8');
      resp.on('data', (chunk) => {
        state.text += chunk;
        check();
      });
      resp.on('end', () => {
        state.ended = true;
        check();
        resolveEnded();
      });
      resp.on('error', () => {
        state.ended = true;
        resolveEnded();
      });
      res({ status: resp.statusCode, headers: resp.headers });
    });
    req.on('error', (e) => {
      state.error = e;
      state.ended = true;
      resolveEnded();
      rej(e);
    });
  });
  ready.catch(() => {});
  req.end();
  return {
    state,
    ready,
    ended,
    items: () => parse(state.text),
    get text() {
      return state.text;
    },
    waitFor(pred, what, timeoutMs = WAIT_MS) {
      const items = parse(state.text);
      try {
        if (pred(items, state)) return Promise.resolve(items);
      } catch {
        /* not yet */
      }
      return new Promise((res, rej) => {
        const w = { pred, res };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          rej(new Error(`${what}: not within ${timeoutMs} ms (status ${state.status}, ended ${state.ended}); received: ${JSON.stringify(state.text.slice(0, 3000))}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    close() {
      req.destroy();
    },
  };
}

/** Resolve once `fn()` is truthy (checked every `everyMs`), or reject after `timeoutMs`. */
export async function eventually(fn, what, timeoutMs = WAIT_MS, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
