// Flame graph layout and hit testing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { M, APP, SITE, frame, pseudo, finish, sampleTree } from './helpers.mjs';

const close = (a, b) => Math.abs(a - b) < 1e-9;

test('the root spans [0, 1] and children are laid left to right by wall time', () => {
  const idx = M.flatten(sampleTree());
  const L = M.flameLayout(idx, 'wall_s');
  assert.equal(L.x0[0], 0);
  assert.equal(L.w[0], 1);
  const total = idx.nodes[0].wall_s;
  let x = 0;
  for (const c of M.childIds(idx, 0)) {
    assert.ok(close(L.x0[c], x));
    assert.ok(close(L.w[c], idx.nodes[c].wall_s / total));
    x += L.w[c];
  }
  for (let i = 1; i < idx.size; i++) {
    const p = idx.parent[i];
    assert.ok(L.x0[i] >= L.x0[p] - 1e-12 && L.x0[i] + L.w[i] <= L.x0[p] + L.w[p] + 1e-12, 'inside its parent');
  }
  for (const ids of L.byDepth) {
    for (let k = 1; k < ids.length; k++) assert.ok(L.x0[ids[k]] >= L.x0[ids[k - 1]], 'sorted by x');
  }
});

test('CPU layout drops frames without CPU time', () => {
  const idx = M.flatten(sampleTree());
  const L = M.flameLayout(idx, 'cpu_s');
  const wait = idx.nodes.findIndex((n) => n.kind === 'await');
  assert.equal(L.w[wait], 0);
  assert.ok(!L.byDepth[idx.depth[wait]].includes(wait));
});

test('a child wider than its parent is clamped to it', () => {
  const root = finish(frame('h', APP + 'h.py', 1, {}, frame('a', APP + 'a.py', 1, { self: 0.001 }), frame('b', APP + 'b.py', 1, { self: 0.001 })));
  root.children[1].wall_s = 0.005; // inconsistent input
  const L = M.flameLayout(M.flatten(root), 'wall_s');
  assert.ok(L.x0[2] + L.w[2] <= 1 + 1e-12);
});

test('flameHit finds the rect under a point', () => {
  const idx = M.flatten(sampleTree());
  const L = M.flameLayout(idx, 'wall_s');
  assert.equal(M.flameHit(L, 0, 0.5), 0);
  for (let i = 1; i < idx.size; i++) {
    if (!(L.w[i] > 0)) continue;
    assert.equal(M.flameHit(L, idx.depth[i], L.x0[i] + L.w[i] / 2), i, idx.nodes[i].function);
  }
  // Past the end of the only child at depth 2 under sleep: nothing.
  assert.equal(M.flameHit(L, 9, 0.5), -1);
  assert.equal(M.flameHit(L, 1, 1.5), -1);
});

test('layout of 50,000 nodes takes milliseconds', () => {
  const kids = [];
  for (let i = 0; i < 10000; i++) {
    kids.push(frame(`f${i}`, APP + `m${i % 50}.py`, i, { self: 0.0001 },
      frame(`g${i}`, APP + 'g.py', i, { self: 0.0001 }, frame(`h${i}`, APP + 'h.py', i, { self: 0.0001 },
        pseudo('await', '[await]', { self: 0.0001 }, frame(`k${i}`, APP + 'k.py', 1, { self: 0.0001 }))))));
  }
  const idx = M.flatten(finish(frame('root', APP + 'r.py', 1, {}, ...kids)));
  assert.equal(idx.size, 50001);
  const t0 = performance.now();
  const L = M.flameLayout(idx, 'wall_s');
  const ms = performance.now() - t0;
  assert.equal(L.byDepth[1].length, 10000);
  assert.ok(ms < 1000, `${ms} ms`);
});

test('grouped layout folds library regions into one rect with their exits below', () => {
  // handler -> fw_a -> fw_b -> (endpoint, [await]); fw_a and fw_b are library.
  const root = finish(frame('handler', APP + 'h.py', 1, {},
    frame('fw_a', SITE + 'fw/a.py', 1, { self: 0.001 },
      frame('fw_b', SITE + 'fw/b.py', 1, { self: 0.001 },
        frame('endpoint', APP + 'e.py', 1, { self: 0.004 }),
        pseudo('await', '[await] fw/b.py:3', { self: 0.002 })))));
  const idx = M.flatten(root);
  const plain = M.flameLayout(idx, 'wall_s');
  const L = M.flameLayout(idx, 'wall_s', true);
  const id = (fn) => idx.nodes.findIndex((n) => n.function === fn);
  const a = id('fw_a'), b = id('fw_b'), e = id('endpoint'), w = idx.nodes.findIndex((n) => n.kind === 'await');
  assert.ok(L.groups.has(a));
  assert.deepEqual(L.groups.get(a).members, [a, b]);
  assert.equal(M.groupLabel(L.groups.get(a)), '2 library frames: fw');
  // The folded member is not drawn; the exits hang right under the head.
  assert.equal(L.w[b], 0);
  assert.equal(L.depth[b], -1);
  assert.equal(L.parent[e], a);
  assert.equal(L.depth[e], L.depth[a] + 1);
  assert.equal(L.depth[w], L.depth[a] + 1);
  assert.equal(L.maxDepth, plain.maxDepth - 1);
  assert.deepEqual(M.flameChildren(L, a).sort(), [e, w].sort());
  assert.deepEqual(M.flameAncestors(L, e), [0, a, e]);   // handler is the root
  // Every drawn rect is found where it is drawn.
  for (let i = 0; i < idx.size; i++) {
    if (!(L.w[i] > 0)) continue;
    assert.equal(M.flameHit(L, L.depth[i], L.x0[i] + L.w[i] / 2), i, idx.nodes[i].function);
    const p = L.parent[i];
    if (p >= 0) assert.ok(L.x0[i] >= L.x0[p] - 1e-12 && L.x0[i] + L.w[i] <= L.x0[p] + L.w[p] + 1e-12);
  }
  // Ungrouped, the same profile draws every frame at its own depth.
  assert.equal(plain.groups.size, 0);
  assert.equal(plain.depth[b], idx.depth[b]);
});

test('new pseudo-frames have colours of their own', () => {
  const seen = new Set();
  for (const kind of ['await', 'gc', 'unsampled', 'request', 'after-response', 'thread', 'out-of-context', 'truncated']) {
    assert.ok(M.PSEUDO_KINDS.includes(kind), kind);
    const c = M.colourFor({ kind });
    assert.ok(!seen.has(c), kind + ' shares a colour');
    seen.add(c);
    assert.equal(M.nodeCategory({ kind }), 'pseudo');
  }
});
