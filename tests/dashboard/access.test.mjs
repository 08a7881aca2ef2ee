// Who may reach the dashboard and the admin API (docs/dashboard.md, "Access"), plain HTTP
// against real single nodes: 401 without credentials and nothing but the error in the body;
// forged cross-site POSTs refused with 403 even with a valid session cookie (and nothing
// happens); Bearer for scripts; the session cookie's attributes; the stream's cap; the page
// and its assets self-contained; `[admin] enabled = false` makes every route 404; a short
// password refuses to start; a missing one is generated and logged once.

import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, test } from 'node:test';

import {
  configToml, http, publish, randomPassword, sleep, startNode, stopNode, subscribe, waitAdmin, wsClient,
} from './lib.mjs';

const PASSWORD = randomPassword();
let node;
let cookie; // "raptor_admin=..."
const started = [];

before(async () => {
  node = await startNode({ name: 'single', toml: configToml([`password = "${PASSWORD}"`, 'session_hours = 2']) });
  started.push(node);
  await waitAdmin(node, PASSWORD);
});

after(async () => {
  await Promise.all(started.map(stopNode));
});

const url = (p) => `${node.base}${p}`;
const CSRF = { 'X-Raptor-CSRF': '1', 'Content-Type': 'application/json' };

/** 401 and the body is exactly one `error` string. */
function assertRefused401(r, what) {
  assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
  assert.ok(r.json && typeof r.json.error === 'string', `${what}: ${r.text}`);
  assert.deepEqual(Object.keys(r.json), ['error'], `${what}: data besides the error: ${r.text}`);
}

const GETS = [
  '/admin/api/overview', '/admin/api/series?range=15m', '/admin/api/series?range=24h',
  '/admin/api/apps/1/channels?sort=subscribers&limit=20', '/admin/api/apps/1/channels/news',
  '/admin/api/stream',
];
const POSTS = [
  ['/admin/api/apps/1/publish', { channel: 'news', event: 'e', data: 'd' }],
  ['/admin/api/apps/1/users/u-1/terminate', {}],
  ['/admin/api/drain', {}],
];

test('without credentials: 401 and no data, on every route', async () => {
  for (const p of GETS) {
    const r = await http(url(p));
    assertRefused401(r, `GET ${p}`);
    assert.equal(r.json.error, 'authentication required');
  }
  for (const [p, body] of POSTS) {
    const r = await http(url(p), { method: 'POST', headers: CSRF, body: JSON.stringify(body) });
    assertRefused401(r, `POST ${p}`);
  }
  for (const auth of [`Bearer ${PASSWORD}x`, 'Bearer ', `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`]) {
    assertRefused401(await http(url('/admin/api/overview'), { headers: { Authorization: auth } }), `Authorization: ${auth.slice(0, 8)}…`);
  }
  // A real cookie name (one login), then forged values under it.
  const login = await http(url('/admin/api/login'), { method: 'POST', headers: CSRF, body: JSON.stringify({ password: PASSWORD }) });
  const name = login.headers.getSetCookie()[0].split('=')[0];
  assert.match(name, /^raptor_admin_[0-9a-f]{8}$/);
  for (const c of [`${name}=v1.9999999999.` + '0'.repeat(64), `${name}=garbage`, `${name}=`]) {
    assertRefused401(await http(url('/admin/api/overview'), { headers: { Cookie: c } }), `Cookie ${c.slice(0, 20)}…`);
  }
});

test('login: wrong or missing password 401; without the CSRF header 403; then a strict cookie', async () => {
  // The node checks at most 5 wrong passwords a second (then 429): start in a fresh second
  // after the previous test's wrong ones.
  await sleep(1100);
  for (const body of [{ password: 'wrong-password-123' }, {}, { password: '' }]) {
    const r = await http(url('/admin/api/login'), { method: 'POST', headers: CSRF, body: JSON.stringify(body) });
    assertRefused401(r, `login with ${JSON.stringify(body)}`);
    assert.equal(r.json.error, 'invalid credentials');
    assert.equal(r.headers.getSetCookie().length, 0);
  }
  const noCsrf = await http(url('/admin/api/login'), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password: PASSWORD }),
  });
  assert.equal(noCsrf.status, 403, noCsrf.text);
  assert.deepEqual(noCsrf.json, { error: 'cross-site request refused' });
  assert.equal(noCsrf.headers.getSetCookie().length, 0, 'a refused login sets no cookie');

  const r = await http(url('/admin/api/login'), { method: 'POST', headers: CSRF, body: JSON.stringify({ password: PASSWORD }) });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { ok: true });
  const set = r.headers.getSetCookie();
  assert.equal(set.length, 1, JSON.stringify(set));
  const attrs = set[0].split(';').map((s) => s.trim());
  assert.match(attrs[0], /^raptor_admin_[0-9a-f]{8}=v1\.\d+\.[0-9a-f]{64}$/);
  assert.ok(attrs.includes('HttpOnly'), set[0]);
  assert.ok(attrs.some((a) => /^SameSite=Strict$/i.test(a)), set[0]);
  assert.ok(attrs.includes('Path=/'), set[0]);
  assert.ok(!attrs.includes('Secure'), 'no Secure on plain HTTP');
  const expiry = Number(attrs[0].split('.')[1]);
  const hours = (expiry - Date.now() / 1000) / 3600;
  assert.ok(hours > 1.9 && hours <= 2.01, `session_hours = 2, the cookie says ${hours.toFixed(2)} h`);
  cookie = attrs[0];

  const ov = await http(url('/admin/api/overview'), { headers: { Cookie: cookie } });
  assert.equal(ov.status, 200, ov.text);
  assert.equal(ov.json.node, 'single');
  assert.equal(ov.json.cluster, false);
  assert.equal(ov.json.nodes.length, 1);
  assert.equal(ov.json.nodes[0].self, true);
});

test('forged cross-site POSTs with a valid cookie: 403, and nothing happens', async () => {
  assert.ok(cookie, 'signed in by the previous test');
  const sub = await wsClient(node);
  await subscribe(sub, 'csrf-probe');
  const evil = 'https://evil.example';
  const forged = [
    ['no CSRF header', { Cookie: cookie, 'Content-Type': 'application/json' }],
    ['a form post', { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded', Origin: evil }],
    ['CSRF header, foreign Origin', { Cookie: cookie, ...CSRF, Origin: evil }],
    ['CSRF header, Origin on another port', { Cookie: cookie, ...CSRF, Origin: `http://127.0.0.1:${node.port + 1}` }],
    ['CSRF header = 0', { Cookie: cookie, 'X-Raptor-CSRF': '0', 'Content-Type': 'application/json' }],
  ];
  for (const [what, headers] of forged) {
    for (const [p, body] of [['/admin/api/apps/1/publish', { channel: 'csrf-probe', event: 'forged', data: what }], ...POSTS.slice(1)]) {
      const r = await http(url(p), { method: 'POST', headers, body: JSON.stringify(body) });
      assert.equal(r.status, 403, `${what}, POST ${p}: ${r.status} ${r.text}`);
      assert.deepEqual(r.json, { error: 'cross-site request refused' }, `${what}, POST ${p}`);
    }
  }
  const logout = await http(url('/admin/api/logout'), { method: 'POST', headers: { Cookie: cookie, Origin: evil, ...CSRF } });
  assert.equal(logout.status, 403, `forged logout: ${logout.text}`);

  // The same request from the page itself goes through: same-origin Origin, or none.
  const ok1 = await http(url('/admin/api/apps/1/publish'), {
    method: 'POST', headers: { Cookie: cookie, ...CSRF, Origin: node.base },
    body: JSON.stringify({ channel: 'csrf-probe', event: 'genuine', data: 'same-origin' }),
  });
  assert.equal(ok1.status, 200, ok1.text);
  assert.deepEqual(ok1.json, {});
  const ok2 = await http(url('/admin/api/apps/1/publish'), {
    method: 'POST', headers: { Cookie: cookie, ...CSRF },
    body: JSON.stringify({ channel: 'csrf-probe', event: 'genuine', data: 'no-origin' }),
  });
  assert.equal(ok2.status, 200, ok2.text);
  await sub.waitFor((f) => f.event === 'genuine' && f.data === 'no-origin', 'the genuine publishes');
  await sleep(300);
  assert.deepEqual(sub.frames.filter((f) => f.event === 'forged'), [], 'a forged publish was delivered');
  assert.equal(sub.frames.filter((f) => f.event === 'genuine').length, 2);
  assert.equal(node.exited, null, 'a forged drain stopped the node');
  assert.equal((await http(url('/health'))).status, 200);
  sub.close();
});

test('Bearer credential (scripts): no CSRF header needed; the API answers the contract shapes', async () => {
  const auth = { Authorization: `Bearer ${PASSWORD}` };
  const s15 = await http(url('/admin/api/series?range=15m'), { headers: auth });
  assert.equal(s15.status, 200, s15.text);
  assert.equal(s15.json.resolution_secs, 1);
  assert.ok(Array.isArray(s15.json.points));
  const s24 = await http(url('/admin/api/series?range=24h'), { headers: auth });
  assert.equal(s24.status, 200, s24.text);
  assert.equal(s24.json.resolution_secs, 60);

  const sub = await wsClient(node);
  await subscribe(sub, 'bearer-news');
  const pub = await http(url('/admin/api/apps/1/publish'), {
    method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel: 'bearer-news', event: 'by-script', data: 'hi' }),
  });
  assert.equal(pub.status, 200, pub.text);
  await sub.waitFor((f) => f.event === 'by-script' && f.data === 'hi', 'the Bearer publish');
  const list = await http(url('/admin/api/apps/1/channels?sort=subscribers&limit=20'), { headers: auth });
  assert.equal(list.status, 200, list.text);
  const ch = list.json.channels.find((c) => c.name === 'bearer-news');
  assert.ok(ch, JSON.stringify(list.json));
  assert.equal(ch.subscription_count, 1);
  const one = await http(url('/admin/api/apps/1/channels/bearer-news'), { headers: auth });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.name, 'bearer-news');
  assert.equal(one.json.occupied, true);
  assert.equal(one.json.subscription_count, 1);
  assert.equal(one.json.members, null);
  assert.equal(one.json.cache, null);
  sub.close();
});

/** Opens GET /admin/api/stream; resolves {status, res, first} (first: the first data: JSON). */
function openStream(headers) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url('/admin/api/stream'), { headers }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, res, body, req }));
        return;
      }
      let buf = '';
      const onData = (c) => {
        buf += c;
        const m = buf.match(/^data: (.*)\n\n/m);
        if (m) {
          res.off('data', onData);
          resolve({ status: 200, res, first: JSON.parse(m[1]), type: res.headers['content-type'], req });
        }
      };
      res.on('data', onData);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('stream: nothing within 5 s')));
    req.end();
  });
}

test('the stream: an overview at once, at most 64 per node (503 beyond), slots come back', { timeout: 30000 }, async () => {
  const auth = { Authorization: `Bearer ${PASSWORD}` };
  const open = [];
  try {
    for (let i = 0; i < 64; i++) {
      const s = await openStream(auth);
      assert.equal(s.status, 200, `stream ${i + 1}: ${s.status} ${s.body}`);
      open.push(s);
    }
    assert.match(open[0].type, /^text\/event-stream/);
    assert.equal(open[0].first.node, 'single');
    assert.ok(Array.isArray(open[0].first.nodes));
    const extra = await openStream(auth);
    assert.equal(extra.status, 503, extra.body);
    assert.deepEqual(JSON.parse(extra.body), { error: 'too many dashboard streams' });
  } finally {
    for (const s of open) s.req.destroy();
  }
  const deadline = Date.now() + 5000;
  for (;;) {
    const s = await openStream(auth);
    s.req.destroy();
    if (s.status === 200) break;
    assert.ok(Date.now() < deadline, `closed streams did not free their slots: ${s.status}`);
    await sleep(200);
  }
});

test('the page: login form without a session, self-contained assets, CSP', async () => {
  const page = await http(url('/dashboard'));
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-security-policy') || '', /default-src 'self'/);
  assert.match(page.text, /id="login-form"/);
  for (const [p, type] of [['/dashboard/app.js', /javascript/], ['/dashboard/app.css', /^text\/css/]]) {
    const r = await http(url(p));
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get('content-type'), type, p);
  }
  for (const p of ['/dashboard', '/dashboard/app.js', '/dashboard/app.css']) {
    const body = (await http(url(p))).text;
    // Nothing from elsewhere: the only absolute URL is the SVG namespace.
    const urls = (body.match(/\b(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi) || [])
      .filter((u) => u !== 'http://www.w3.org/2000/svg');
    assert.deepEqual(urls, [], `${p} refers to another site`);
  }
  assert.equal((await http(url('/dashboard/nope.js'))).status, 404);
});

test('a password shorter than 12 characters refuses to start', async () => {
  await assert.rejects(
    startNode({ name: 'short-password', toml: configToml(['password = "short"']) }),
    (e) => /exited early/.test(e.message) && /password/i.test(e.message),
  );
});

test('no password configured: one is generated and logged once at warn; metrics listener only', async () => {
  const n = await startNode({ name: 'generated', toml: configToml([]), args: ['--metrics-bind', '127.0.0.1:0'] });
  started.push(n);
  const deadline = Date.now() + 5000;
  let m;
  while (!(m = n.log.match(/admin: no admin\.password set; generated for this run: (\S+)/)) && Date.now() < deadline) await sleep(100);
  assert.ok(m, `no generated password in the log:\n${n.log}`);
  assert.ok(m[1].length >= 24, m[1]);
  // The password is in the log: the public port does not serve the admin API at all.
  const pub = await http(`${n.base}/admin/api/overview`, { headers: { Authorization: `Bearer ${m[1]}` } });
  assert.equal(pub.status, 404, pub.text);
  const onMetrics = { ...n, base: `http://${n.metrics}` };
  const ov = await waitAdmin(onMetrics, m[1]);
  assert.equal(ov.node, 'single');
  assertRefused401(await http(`${onMetrics.base}/admin/api/overview`), 'generated password, no credential');
  assert.equal(n.log.split(m[1]).length - 1, 1, 'the generated password is logged exactly once');
});

test('[admin] enabled = false: /dashboard and /admin/api/* are 404', async () => {
  const n = await startNode({ name: 'disabled', toml: configToml(['enabled = false', `password = "${PASSWORD}"`]) });
  started.push(n);
  const auth = { Authorization: `Bearer ${PASSWORD}` };
  for (const p of ['/dashboard', '/dashboard/', '/dashboard/app.js', '/dashboard/app.css', ...GETS]) {
    for (const headers of [{}, auth]) {
      const r = await http(`${n.base}${p}`, { headers });
      assert.equal(r.status, 404, `GET ${p} ${headers.Authorization ? 'with' : 'without'} Bearer: ${r.status} ${r.text}`);
    }
  }
  for (const [p, body] of [['/admin/api/login', { password: PASSWORD }], ...POSTS]) {
    const r = await http(`${n.base}${p}`, { method: 'POST', headers: { ...CSRF, ...auth }, body: JSON.stringify(body) });
    assert.equal(r.status, 404, `POST ${p}: ${r.status} ${r.text}`);
  }
  assert.equal(n.exited, null, 'the drain route must not exist when disabled');
  // The rest of the node works.
  await publish(n, 'still-here', 'e', 'd');
});
