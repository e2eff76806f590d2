// Top functions: self time aggregated by function, and sorting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { M, APP, SITE, frame, pseudo, finish, sampleTree } from './helpers.mjs';

test('topFunctions adds up self time per function, file and line, largest first', () => {
  const root = finish(
    frame('handler', APP + 'app/h.py', 1, {},
      frame('a', APP + 'app/a.py', 1, {}, frame('parse', APP + 'app/p.py', 10, { self: 0.002, cpu: 0.001 })),
      frame('b', APP + 'app/b.py', 1, {}, frame('parse', APP + 'app/p.py', 10, { self: 0.003, cpu: 0.003 })),
      // Same name, other file: another function.
      frame('parse', SITE + 'lib/p.py', 10, { self: 0.004 })));
  const idx = M.flatten(root);
  const rows = M.topFunctions(idx);
  assert.deepEqual(rows.slice(0, 2).map((r) => [r.function, r.short_file, r.count]), [
    ['parse', 'app/p.py', 2],
    ['parse', 'lib/p.py', 1],
  ]);
  const app = rows[0];
  assert.ok(Math.abs(app.self_wall_s - 0.005) < 1e-12);
  assert.ok(Math.abs(app.self_cpu_s - 0.004) < 1e-12);
  assert.equal(app.category, 'app');
  assert.equal(rows[1].category, 'library');
  // Occurrences, heaviest first: the one under b.
  assert.equal(idx.nodes[idx.parent[app.ids[0]]].function, 'b');
  const total = rows.reduce((t, r) => t + r.self_wall_s, 0);
  assert.ok(Math.abs(total - root.wall_s) < 1e-12, 'every second of self time is in one row');
});

test('total time counts a recursive function once per stack', () => {
  const root = finish(
    frame('main', APP + 'm.py', 1, {},
      frame('fib', APP + 'f.py', 1, { self: 0.001 },
        frame('fib', APP + 'f.py', 1, { self: 0.002 },
          frame('fib', APP + 'f.py', 1, { self: 0.003 })))));
  const row = M.topFunctions(M.flatten(root)).find((r) => r.function === 'fib');
  assert.equal(row.count, 3);
  assert.ok(Math.abs(row.self_wall_s - 0.006) < 1e-12);
  assert.ok(Math.abs(row.total_wall_s - 0.006) < 1e-12, 'not 0.006 + 0.005 + 0.003');
});

test('pseudo-frames have their own rows', () => {
  const rows = M.topFunctions(M.flatten(sampleTree()));
  assert.equal(rows[0].function, '[await]');
  assert.equal(rows[0].kind, 'await');
  assert.equal(rows[0].category, 'pseudo');
});

test('sortRows sorts numbers and strings either way, stably', () => {
  const rows = [
    { name: 'b', function: 'beta', n: 2 },
    { name: 'a', function: 'Alpha', n: 2 },
    { name: 'c', function: 'gamma', n: 1 },
  ];
  assert.deepEqual(M.sortRows(rows, 'n', true).map((r) => r.name), ['a', 'b', 'c']);
  assert.deepEqual(M.sortRows(rows, 'n', false).map((r) => r.name), ['c', 'a', 'b']);
  assert.deepEqual(M.sortRows(rows, 'function', false).map((r) => r.function), ['Alpha', 'beta', 'gamma']);
  assert.deepEqual(M.sortRows(rows, 'function', true).map((r) => r.function), ['gamma', 'beta', 'Alpha']);
  assert.deepEqual(rows.map((r) => r.name), ['b', 'a', 'c'], 'input left alone');
});

test('the frames of a request that held the event loop count as the wait, not as functions', () => {
  const root = finish(
    frame('victim', APP + 'v.py', 1, {},
      pseudo('await', '[await]', { self: 0.01 },
        pseudo('loop-busy', '[event loop busy]', {},
          pseudo('blocker', 'GET /hog', {}, frame('burn', APP + 'h.py', 5, { self: 0.2 })))),
      frame('render', APP + 'v.py', 9, { self: 0.003 })));
  const rows = M.topFunctions(M.flatten(root));
  assert.deepEqual(rows.map((r) => r.function), ['[event loop busy]', '[await]', 'render', 'victim']);
  assert.ok(Math.abs(rows[0].self_wall_s - 0.2) < 1e-12);
  const total = rows.reduce((t, r) => t + r.self_wall_s, 0);
  assert.ok(Math.abs(total - root.wall_s) < 1e-12, 'every second of self time is in one row');
});
