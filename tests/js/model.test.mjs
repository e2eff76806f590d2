// The viewer's model: file categories, colours, formatting, the index,
// the hot path and search.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { M, APP, SITE, STDLIB, frame, pseudo, finish, sampleTree, chain } from './helpers.mjs';

const fnNames = (idx, ids) => ids.map((i) => idx.nodes[i].function);

test('fileCategory tells site-packages, stdlib and app code apart', () => {
  const cases = [
    [SITE + 'starlette/routing.py', 'library'],
    ['/usr/lib/python3/dist-packages/yaml/__init__.py', 'library'],
    ['C:\\venv\\Lib\\site-packages\\fastapi\\routing.py', 'library'],
    [STDLIB + 'json/__init__.py', 'stdlib'],
    ['/home/dev/.pyenv/versions/3.12.1/lib/python3.12/asyncio/tasks.py', 'stdlib'],
    ['/opt/py/lib64/python3.13t/threading.py', 'stdlib'],
    ['C:\\Python311\\Lib\\json\\encoder.py', 'stdlib'],
    ['<frozen importlib._bootstrap>', 'stdlib'],
    [APP + 'app/main.py', 'app'],
    ['/home/me/project/lib/python_utils/x.py', 'app'],
    ['<string>', 'app'],
    ['', 'app'],
  ];
  for (const [file, want] of cases) assert.equal(M.fileCategory(file), want, file);
});

test('nodeCategory marks pseudo-frames whatever their file', () => {
  assert.equal(M.nodeCategory(pseudo('await', '[await]')), 'pseudo');
  assert.equal(M.nodeCategory(pseudo('thread', '[thread x]')), 'pseudo');
  assert.equal(M.isLibrary(pseudo('truncated', '[truncated]')), false);
  assert.equal(M.isLibrary(frame('f', STDLIB + 'json/encoder.py', 1)), true);
  assert.equal(M.isLibrary(frame('f', APP + 'app/a.py', 1)), false);
});

test('colourFor is stable per module and mutes library code', () => {
  const a1 = frame('one', APP + 'app/a.py', 1);
  const a2 = frame('two', APP + 'app/a.py', 50);
  const b = frame('one', APP + 'app/b.py', 1);
  assert.equal(M.colourFor(a1), M.colourFor(a2));
  assert.notEqual(M.colourFor(a1), M.colourFor(b));
  assert.equal(M.colourFor(a1), M.colourFor(JSON.parse(JSON.stringify(a1))), 'same colour in another report');
  const sat = (c) => Number(/hsl\(\d+, (\d+)%/.exec(c)[1]);
  assert.ok(sat(M.colourFor(frame('f', SITE + 'x/y.py', 1))) < sat(M.colourFor(a1)));
  assert.equal(M.colourFor(pseudo('await', '[await]')), M.colourFor(pseudo('await', '[await]', { self: 1 })));
  assert.notEqual(M.colourFor(pseudo('await', '[await]')), M.colourFor(pseudo('thread', '[thread t]')));
  assert.equal(M.hashString('starlette/routing.py'), M.hashString('starlette/routing.py'));
});

test('formatTime picks a unit and trims zeros', () => {
  const cases = [
    [0, '0'], [1.5e-9, '2 ns'], [4.56e-7, '456 ns'], [0.000456, '456 µs'], [0.0000123, '12.3 µs'],
    [0.001, '1 ms'], [0.0123, '12.3 ms'], [0.1234, '123 ms'], [1.234, '1.23 s'], [65, '65 s'],
    [250.4, '250 s'], [NaN, '–'], [undefined, '–'],
  ];
  for (const [s, want] of cases) assert.equal(M.formatTime(s), want, String(s));
});

test('formatPercent and percent', () => {
  assert.equal(M.formatPercent(1), '100%');
  assert.equal(M.formatPercent(0.5), '50%');
  assert.equal(M.formatPercent(0.123), '12.3%');
  assert.equal(M.formatPercent(0.01234), '1.2%');
  assert.equal(M.formatPercent(0.000123), '0.01%');
  assert.equal(M.formatPercent(0.0000001), '<0.01%');
  assert.equal(M.formatPercent(0), '0%');
  assert.equal(M.percent(1, 4), 0.25);
  assert.equal(M.percent(1, 0), 0, 'no division by zero');
  assert.equal(M.formatBytes(1834), '1.8 kB');
  assert.equal(M.formatBytes(12), '12 B');
});

test('intervalNote says when the overhead budget lengthened the interval, and to what', () => {
  const p = { interval_s: 0.001, effective_interval_s: 0.00437, overhead_budget_percent: 0.25 };
  assert.equal(M.intervalNote(p), 'lengthened to 4.37 ms (1 ms asked) to stay within the 0.25% overhead budget');
  assert.equal(M.intervalNote({ ...p, overhead_budget_percent: 2 }),
    'lengthened to 4.37 ms (1 ms asked) to stay within the 2% overhead budget');
  assert.equal(M.intervalNote({ ...p, overhead_budget_percent: null }),
    'lengthened to 4.37 ms (1 ms asked) to stay within the overhead budget of another session');
  // Not lengthened, by under 1%, or a profile from before the field.
  assert.equal(M.intervalNote({ ...p, effective_interval_s: 0.001 }), null);
  assert.equal(M.intervalNote({ ...p, effective_interval_s: 0.001009 }), null);
  assert.equal(M.intervalNote({ interval_s: 0.001 }), null);
  assert.equal(M.intervalNote({ ...p, interval_s: 0 }), null);
  assert.equal(M.intervalNote(null), null);
});

test('samplerCpu gives the engine CPU and its share of a core, or nothing', () => {
  assert.equal(M.samplerCpu({ sampler_cpu_s: 0.0031, sampler_cpu_percent: 0.31 }), '3.1 ms (0.31% of a core)');
  assert.equal(M.samplerCpu({ sampler_cpu_s: 0, sampler_cpu_percent: null }), '0');
  assert.equal(M.samplerCpu({ sampler_cpu_s: null, sampler_cpu_percent: null }), '');
  assert.equal(M.samplerCpu({}), '');
});

test('flatten numbers nodes in preorder with parent, depth and subtree end', () => {
  const root = sampleTree();
  const idx = M.flatten(root);
  assert.equal(idx.size, 8);
  assert.deepEqual(fnNames(idx, [...Array(idx.size).keys()]),
    ['handler', 'sleep', '[await]', 'Router.__call__', 'Route.handle', 'endpoint', 'dumps', 'helper']);
  assert.equal(idx.nodes[0], root);
  assert.equal(idx.parent[0], -1);
  for (let i = 1; i < idx.size; i++) {
    const p = idx.parent[i];
    assert.ok(idx.nodes[p].children.includes(idx.nodes[i]), 'parent links');
    assert.equal(idx.depth[i], idx.depth[p] + 1);
    assert.ok(i < idx.end[i] && idx.end[i] <= idx.end[p], 'subtree inside its parent');
  }
  assert.equal(idx.end[0], idx.size);
  assert.deepEqual(fnNames(idx, M.childIds(idx, 0)), root.children.map((c) => c.function));
  const leaf = idx.nodes.findIndex((n) => n.function === 'endpoint');
  assert.deepEqual(fnNames(idx, M.ancestorIds(idx, leaf)), ['handler', 'Router.__call__', 'Route.handle', 'endpoint']);
  assert.equal(idx.maxDepth, 3);
  assert.equal(idx.lib[M.idOf(idx, root)], 0);
  assert.equal(idx.lib[idx.nodes.findIndex((n) => n.function === 'dumps')], 1);
});

test('flatten and hotPath handle a 10,000-deep chain without recursion', () => {
  const idx = M.flatten(chain(10000));
  assert.equal(idx.size, 10000);
  assert.equal(idx.maxDepth, 9999);
  assert.equal(M.hotPath(idx).length, 10000);
});

test('hotPath follows the heaviest child, and stops under minShare', () => {
  const idx = M.flatten(sampleTree());
  // sleep/[await] is 10 ms of 19.5; the starlette branch 6.5 ms.
  assert.deepEqual(fnNames(idx, M.hotPath(idx, 'wall_s')), ['handler', 'sleep', '[await]']);
  // By CPU the await (no CPU) loses to the starlette branch.
  assert.deepEqual(fnNames(idx, M.hotPath(idx, 'cpu_s')), ['handler', 'Router.__call__', 'Route.handle', 'endpoint']);
  assert.deepEqual(fnNames(idx, M.hotPath(idx, 'wall_s', 0.6)), ['handler']);
});

test('hotLines lists a node\'s lines, most time first', () => {
  const n = frame('f', APP + 'a.py', 1, { self: 0.005, lines: { 9: 0.001, 7: 0.004, 12: 0.001 } });
  assert.deepEqual(M.hotLines(n), [[7, 0.004], [9, 0.001], [12, 0.001]]);
  assert.deepEqual(M.hotLines({}), []);
});

test('searchTree matches names and files, case-insensitively, with paths and subtrees', () => {
  const idx = M.flatten(sampleTree());
  assert.equal(M.searchTree(idx, '   '), null);
  const s = M.searchTree(idx, 'ROUTE.h');
  const matched = fnNames(idx, [...s.match.keys()].filter((i) => s.match[i]));
  assert.deepEqual(matched, ['Route.handle']);
  assert.equal(s.count, 1);
  const on = fnNames(idx, [...s.onPath.keys()].filter((i) => s.onPath[i]));
  assert.deepEqual(on, ['handler', 'Router.__call__', 'Route.handle']);
  const keep = fnNames(idx, [...s.keep.keys()].filter((i) => s.keep[i]));
  assert.deepEqual(keep.sort(), ['Route.handle', 'Router.__call__', 'dumps', 'endpoint', 'handler'].sort());
  // A file path matches too (site-packages is only in `file`).
  const f = M.searchTree(idx, 'site-packages');
  assert.equal(f.count, 2);
  // The query is trimmed.
  assert.equal(M.searchTree(idx, ' endpoint ').query, 'endpoint');
});

test('highlightRanges finds every occurrence, whatever the case', () => {
  assert.deepEqual(M.highlightRanges('Route.handle (starlette/routing.py:275)', 'ROUT'), [[0, 4], [24, 28]]);
  assert.deepEqual(M.highlightRanges('abc', ''), []);
  assert.deepEqual(M.highlightRanges('abc', 'x'), []);
  // Lower-casing İ changes the length: the whole text is one range.
  assert.deepEqual(M.highlightRanges('İstanbul', 'stan'), [[0, 8]]);
});

test('validateProfile explains what is wrong', () => {
  assert.deepEqual(M.validateProfile({ version: 1, root: finish(frame('f', APP + 'a.py', 1)) }), []);
  assert.match(M.validateProfile({ version: 2, root: {} }).join(' '), /version 2/);
  assert.match(M.validateProfile({ version: 1 }).join(' '), /no root/);
  assert.equal(M.validateProfile(null).length, 1);
});

// ---- the breakdown bar ----------------------------------------------------

const BREAKDOWN = {
  running: { wall_s: 0.003, cpu_s: 0.002 }, awaiting: { wall_s: 0.011 },
  event_loop_busy: { wall_s: 0.298, blockers: [{ name: 'GET /hog', wall_s: 0.286, share: 0.96 },
    { name: '[no request]', wall_s: 0.012, share: 0.04 }] },
  in_worker_threads: { wall_s: 0, cpu_s: 0 }, gc: { wall_s: 0 }, unsampled: { wall_s: 0 },
  out_of_context: { wall_s: 0 },
};

test('breakdownParts keeps the parts with time, in order, with shares and blockers', () => {
  const parts = M.breakdownParts({ breakdown: BREAKDOWN });
  assert.deepEqual(parts.map((p) => p.key), ['running', 'awaiting', 'event_loop_busy']);
  assert.deepEqual(parts.map((p) => p.kind), [null, 'await', 'loop-busy']);
  const sum = parts.reduce((t, p) => t + p.share, 0);
  assert.ok(Math.abs(sum - 1) < 1e-9, String(sum));
  assert.ok(Math.abs(parts[2].share - 0.298 / 0.312) < 1e-9);
  assert.equal(parts[2].blockers[0].name, 'GET /hog');
  assert.deepEqual(parts[0].blockers, []);
});

test('breakdownParts of a profile written before the breakdown is empty', () => {
  assert.deepEqual(M.breakdownParts({}), []);
  assert.deepEqual(M.breakdownParts({ breakdown: null }), []);
  assert.deepEqual(M.breakdownParts({ breakdown: { running: { wall_s: 0 } } }), []);
});

test('kindFilter keeps the paths to the nodes of a kind and what is below them', () => {
  const root = finish(frame('victim', APP + 'app.py', 10, {},
    frame('sleep', STDLIB + 'asyncio/tasks.py', 600, {},
      pseudo('await', '[await]', { self: 0.011 },
        pseudo('loop-busy', '[event loop busy]', {},
          pseudo('blocker', 'GET /hog', {}, frame('hog', APP + 'app.py', 20, { self: 0.29 }))))),
    frame('helper', APP + 'app.py', 30, { self: 0.003 })));
  const idx = M.flatten(root);
  const s = M.kindFilter(idx, 'loop-busy');
  assert.equal(s.count, 1);
  const kept = [...Array(idx.size).keys()].filter((i) => s.keep[i]).map((i) => idx.nodes[i].function);
  assert.deepEqual(kept, ['victim', 'sleep', '[await]', '[event loop busy]', 'GET /hog', 'hog']);
  assert.equal(M.kindFilter(idx, 'gc'), null);
  assert.equal(M.kindFilter(idx, null), null);
});
