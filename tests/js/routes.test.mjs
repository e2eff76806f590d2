// The dashboard's model: state in the URL fragment, time ranges, the route
// table's order and filter, the API's URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const R = require('../../src/reqprof/viewer/routes.js');

const rows = [
  { method: 'GET', route: '/items', count: 10, errors: 0, p50_ms: 5, p95_ms: 9, p99_ms: 12, max_ms: 30, wall_s: 0.2, cpu_s: 0.1 },
  { method: 'POST', route: '/items', count: 3, errors: 1, p50_ms: 50, p95_ms: 90, p99_ms: 99, max_ms: 120, wall_s: 0.5, cpu_s: 0.05 },
  { method: 'GET', route: '/Users/{id}', count: 10, errors: 2, p50_ms: 1, p95_ms: 2, p99_ms: 3, max_ms: 4, wall_s: 0.01, cpu_s: 0.01 },
  { method: 'DELETE', route: '/admin', count: 1, errors: 0, p50_ms: 0.5, p95_ms: 0.5, p99_ms: 0.5, max_ms: 0.5, wall_s: 0.0005, cpu_s: 0 },
];

test('the default state is the route table of the last hour, by wall time', () => {
  const s = R.parseState('');
  assert.equal(s.range, '1h');
  assert.equal(s.sort, 'wall_s');
  assert.equal(s.desc, true);
  assert.equal(s.route, null);
  assert.equal(R.formatState(s), '');
});

test('a state survives the fragment, route names included', () => {
  const hostile = '/x/</script><img src=x onerror=alert(1)>&route=evil#frag';
  const s = R.withState(R.defaultState(), {
    range: 'custom', since: 1700000000, until: 1700003600, sort: 'p99_ms', desc: false, q: 'items',
    method: 'GET', route: hostile, tab: 'compare', cmp: 'requests', ra: 3, rb: 17, a0: 1, a1: 2, b0: 3, b1: 4,
  });
  const hash = '#' + R.formatState(s);
  assert.doesNotMatch(hash.slice(1), /[<>#]/);
  const back = R.parseState(hash);
  assert.deepEqual(back, s);
});

test('unknown or bad values fall back to the defaults', () => {
  const s = R.parseState('#range=5y&sort=__proto__&tab=<b>&cmp=x&ra=-1&rb=1.5&since=abc&a0=NaN');
  assert.equal(s.range, '1h');
  assert.equal(s.sort, 'wall_s');
  assert.equal(s.tab, 'flame');
  assert.equal(s.cmp, 'ranges');
  assert.equal(s.ra, null);
  assert.equal(s.rb, null);
  assert.equal(s.since, null);
  assert.equal(s.a0, null);
  // A custom range needs its start.
  assert.equal(R.parseState('#range=custom').range, '1h');
  // Times only count for a custom range.
  assert.equal(R.parseState('#range=24h&since=5').since, null);
});

test('descending is the default for numbers, ascending for names', () => {
  assert.equal(R.parseState('#sort=route').desc, false);
  assert.equal(R.parseState('#sort=count').desc, true);
  assert.equal(R.parseState('#sort=count&desc=0').desc, false);
  assert.equal(R.formatState(R.parseState('#sort=route')), 'sort=route');
  assert.equal(R.formatState(R.parseState('#sort=route&desc=1')), 'sort=route&desc=1');
});

test('compare fields are kept only on the compare tab', () => {
  const s = R.withState(R.defaultState(), { method: 'GET', route: '/a', tab: 'tree', ra: 1, rb: 2 });
  assert.equal(R.formatState(s), 'method=GET&route=%2Fa&tab=tree');
});

test('rangeBounds: presets back from now, all, custom', () => {
  const now = 1700000000.7;
  assert.deepEqual(R.rangeBounds(R.parseState('#range=15m'), now), { since: 1700000000 - 900, until: null });
  assert.deepEqual(R.rangeBounds(R.parseState(''), now), { since: 1700000000 - 3600, until: null });
  assert.deepEqual(R.rangeBounds(R.parseState('#range=24h'), now), { since: 1700000000 - 86400, until: null });
  assert.deepEqual(R.rangeBounds(R.parseState('#range=all'), now), { since: 0, until: null });
  assert.deepEqual(R.rangeBounds(R.parseState('#range=custom&since=10&until=20'), now), { since: 10, until: 20 });
  assert.deepEqual(R.rangeBounds(R.parseState('#range=custom&since=10'), now), { since: 10, until: null });
  assert.deepEqual(R.defaultCompare(now), { a0: 1700000000 - 7200, a1: 1700000000 - 3600, b0: 1700000000 - 3600, b1: 1700000000 });
});

test('sortRoutes: by any column, both ways, stable', () => {
  const by = (key, desc) => R.sortRoutes(rows, key, desc).map((r) => r.method + ' ' + r.route);
  assert.deepEqual(by('wall_s', true), ['POST /items', 'GET /items', 'GET /Users/{id}', 'DELETE /admin']);
  assert.deepEqual(by('cpu_s', false), ['DELETE /admin', 'GET /Users/{id}', 'POST /items', 'GET /items']);
  // Equal counts keep the given order, whichever way.
  assert.deepEqual(by('count', true), ['GET /items', 'GET /Users/{id}', 'POST /items', 'DELETE /admin']);
  assert.deepEqual(by('count', false), ['DELETE /admin', 'POST /items', 'GET /items', 'GET /Users/{id}']);
  // Names compare case-insensitively.
  assert.deepEqual(by('route', false), ['DELETE /admin', 'GET /items', 'POST /items', 'GET /Users/{id}']);
  assert.deepEqual(by('method', true), ['POST /items', 'GET /items', 'GET /Users/{id}', 'DELETE /admin']);
  for (const c of R.COLUMNS) assert.equal(R.sortRoutes(rows, c.key, true).length, rows.length);
  assert.notEqual(R.sortRoutes(rows, 'count', true), rows, 'a new array');
});

test('sortRoutes puts missing numbers last when descending', () => {
  const sorted = R.sortRoutes([{ route: 'a', p99_ms: null }, { route: 'b', p99_ms: 3 }, { route: 'c' }], 'p99_ms', true);
  assert.deepEqual(sorted.map((r) => r.route), ['b', 'a', 'c']);
});

test('filterRoutes matches method and route, case-insensitively', () => {
  assert.deepEqual(R.filterRoutes(rows, 'users').map((r) => r.route), ['/Users/{id}']);
  assert.deepEqual(R.filterRoutes(rows, 'post /it').map((r) => r.method), ['POST']);
  assert.equal(R.filterRoutes(rows, '  ').length, 4);
  assert.equal(R.filterRoutes(rows, 'nothing').length, 0);
});

test('totals add up the table', () => {
  assert.deepEqual(R.totals(rows), { routes: 4, count: 24, errors: 3, wall_s: 0.2 + 0.5 + 0.01 + 0.0005, cpu_s: 0.1 + 0.05 + 0.01 });
});

test('apiUrl: same-origin paths only, parameters encoded', () => {
  assert.equal(R.apiUrl('routes', { since: 10, until: null }), '/api/routes?since=10');
  assert.equal(R.apiUrl('profile', { method: 'GET', route: '/a b/<x>&y=1' }),
    '/api/profile?method=GET&route=%2Fa+b%2F%3Cx%3E%26y%3D1');
  assert.equal(R.apiUrl('requests/12', {}), '/api/requests/12');
  assert.throws(() => R.apiUrl('//evil.example/x', {}));
  assert.throws(() => R.apiUrl('requests/1/../../x', {}));
  assert.equal(R.reportUrl(42), '/requests/42');
  assert.throws(() => R.reportUrl('42/../x'));
  assert.throws(() => R.reportUrl(-1));
});

test('local datetime inputs round-trip to the minute', () => {
  const t = 1700000040;
  const text = R.toLocalInput(t);
  assert.match(text, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/);
  assert.equal(R.fromLocalInput(text), t);
  assert.equal(R.fromLocalInput(''), null);
  assert.equal(R.fromLocalInput('yesterday'), null);
  assert.equal(R.toLocalInput(NaN), '');
});

test('formatMs and formatCount', () => {
  assert.equal(R.formatMs(0.4213), '0.42 ms');
  assert.equal(R.formatMs(12.34), '12.3 ms');
  assert.equal(R.formatMs(1234.5), '1,235 ms');
  assert.equal(R.formatMs(null), '–');
  assert.equal(R.formatCount(1234567), '1,234,567');
  assert.equal(R.formatCount(999), '999');
  assert.equal(R.formatCount(1000), '1,000');
  assert.equal(R.formatCount(0), '0');
  assert.equal(R.formatCount(-1234), '-1,234');
  assert.equal(R.formatMs(100000.4), '100,000 ms');
});
