// docs/grafana/raptor.json against a real server's /metrics: every metric a panel or a
// template variable queries exists in the output (with the quantiles it asks for), rate() only
// over counters, and the file is an importable dashboard (a ${DS_PROMETHEUS} input that every
// panel and query uses, unique panel ids, grid positions).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { REPO_ROOT, configToml, http, randomPassword, startNode, stopNode } from './lib.mjs';

const dash = JSON.parse(readFileSync(join(REPO_ROOT, 'docs', 'grafana', 'raptor.json'), 'utf8'));
let node;
let exposition = '';

before(async () => {
  node = await startNode({ name: 'metrics', toml: configToml([`password = "${randomPassword()}"`]), args: ['--metrics-bind', '127.0.0.1:0'] });
  assert.ok(node.metrics, 'the metrics listener address');
  const r = await http(`http://${node.metrics}/metrics`);
  assert.equal(r.status, 200);
  exposition = r.text;
});

after(() => stopNode(node));

/** Every panel, rows' nested panels included. */
function allPanels(panels = dash.panels) {
  return panels.flatMap((p) => [p, ...allPanels(p.panels || [])]);
}

/** Every PromQL string: the panels' targets and the template variables' queries. */
function allQueries() {
  const q = [];
  for (const p of allPanels()) for (const t of p.targets || []) q.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  for (const v of dash.templating.list) {
    if (v.type === 'query') q.push({ where: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query });
  }
  return q;
}

/** name -> {type, samples:Set of label strings} from the Prometheus text format. */
function parseExposition(text) {
  const types = new Map();
  const samples = new Map();
  for (const line of text.split('\n')) {
    const t = line.match(/^# TYPE (\S+) (\S+)/);
    if (t) types.set(t[1], t[2]);
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s/);
    assert.ok(m, `unparsable line: ${line}`);
    if (!samples.has(m[1])) samples.set(m[1], new Set());
    samples.get(m[1]).add(m[2] || '');
  }
  return { types, samples };
}

test('the dashboard file is an importable Grafana dashboard', () => {
  assert.ok(dash.schemaVersion >= 36 && dash.schemaVersion <= 41, `schemaVersion ${dash.schemaVersion}`);
  assert.deepEqual(dash.__inputs.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
  assert.equal(typeof dash.title, 'string');
  assert.equal(typeof dash.uid, 'string');
  const panels = allPanels();
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels) {
    assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24, `gridPos of ${p.title}`);
    if (p.type === 'row') continue;
    assert.ok(['timeseries', 'stat'].includes(p.type), `${p.title}: ${p.type}`);
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, p.title);
    assert.ok(p.targets.length > 0, `${p.title} has no query`);
    for (const t of p.targets) assert.equal(t.datasource.uid, '${DS_PROMETHEUS}', `${p.title} ${t.refId}`);
  }
  for (const v of dash.templating.list) assert.equal(v.datasource.uid, '${DS_PROMETHEUS}', `$${v.name}`);
  // What the brief asks the dashboard to cover.
  const exprs = allQueries().map((q) => q.expr).join('\n');
  for (const m of ['raptor_connections', 'raptor_channels', 'raptor_messages_in_total', 'raptor_messages_out_total',
    'raptor_bytes_out_total', 'raptor_publish_to_write_microseconds', 'raptor_slow_consumers_cut_total',
    'raptor_webhook_events_failed_total', 'raptor_cluster_live_nodes', 'raptor_cluster_frames_sent_total']) {
    assert.ok(exprs.includes(m), `no panel shows ${m}`);
  }
});

test('every metric the dashboard queries exists in a real server\'s /metrics', () => {
  const { types, samples } = parseExposition(exposition);
  const typeOf = (name) => types.get(name) || (name.endsWith('_count') || name.endsWith('_sum') ? `${types.get(name.replace(/_(count|sum)$/, ''))}-part` : undefined);
  let checked = 0;
  for (const { where, expr } of allQueries()) {
    assert.equal((expr.match(/\(/g) || []).length, (expr.match(/\)/g) || []).length, `${where}: unbalanced parentheses: ${expr}`);
    const names = [...expr.matchAll(/\b(raptor_[a-zA-Z0-9_:]+)/g)].map((m) => m[1]);
    assert.ok(names.length > 0, `${where} queries no raptor metric: ${expr}`);
    for (const name of names) {
      checked++;
      assert.ok(samples.has(name), `${where}: ${name} is not in /metrics`);
    }
    // The quantiles asked for are exported.
    for (const m of expr.matchAll(/(raptor_[a-zA-Z0-9_:]+)\{[^}]*quantile="([^"]+)"/g)) {
      assert.ok(samples.get(m[1]).has(`{quantile="${m[2]}"}`), `${where}: ${m[1]} has no quantile ${m[2]}`);
    }
    // rate()/increase() only over counters (or a summary's _count); gauges and quantiles raw.
    for (const m of expr.matchAll(/\b(rate|increase|irate)\((raptor_[a-zA-Z0-9_:]+)/g)) {
      const t = typeOf(m[2]);
      assert.ok(t === 'counter' || t === 'summary-part', `${where}: ${m[1]}() over ${m[2]} (a ${t})`);
    }
    for (const name of names) {
      const t = typeOf(name);
      if (t === 'counter' || t === 'summary-part') {
        assert.match(expr, new RegExp(`\\b(rate|increase|irate)\\(${name}\\b`), `${where}: the counter ${name} is shown raw`);
      }
    }
  }
  assert.ok(checked >= 30, `only ${checked} metric references checked`);
});
