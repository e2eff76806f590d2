// Library-frame grouping: the display tree the call-tree view shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { M, APP, SITE, STDLIB, frame, pseudo, finish, sampleTree, shape } from './helpers.mjs';

const idOf = (idx, fn) => idx.nodes.findIndex((n) => n.function === fn);

test('library frames fold into one group whose children are the app frames they call', () => {
  const idx = M.flatten(sampleTree());
  const dt = M.buildDisplayTree(idx, { groupLibrary: true });
  assert.deepEqual(shape(idx, dt), {
    handler: [
      // asyncio.sleep alone is one library frame: not worth a group.
      { sleep: ['[await]'] },
      // Router.__call__ -> Route.handle -> json.dumps: three library frames.
      { 'group(3)': ['endpoint'] },
      'helper',
    ],
  });
});

test('a group adds up: self time of its frames plus its exits is its wall time', () => {
  const idx = M.flatten(sampleTree());
  const dt = M.buildDisplayTree(idx, { groupLibrary: true });
  const g = dt.children(dt.root).find((d) => d.type === 'group');
  assert.equal(g.id, idOf(idx, 'Router.__call__'));
  assert.deepEqual(g.members.map((i) => idx.nodes[i].function), ['Router.__call__', 'Route.handle', 'dumps']);
  assert.deepEqual(g.exits.map((i) => idx.nodes[i].function), ['endpoint']);
  assert.ok(Math.abs(g.self_wall_s - 0.0015) < 1e-12);
  const exitWall = g.exits.reduce((t, i) => t + idx.nodes[i].wall_s, 0);
  assert.ok(Math.abs(g.self_wall_s + exitWall - g.wall_s) < 1e-12);
  assert.deepEqual(g.packages, ['starlette', 'json']);
  assert.equal(M.groupLabel(g), '3 library frames: starlette, json');
  assert.equal(g.key, 'g' + g.id);
});

test('an opened group shows its frames as they were called', () => {
  const idx = M.flatten(sampleTree());
  const open = new Set([idOf(idx, 'Router.__call__')]);
  const dt = M.buildDisplayTree(idx, { groupLibrary: true, openGroups: open });
  assert.deepEqual(shape(idx, dt).handler[1], { 'Router.__call__': [{ 'Route.handle': ['endpoint', 'dumps'] }] });
});

test('without grouping the display tree is the profile tree', () => {
  const idx = M.flatten(sampleTree());
  const dt = M.buildDisplayTree(idx, { groupLibrary: false });
  assert.deepEqual(shape(idx, dt), {
    handler: [{ sleep: ['[await]'] }, { 'Router.__call__': [{ 'Route.handle': ['endpoint', 'dumps'] }] }, 'helper'],
  });
});

test('the root is never grouped, and app code below library code starts a new group', () => {
  const root = finish(
    frame('Middleware.__call__', SITE + 'reqprof/asgi.py', 1, {},
      frame('Router.__call__', SITE + 'starlette/routing.py', 2, {},
        frame('Route.handle', SITE + 'starlette/routing.py', 3, {},
          frame('view', APP + 'app/views.py', 4, { self: 0.001 },
            frame('Template.render', SITE + 'jinja2/environment.py', 5, {},
              frame('root_render', SITE + 'jinja2/runtime.py', 6, { self: 0.002 })))))));
  const idx = M.flatten(root);
  const dt = M.buildDisplayTree(idx, { groupLibrary: true });
  assert.deepEqual(shape(idx, dt), { 'Middleware.__call__': [{ 'group(2)': [{ view: ['group(2)'] }] }] });
});

test('pseudo-frames are never folded: an [await] under library code stays visible', () => {
  const root = finish(
    frame('view', APP + 'app/v.py', 1, {},
      frame('execute', SITE + 'sqlalchemy/session.py', 2, {},
        frame('fetch', SITE + 'asyncpg/connection.py', 3, {},
          pseudo('await', '[await]', { self: 0.01 }),
          pseudo('thread', '[thread w]', {}, frame('work', APP + 'app/w.py', 4, { self: 0.001 }))))));
  const idx = M.flatten(root);
  const dt = M.buildDisplayTree(idx, { groupLibrary: true });
  assert.deepEqual(shape(idx, dt), { view: [{ 'group(2)': ['[await]', { '[thread w]': ['work'] }] }] });
});

test('the display tree is built lazily, only where asked', () => {
  const kids = [];
  for (let i = 0; i < 5000; i++) kids.push(frame(`f${i}`, APP + 'app/m.py', i, { self: 0.001 }, frame(`g${i}`, APP + 'app/m.py', i, { self: 0.001 })));
  const idx = M.flatten(finish(frame('root', APP + 'app/r.py', 1, {}, ...kids)));
  const dt = M.buildDisplayTree(idx, { groupLibrary: true });
  assert.equal(dt.byKey.size, 1);
  const rows = M.visibleRows(dt, new Set());
  assert.equal(rows.length, 1);
  assert.equal(M.visibleRows(dt, new Set(['n0'])).length, 5001);
  assert.equal(dt.byKey.size, 5001, 'grandchildren not built');
});

test('visibleRows lists expanded display nodes in order', () => {
  const idx = M.flatten(sampleTree());
  const dt = M.buildDisplayTree(idx, { groupLibrary: true });
  const g = dt.children(dt.root).find((d) => d.type === 'group');
  const rows = M.visibleRows(dt, new Set(['n0', g.key]));
  assert.deepEqual(rows.map((d) => (d.type === 'group' ? 'group' : idx.nodes[d.id].function)),
    ['handler', 'sleep', 'group', 'endpoint', 'helper']);
  assert.deepEqual(rows.map((d) => d.depth), [0, 1, 1, 2, 1]);
});

test('locate finds the display node of a frame, the group when it is folded', () => {
  const idx = M.flatten(sampleTree());
  const closed = M.buildDisplayTree(idx, { groupLibrary: true });
  const dumps = idOf(idx, 'dumps');
  const d = closed.locate(dumps);
  assert.equal(d.type, 'group');
  assert.equal(closed.groupOf[dumps], idOf(idx, 'Router.__call__'));
  const endpoint = closed.locate(idOf(idx, 'endpoint'));
  assert.equal(endpoint.key, 'n' + idOf(idx, 'endpoint'));
  assert.equal(endpoint.parent, d);
  const open = M.buildDisplayTree(idx, { groupLibrary: true, openGroups: new Set([d.id]) });
  const od = open.locate(dumps);
  assert.equal(od.key, 'n' + dumps);
  assert.equal(open.locate(idOf(idx, 'Route.handle')).key, od.parent.key);
});

test('a search filter keeps the way to matches, and opens the groups that hide one', () => {
  const idx = M.flatten(sampleTree());
  let s = M.searchTree(idx, 'endpoint');
  let dt = M.buildDisplayTree(idx, { groupLibrary: true, filter: s.keep, match: s.match });
  assert.deepEqual(shape(idx, dt), { handler: [{ 'group(3)': ['endpoint'] }] });
  s = M.searchTree(idx, 'dumps');
  dt = M.buildDisplayTree(idx, { groupLibrary: true, filter: s.keep, match: s.match });
  assert.deepEqual(shape(idx, dt), { handler: [{ 'Router.__call__': [{ 'Route.handle': ['dumps'] }] }] });
  assert.equal(dt.locate(idOf(idx, 'helper')), null, 'filtered out');
});

test('hottestMember names the group frame with most self time, when it matters', () => {
  const idx = M.flatten(sampleTree());
  const dt = M.buildDisplayTree(idx, { groupLibrary: true });
  const g = dt.children(dt.root).find((d) => d.type === 'group');
  // dumps has 1 ms of the group's 6.5 ms: under a quarter.
  assert.equal(M.hottestMember(idx, g), -1);
  assert.equal(M.hottestMember(idx, g, 0.1), idOf(idx, 'dumps'));
  const leaf = finish(frame('view', APP + 'v.py', 1, {},
    frame('dumps', STDLIB + 'json/__init__.py', 1, { self: 0.001 },
      frame('iterencode', STDLIB + 'json/encoder.py', 2, { self: 0.009 }))));
  const li = M.flatten(leaf);
  const lg = M.buildDisplayTree(li, { groupLibrary: true });
  assert.equal(M.hottestMember(li, lg.children(lg.root)[0]), idOf(li, 'iterencode'));
});
