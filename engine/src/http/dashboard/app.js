// Raptor dashboard: vanilla ES2020, no dependencies, nothing loaded from elsewhere. Served at
// /dashboard/app.js under `Content-Security-Policy: default-src 'self'`: no inline script,
// no inline style, no eval; every value from the API goes into the page as text
// (textContent), never as HTML. The API it speaks is docs/dashboard.md.
//
// Stable hooks (tests/dashboard/dashboard.test.mjs relies on them; keep them when changing
// the page):
//
//   #login, #login-form, #login-password, #login-submit, [data-testid=login-error]
//   #app (hidden until signed in), #logout, [data-testid=app-error]
//   #tab-overview, #tab-channels, #tab-operations      the three views' tabs
//   #view-overview, #view-channels, #view-operations   the views (hidden when not shown)
//   [data-testid=live-status]   "live" (stream), "polling", "offline", "signed out"
//   [data-testid=last-update]   time of the last overview; [data-testid=node-name]
//   Overview:
//     #nodes tbody tr            one row per node, data-node-id="<id>", data-self="true|false"
//       td[data-col=<field>]     field: id state address version uptime_secs shards connections
//                                channels messages_in_per_sec messages_out_per_sec
//                                cpu_percent rss_bytes; data-value holds the raw number
//     [data-testid=node-count], [data-testid=total-connections], [data-testid=total-channels],
//     [data-testid=total-messages-in], [data-testid=total-messages-out]   (data-value: raw)
//     [data-testid=latency-p50|latency-p99|latency-p999]                     (data-value: raw)
//     #apps tbody tr             one row per app, data-app-id, td[data-col=<field>]: id key
//                                connections channels subscriptions presence_channels
//                                presence_members messages_in_per_sec messages_out_per_sec
//                                client_events
//     [data-testid=webhooks-queued|sent|failed|retried|dropped|debounced]  class "bad" when
//                                failed or dropped > 0
//     [data-testid=slow-consumers-cut]  class "bad" when > 0
//     #closes tbody tr           one row per close code, data-code="<code>",
//                                td[data-col=code|meaning|count]; [data-testid=closes-empty]
//     #range-15m, #range-24h     the chart range toggle
//     #chart-rate svg, #chart-latency svg    data-points="<n>"; path.line-<series>
//   Channels:
//     #channels-app, #channels-sort, #channels tbody tr (data-channel="<name>",
//       td[data-col=name|subscription_count|user_count|messages_per_sec]),
//     [data-testid=channels-empty], [data-testid=channels-error]
//     #inspect-form, #inspect-name, #inspect-go
//     #inspector, [data-testid=inspector-name|inspector-occupied|inspector-subscriptions|
//       inspector-users|inspector-cache], #inspector-members li, [data-testid=inspector-error]
//   Operations:
//     #publish-form (#publish-app #publish-channel #publish-event #publish-data #publish-submit)
//       [data-testid=publish-result]
//     #terminate-form (#terminate-app #terminate-user #terminate-submit)
//       [data-testid=terminate-result]
//     #drain-button (asks confirm() first), [data-testid=drain-result]
//   Every result/error message: class "ok" or "error".

'use strict';

(() => {
  // ---------------------------------------------------------------- constants and state
  const OVERVIEW_POLL_MS = 1000; // fallback when the stream fails
  const STREAM_STALE_MS = 3500; // no overview for this long: the stream is considered dead
  const STREAM_RETRY_MS = 15000; // while polling, try the stream again this often
  const CHANNELS_MS = 2000;
  const SERIES_MS = { '15m': 5000, '24h': 30000 };
  const RANGE_MS = { '15m': 15 * 60 * 1000, '24h': 24 * 3600 * 1000 };
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    signedIn: false,
    view: 'overview',
    overview: null,
    range: '15m',
    series: [], // points from /admin/api/series
    live: [], // points made from live overviews, newer than the last series point
    es: null,
    streamTimer: null, // stale-stream watchdog
    pollTimer: null,
    streamRetryAt: 0,
    seriesTimer: null,
    channelsTimer: null,
    inspected: null, // {app, name}
    appIds: '',
    lastOverviewAt: 0,
  };

  // ---------------------------------------------------------------- small helpers
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const tid = (id) => $(`[data-testid="${id}"]`);

  function el(tag, attrs = {}, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svgEl(tag, attrs = {}, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  const fmtInt = (x) => (isNum(x) ? Math.round(x).toLocaleString('en-US') : '–');
  const fmtRate = (x) => (isNum(x) ? (x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)) : '–');
  const fmtMs = (x) => (isNum(x) ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : '–');
  const fmtPct = (x) => (isNum(x) ? x.toFixed(1) : '–');
  const fmtMiB = (x) => (isNum(x) ? (x / 1048576).toFixed(1) : '–');

  function fmtDuration(secs) {
    if (!isNum(secs)) return '–';
    const s = Math.floor(secs);
    const pad = (n) => String(n).padStart(2, '0');
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
    return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
  }

  function fmtClock(ms, withSecs) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, '0');
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return withSecs ? `${hm}:${pad(d.getSeconds())}` : hm;
  }

  /** Sets text and the raw value (for scripts and tests) of an element. */
  function setVal(e, raw, text) {
    if (!e) return;
    e.textContent = text;
    e.setAttribute('data-value', raw === null || raw === undefined ? '' : String(raw));
  }

  function showMsg(e, text, kind) {
    e.textContent = text;
    e.classList.remove('ok', 'error');
    e.classList.add(kind);
    e.hidden = false;
  }

  function hideMsg(e) {
    e.hidden = true;
    e.textContent = '';
  }

  // ---------------------------------------------------------------- the API
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /**
   * One API call. GETs carry the session cookie; POSTs also `X-Raptor-CSRF: 1` and a JSON body.
   * A 401 anywhere but the login itself means the session is gone: back to the login form.
   */
  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } };
    if (method !== 'GET') {
      opts.headers['X-Raptor-CSRF'] = '1';
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body === undefined ? {} : body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, 'the node does not answer');
    }
    const text = await res.text().catch(() => '');
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = { error: text.slice(0, 200) };
      }
    }
    if (!res.ok) {
      const msg = (data && typeof data.error === 'string' && data.error) || `${res.status} ${res.statusText}`;
      if (res.status === 401 && path !== '/admin/api/login') signedOut();
      throw new ApiError(res.status, msg);
    }
    return data || {};
  }

  const appPath = (app) => `/admin/api/apps/${encodeURIComponent(app)}`;

  // ---------------------------------------------------------------- sign in / out
  function showLogin(message) {
    $('#login').hidden = false;
    $('#app').hidden = true;
    $('#tabs').hidden = true;
    $('#logout').hidden = true;
    setStatus('signed out');
    const err = tid('login-error');
    if (message) showMsg(err, message, 'error');
    else hideMsg(err);
    $('#login-password').focus();
  }

  /** The session ended (401): stop every timer and stream, show the login form. */
  function signedOut() {
    if (!state.signedIn && !$('#login').hidden) return;
    state.signedIn = false;
    stopLive();
    stopSeries();
    stopChannels();
    showLogin(state.overview ? 'Your session ended; sign in again.' : '');
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const pw = $('#login-password');
    const btn = $('#login-submit');
    btn.disabled = true;
    try {
      await api('POST', '/admin/api/login', { password: pw.value });
      pw.value = '';
      hideMsg(tid('login-error'));
      $('#login').hidden = true;
      await load();
    } catch (e) {
      showMsg(tid('login-error'), e.status === 401 ? 'Wrong password.' + (e.message ? ` (${e.message})` : '') : e.message, 'error');
      pw.select();
    } finally {
      btn.disabled = false;
    }
  }

  async function onLogout() {
    try {
      await api('POST', '/admin/api/logout');
    } catch (e) {
      /* signed out either way */
    }
    state.overview = null;
    signedOut();
    showLogin('');
  }

  // ---------------------------------------------------------------- app start and views
  function startApp(overview) {
    state.signedIn = true;
    $('#login').hidden = true;
    $('#app').hidden = false;
    $('#tabs').hidden = false;
    $('#logout').hidden = false;
    hideMsg(tid('app-error'));
    renderOverview(overview);
    startLive();
    showView(state.view);
  }

  function showView(view) {
    state.view = view;
    for (const v of ['overview', 'channels', 'operations']) {
      $(`#view-${v}`).hidden = v !== view;
      $(`#tab-${v}`).classList.toggle('active', v === view);
    }
    if (view === 'overview') startSeries();
    else stopSeries();
    if (view === 'channels') startChannels();
    else stopChannels();
  }

  // ---------------------------------------------------------------- live overview
  function setStatus(s) {
    tid('live-status').textContent = s;
    const dot = $('#live-dot');
    dot.className = 'dot';
    dot.classList.add(s === 'live' ? 'on' : s === 'polling' ? 'warn' : 'off');
  }

  function startLive() {
    stopLive();
    openStream();
  }

  function stopLive() {
    if (state.es) {
      state.es.close();
      state.es = null;
    }
    clearTimeout(state.streamTimer);
    clearTimeout(state.pollTimer);
    state.streamTimer = null;
    state.pollTimer = null;
  }

  function openStream() {
    if (typeof EventSource !== 'function') {
      poll();
      return;
    }
    const es = new EventSource('/admin/api/stream');
    state.es = es;
    armStreamWatchdog();
    es.onmessage = (ev) => {
      if (state.es !== es) return;
      let ov;
      try {
        ov = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      setStatus('live');
      armStreamWatchdog();
      onOverview(ov);
    };
    es.onerror = () => {
      if (state.es !== es) return;
      streamFailed();
    };
  }

  function armStreamWatchdog() {
    clearTimeout(state.streamTimer);
    state.streamTimer = setTimeout(streamFailed, STREAM_STALE_MS);
  }

  /** The stream errored or went quiet: fall back to polling, and try it again later. */
  function streamFailed() {
    if (state.es) {
      state.es.close();
      state.es = null;
    }
    clearTimeout(state.streamTimer);
    state.streamTimer = null;
    if (!state.signedIn) return;
    state.streamRetryAt = Date.now() + STREAM_RETRY_MS;
    setStatus('polling');
    poll();
  }

  async function poll() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
    if (!state.signedIn) return;
    try {
      const ov = await api('GET', '/admin/api/overview');
      if (!state.signedIn) return;
      setStatus('polling');
      hideMsg(tid('app-error'));
      onOverview(ov);
      if (Date.now() >= state.streamRetryAt && !state.es) {
        openStream();
        return;
      }
    } catch (e) {
      if (!state.signedIn) return;
      setStatus('offline');
      showMsg(tid('app-error'), `Cannot load the overview: ${e.message}`, 'error');
    }
    if (state.signedIn && !state.es) state.pollTimer = setTimeout(poll, OVERVIEW_POLL_MS);
  }

  function onOverview(ov) {
    renderOverview(ov);
    addLivePoint(ov);
    if (state.view === 'overview') drawCharts();
  }

  // ---------------------------------------------------------------- overview rendering
  /**
   * Keeps one <tr> per item (by key) in `tbody`, in the order of `items`, creating rows with
   * `make(item)` and refreshing them with `update(tr, item)`. Rows are reused, so a click or a
   * selection survives a refresh.
   */
  function syncRows(tbody, items, keyOf, keyAttr, make, update) {
    const old = new Map();
    for (const tr of Array.from(tbody.rows)) old.set(tr.getAttribute(keyAttr), tr);
    let prev = null;
    for (const item of items) {
      const key = String(keyOf(item));
      let tr = old.get(key);
      if (tr) old.delete(key);
      else {
        tr = make(item);
        tr.setAttribute(keyAttr, key);
      }
      update(tr, item);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of old.values()) tr.remove();
  }

  function rowWithCols(cols, numeric) {
    const tr = el('tr');
    for (const c of cols) {
      const td = el('td', { 'data-col': c });
      if (numeric.includes(c)) td.classList.add('num');
      tr.appendChild(td);
    }
    return tr;
  }

  const NODE_COLS = ['id', 'state', 'address', 'version', 'uptime_secs', 'shards', 'connections', 'channels',
    'messages_in_per_sec', 'messages_out_per_sec', 'cpu_percent', 'rss_bytes'];
  const NODE_NUM = NODE_COLS.slice(4);
  const NODE_FMT = {
    uptime_secs: fmtDuration, shards: fmtInt, connections: fmtInt, channels: fmtInt,
    messages_in_per_sec: fmtRate, messages_out_per_sec: fmtRate, cpu_percent: fmtPct, rss_bytes: fmtMiB,
  };

  function updateNodeRow(tr, n) {
    tr.setAttribute('data-self', n.self ? 'true' : 'false');
    tr.classList.toggle('self', !!n.self);
    tr.classList.toggle('leaving', n.state !== 'ready');
    for (const c of NODE_COLS) {
      const td = $(`td[data-col="${c}"]`, tr);
      if (c === 'id') {
        td.textContent = n.id;
        if (n.self) td.appendChild(el('span', { class: 'badge', title: 'the node serving this page' }, 'this node'));
        td.setAttribute('data-value', n.id);
      } else if (c === 'state') {
        td.textContent = '';
        td.appendChild(el('span', { class: `state state-${n.state === 'ready' ? 'ready' : 'other'}` }, String(n.state)));
        td.setAttribute('data-value', String(n.state));
      } else if (NODE_FMT[c]) {
        setVal(td, n[c], NODE_FMT[c](n[c]));
      } else {
        setVal(td, n[c], n[c] === undefined || n[c] === null ? '–' : String(n[c]));
      }
    }
  }

  const APP_COLS = ['id', 'key', 'connections', 'channels', 'subscriptions', 'presence_channels', 'presence_members',
    'messages_in_per_sec', 'messages_out_per_sec', 'client_events'];
  const APP_NUM = APP_COLS.slice(2);

  function updateAppRow(tr, a) {
    for (const c of APP_COLS) {
      const td = $(`td[data-col="${c}"]`, tr);
      if (c.endsWith('_per_sec')) setVal(td, a[c], fmtRate(a[c]));
      else if (APP_NUM.includes(c)) setVal(td, a[c], fmtInt(a[c]));
      else setVal(td, a[c], a[c] === undefined || a[c] === null ? '–' : String(a[c]));
    }
  }

  function renderOverview(ov) {
    if (!ov || typeof ov !== 'object') return;
    state.overview = ov;
    state.lastOverviewAt = Date.now();
    tid('node-name').textContent = `${ov.node || ''}${ov.cluster ? ' · cluster' : ''}`;
    $('#drain-node').textContent = ov.node || '';
    tid('last-update').textContent = isNum(ov.time_ms) ? `updated ${fmtClock(ov.time_ms, true)}` : '';

    const nodes = Array.isArray(ov.nodes) ? ov.nodes.slice() : [];
    nodes.sort((a, b) => String(a.id).localeCompare(String(b.id)));
    syncRows($('#nodes tbody'), nodes, (n) => n.id, 'data-node-id', () => rowWithCols(NODE_COLS, NODE_NUM), updateNodeRow);

    const t = ov.totals || {};
    setVal(tid('node-count'), nodes.length, String(nodes.length));
    setVal(tid('total-connections'), t.connections, fmtInt(t.connections));
    setVal(tid('total-channels'), t.channels, fmtInt(t.channels));
    setVal(tid('total-messages-in'), t.messages_in_per_sec, fmtRate(t.messages_in_per_sec));
    setVal(tid('total-messages-out'), t.messages_out_per_sec, fmtRate(t.messages_out_per_sec));

    const l = ov.latency_ms || {};
    setVal(tid('latency-p50'), l.p50, fmtMs(l.p50));
    setVal(tid('latency-p99'), l.p99, fmtMs(l.p99));
    setVal(tid('latency-p999'), l.p999, fmtMs(l.p999));

    const apps = Array.isArray(ov.apps) ? ov.apps : [];
    syncRows($('#apps tbody'), apps, (a) => a.id, 'data-app-id', () => rowWithCols(APP_COLS, APP_NUM), updateAppRow);
    updateAppSelects(apps);

    const w = ov.webhooks || {};
    for (const k of ['queued', 'sent', 'failed', 'retried', 'dropped', 'debounced']) {
      const e = tid(`webhooks-${k}`);
      setVal(e, w[k], fmtInt(w[k]));
      e.classList.toggle('bad', (k === 'failed' || k === 'dropped') && isNum(w[k]) && w[k] > 0);
    }

    const cut = tid('slow-consumers-cut');
    setVal(cut, ov.slow_consumers_cut, fmtInt(ov.slow_consumers_cut));
    cut.classList.toggle('bad', isNum(ov.slow_consumers_cut) && ov.slow_consumers_cut > 0);
    const closes = Object.entries(ov.closes_by_code && typeof ov.closes_by_code === 'object' ? ov.closes_by_code : {})
      .map(([code, count]) => ({ code, count }))
      .sort((a, b) => (a.code === 'other') - (b.code === 'other') || Number(a.code) - Number(b.code));
    syncRows($('#closes tbody'), closes, (c) => c.code, 'data-code', () => rowWithCols(['code', 'meaning', 'count'], ['count']),
      (tr, c) => {
        setVal($('td[data-col="code"]', tr), c.code, c.code);
        setVal($('td[data-col="meaning"]', tr), CLOSE_MEANING[c.code] || '', CLOSE_MEANING[c.code] || '');
        setVal($('td[data-col="count"]', tr), c.count, fmtInt(c.count));
      });
    tid('closes-empty').hidden = closes.length > 0;
    $('#closes').hidden = closes.length === 0;
  }

  /** docs/protocol.md, "Close codes". */
  const CLOSE_MEANING = {
    1002: 'invalid WebSocket framing', 1003: 'binary message', 1007: 'text that is not UTF-8',
    1009: 'message too large', 4000: 'TLS only', 4001: 'unknown or removed app',
    4005: 'path is not /app/{key}', 4007: 'unsupported protocol', 4008: 'protocol missing',
    4009: 'not authorized in time, or terminated', 4100: 'too slow, or over quota',
    4200: 'node draining: reconnect', 4201: 'no answer to a ping', other: 'other codes',
  };

  function updateAppSelects(apps) {
    const ids = apps.map((a) => String(a.id));
    const sig = ids.join('\u0000');
    if (sig === state.appIds) return;
    state.appIds = sig;
    for (const sel of [$('#channels-app'), $('#publish-app'), $('#terminate-app')]) {
      const keep = sel.value;
      sel.textContent = '';
      for (const a of apps) sel.appendChild(el('option', { value: String(a.id) }, `${a.id} (${a.key})`));
      if (ids.includes(keep)) sel.value = keep;
    }
  }

  // ---------------------------------------------------------------- charts
  function addLivePoint(ov) {
    if (!isNum(ov.time_ms)) return;
    const self = (ov.nodes || []).find((n) => n.self) || {};
    const l = ov.latency_ms || {};
    const last = state.live.length ? state.live[state.live.length - 1].t : lastSeriesT();
    if (isNum(last) && ov.time_ms <= last) return;
    state.live.push({
      t: ov.time_ms,
      messages_in: self.messages_in_per_sec,
      messages_out: self.messages_out_per_sec,
      p50_ms: l.p50,
      p99_ms: l.p99,
    });
    const cutoff = ov.time_ms - RANGE_MS['15m'];
    while (state.live.length && state.live[0].t < cutoff) state.live.shift();
  }

  const lastSeriesT = () => (state.series.length ? state.series[state.series.length - 1].t : null);

  function startSeries() {
    stopSeries();
    const tick = async () => {
      const range = state.range;
      try {
        const s = await api('GET', `/admin/api/series?range=${range}`);
        if (range !== state.range) return;
        state.series = Array.isArray(s.points) ? s.points : [];
        state.resolution = s.resolution_secs || (range === '24h' ? 60 : 1);
        const lt = lastSeriesT();
        if (isNum(lt)) state.live = state.live.filter((p) => p.t > lt);
        drawCharts();
      } catch (e) {
        if (e.status === 401) return;
        drawCharts();
      }
      if (state.signedIn && state.view === 'overview') state.seriesTimer = setTimeout(tick, SERIES_MS[state.range]);
    };
    tick();
  }

  function stopSeries() {
    clearTimeout(state.seriesTimer);
    state.seriesTimer = null;
  }

  function setRange(range) {
    if (!RANGE_MS[range] || range === state.range) return;
    state.range = range;
    state.series = [];
    for (const b of $$('#range button')) b.classList.toggle('active', b.dataset.range === range);
    drawCharts();
    if (state.view === 'overview') startSeries();
  }

  function chartPoints() {
    // Live points (1 s apart) only extend the 1-second history.
    const pts = state.range === '15m' ? state.series.concat(state.live) : state.series.slice();
    if (!pts.length) return pts;
    const end = pts[pts.length - 1].t;
    const start = end - RANGE_MS[state.range];
    return pts.filter((p) => isNum(p.t) && p.t >= start);
  }

  function drawCharts() {
    const pts = chartPoints();
    const gapMs = (state.range === '24h' ? 60 : 1) * 1000 * 3;
    drawChart($('#chart-rate'), pts, [
      { key: 'messages_in', cls: 'in', label: 'in' },
      { key: 'messages_out', cls: 'out', label: 'out' },
    ], { fmt: (v) => fmtTick(v), gapMs });
    drawChart($('#chart-latency'), pts, [
      { key: 'p50_ms', cls: 'p50', label: 'p50' },
      { key: 'p99_ms', cls: 'p99', label: 'p99' },
    ], { fmt: (v) => fmtTick(v), gapMs });
  }

  function fmtTick(v) {
    if (v === 0) return '0';
    if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return String(+v.toPrecision(3));
  }

  /** The smallest 1, 2 or 5 × 10^n at or above x. */
  function niceCeil(x) {
    if (!(x > 0)) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= x) return m * e;
    return 10 * e;
  }

  function drawChart(box, pts, lines, opts) {
    const W = Math.max(320, Math.floor(box.clientWidth || 600));
    const H = 190;
    const pad = { l: 46, r: 10, t: 22, b: 24 };
    const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'data-points': pts.length });
    const iw = W - pad.l - pad.r;
    const ih = H - pad.t - pad.b;
    if (!pts.length) {
      svg.appendChild(svgEl('text', { x: W / 2, y: H / 2, class: 'empty', 'text-anchor': 'middle' }, 'no data yet'));
      box.replaceChildren(svg);
      return;
    }
    const t1 = pts[pts.length - 1].t;
    const t0 = t1 - RANGE_MS[state.range];
    let max = 0;
    for (const p of pts) for (const ln of lines) if (isNum(p[ln.key]) && p[ln.key] > max) max = p[ln.key];
    const ymax = niceCeil(max);
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * iw;
    const y = (v) => pad.t + ih - (v / ymax) * ih;

    // Grid and y labels.
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4;
      const yy = y(v).toFixed(1);
      svg.appendChild(svgEl('line', { x1: pad.l, x2: W - pad.r, y1: yy, y2: yy, class: i ? 'grid' : 'axis' }));
      svg.appendChild(svgEl('text', { x: pad.l - 6, y: +yy + 4, 'text-anchor': 'end', class: 'tick' }, opts.fmt(v)));
    }
    // x labels: 5 evenly spaced times.
    for (let i = 0; i <= 4; i++) {
      const t = t0 + ((t1 - t0) * i) / 4;
      const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
      svg.appendChild(svgEl('text', { x: x(t).toFixed(1), y: H - 6, 'text-anchor': anchor, class: 'tick' }, fmtClock(t, false)));
    }
    // One path per series; a gap in time breaks the line.
    for (const ln of lines) {
      let d = '';
      let prevT = null;
      for (const p of pts) {
        const v = p[ln.key];
        if (!isNum(v)) {
          prevT = null;
          continue;
        }
        const cmd = prevT === null || p.t - prevT > opts.gapMs ? 'M' : 'L';
        d += `${cmd}${x(p.t).toFixed(1)} ${y(v).toFixed(1)}`;
        prevT = p.t;
      }
      const path = svgEl('path', { d: d || 'M0 0', class: `line line-${ln.cls}` });
      path.appendChild(svgEl('title', {}, ln.label));
      svg.appendChild(path);
    }
    // Latest values, top right.
    const last = pts[pts.length - 1];
    const label = lines.map((ln) => `${ln.label} ${isNum(last[ln.key]) ? opts.fmt(+last[ln.key].toPrecision(3)) : '–'}`).join('   ');
    svg.appendChild(svgEl('text', { x: W - pad.r, y: 12, 'text-anchor': 'end', class: 'now' }, `now: ${label}`));
    box.replaceChildren(svg);
  }

  // ---------------------------------------------------------------- channels view
  function startChannels() {
    stopChannels();
    const tick = async () => {
      await Promise.all([loadChannels(), loadInspector()]);
      if (state.signedIn && state.view === 'channels') state.channelsTimer = setTimeout(tick, CHANNELS_MS);
    };
    tick();
  }

  function stopChannels() {
    clearTimeout(state.channelsTimer);
    state.channelsTimer = null;
  }

  function refreshChannelsSoon() {
    if (state.view === 'channels' && state.signedIn) startChannels();
  }

  const CH_COLS = ['name', 'subscription_count', 'user_count', 'messages_per_sec'];

  async function loadChannels() {
    const app = $('#channels-app').value;
    const err = tid('channels-error');
    if (!app) return;
    const sort = $('#channels-sort').value;
    try {
      const r = await api('GET', `${appPath(app)}/channels?sort=${encodeURIComponent(sort)}&limit=20`);
      if (app !== $('#channels-app').value) return;
      hideMsg(err);
      const list = Array.isArray(r.channels) ? r.channels : [];
      syncRows($('#channels tbody'), list, (c) => c.name, 'data-channel',
        () => rowWithCols(CH_COLS, CH_COLS.slice(1)),
        (tr, c) => {
          setVal($('td[data-col="name"]', tr), c.name, String(c.name));
          setVal($('td[data-col="subscription_count"]', tr), c.subscription_count, fmtInt(c.subscription_count));
          setVal($('td[data-col="user_count"]', tr), c.user_count, fmtInt(c.user_count));
          setVal($('td[data-col="messages_per_sec"]', tr), c.messages_per_sec, fmtRate(c.messages_per_sec));
          tr.classList.toggle('selected', !!state.inspected && state.inspected.name === c.name && state.inspected.app === app);
          tr.title = `Inspect ${c.name}`;
        });
      tid('channels-empty').hidden = list.length > 0;
    } catch (e) {
      if (e.status !== 401) showMsg(err, `Cannot list channels: ${e.message}`, 'error');
    }
  }

  function inspect(name) {
    const app = $('#channels-app').value;
    if (!name || !app) return;
    state.inspected = { app, name };
    for (const tr of $$('#channels tbody tr')) tr.classList.toggle('selected', tr.getAttribute('data-channel') === name);
    $('#inspector-hint').hidden = true;
    tid('inspector-name').textContent = name;
    refreshChannelsSoon();
  }

  async function loadInspector() {
    const target = state.inspected;
    if (!target) return;
    const err = tid('inspector-error');
    try {
      const c = await api('GET', `${appPath(target.app)}/channels/${encodeURIComponent(target.name)}`);
      if (state.inspected !== target) return;
      hideMsg(err);
      $('#inspector-body').hidden = false;
      tid('inspector-name').textContent = c.name || target.name;
      setVal(tid('inspector-occupied'), c.occupied, c.occupied ? 'yes' : 'no');
      setVal(tid('inspector-subscriptions'), c.subscription_count, fmtInt(c.subscription_count));
      setVal(tid('inspector-users'), c.user_count, isNum(c.user_count) ? fmtInt(c.user_count) : '–');
      const cache = tid('inspector-cache');
      if (c.cache && typeof c.cache === 'object') {
        const data = String(c.cache.data ?? '');
        cache.textContent = `${data.length > 300 ? data.slice(0, 300) + '…' : data}` +
          (isNum(c.cache.ttl_secs) ? `  (expires in ${fmtDuration(c.cache.ttl_secs)})` : '');
        cache.setAttribute('data-value', data);
      } else {
        setVal(cache, '', c.name && c.name.startsWith('cache-') ? 'empty' : 'not a cache channel');
      }
      const ul = $('#inspector-members');
      ul.textContent = '';
      if (Array.isArray(c.members)) {
        if (!c.members.length) ul.appendChild(el('li', { class: 'muted none' }, 'nobody'));
        for (const m of c.members) ul.appendChild(el('li', { 'data-user-id': String(m) }, String(m)));
      } else {
        ul.appendChild(el('li', { class: 'muted none' }, 'not a presence channel'));
      }
    } catch (e) {
      if (state.inspected !== target || e.status === 401) return;
      $('#inspector-body').hidden = true;
      showMsg(err, `Cannot inspect ${target.name}: ${e.message}`, 'error');
    }
  }

  // ---------------------------------------------------------------- operations
  async function runOp(resultEl, button, fn, okText) {
    button.disabled = true;
    hideMsg(resultEl);
    try {
      const r = await fn();
      showMsg(resultEl, okText(r), 'ok');
    } catch (e) {
      showMsg(resultEl, e.status ? `Refused (${e.status}): ${e.message}` : e.message, 'error');
    } finally {
      button.disabled = false;
    }
  }

  function onPublish(ev) {
    ev.preventDefault();
    const app = $('#publish-app').value;
    const channel = $('#publish-channel').value.trim();
    const event = $('#publish-event').value.trim();
    const data = $('#publish-data').value;
    runOp(tid('publish-result'), $('#publish-submit'),
      () => api('POST', `${appPath(app)}/publish`, { channel, event, data }),
      () => `Published "${event}" to ${channel} (app ${app}) at ${fmtClock(Date.now(), true)}.`);
  }

  function onTerminate(ev) {
    ev.preventDefault();
    const app = $('#terminate-app').value;
    const user = $('#terminate-user').value.trim();
    runOp(tid('terminate-result'), $('#terminate-submit'),
      () => api('POST', `${appPath(app)}/users/${encodeURIComponent(user)}/terminate`),
      () => `Terminated the connections of user "${user}" (app ${app}) on every node.`);
  }

  function onDrain() {
    const node = (state.overview && state.overview.node) || 'this node';
    const yes = window.confirm(`Drain ${node}? Its clients are told to reconnect elsewhere (4200), it leaves the cluster and the process exits.`);
    if (!yes) return;
    runOp(tid('drain-result'), $('#drain-button'),
      () => api('POST', '/admin/api/drain'),
      (r) => (r.draining ? `${node} is draining: it leaves the cluster and exits.` : `Drain requested: ${JSON.stringify(r)}`));
  }

  // ---------------------------------------------------------------- wiring
  function init() {
    $('#login-form').addEventListener('submit', onLogin);
    $('#logout').addEventListener('click', onLogout);
    for (const b of $$('#tabs .tab')) b.addEventListener('click', () => showView(b.dataset.view));
    for (const b of $$('#range button')) b.addEventListener('click', () => setRange(b.dataset.range));
    $('#channels-app').addEventListener('change', () => {
      state.inspected = null;
      $('#inspector-body').hidden = true;
      $('#inspector-hint').hidden = false;
      $('#channels tbody').textContent = '';
      refreshChannelsSoon();
    });
    $('#channels-sort').addEventListener('change', refreshChannelsSoon);
    $('#channels tbody').addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr[data-channel]');
      if (tr) inspect(tr.getAttribute('data-channel'));
    });
    $('#inspect-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      inspect($('#inspect-name').value.trim());
    });
    $('#publish-form').addEventListener('submit', onPublish);
    $('#terminate-form').addEventListener('submit', onTerminate);
    $('#drain-button').addEventListener('click', onDrain);
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.view === 'overview' && drawCharts(), 150);
    });
    load();
  }

  /** The first overview; then the app. Retries while the node is starting or unreachable. */
  async function load() {
    try {
      const ov = await api('GET', '/admin/api/overview');
      startApp(ov);
    } catch (e) {
      if (e.status === 401) return; // api() showed the login form
      setStatus(e.status === 503 ? 'starting' : 'offline');
      showMsg(tid('app-error'), e.status === 503 ? `The node is not ready: ${e.message}` : `Cannot reach the admin API: ${e.message}. Retrying…`, 'error');
      setTimeout(load, e.status === 503 ? 1000 : 2000);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
