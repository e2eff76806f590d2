// Merging call trees (several requests into one view).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { M, APP, frame, pseudo, finish, sampleTree } from './helpers.mjs';

const close = (a, b) => Math.abs(a - b) < 1e-12;

test('merging a tree with itself doubles every number and keeps the shape', () => {
  const a = sampleTree();
  const before = JSON.stringify(a);
  const m = M.mergeTrees([a, sampleTree()]);
  assert.equal(JSON.stringify(a), before, 'inputs are not changed');
  const ia = M.flatten(a);
  const im = M.flatten(m);
  assert.equal(im.size, ia.size);
  for (let i = 0; i < ia.size; i++) {
    const x = ia.nodes[i];
    const y = im.nodes[i];
    assert.equal(y.function, x.function);
    assert.ok(close(y.wall_s, 2 * x.wall_s) && close(y.cpu_s, 2 * x.cpu_s) && close(y.self_wall_s, 2 * x.self_wall_s));
    assert.equal(y.samples, 2 * x.samples);
    for (const k of Object.keys(x.lines)) assert.ok(close(y.lines[k], 2 * x.lines[k]));
  }
});

test('different callees stay apart and children end up heaviest first', () => {
  const a = finish(frame('h', APP + 'h.py', 1, {}, frame('x', APP + 'x.py', 1, { self: 0.003 })));
  const b = finish(frame('h', APP + 'h.py', 1, {},
    frame('y', APP + 'y.py', 1, { self: 0.002 }),
    frame('x', APP + 'x.py', 1, { self: 0.002, lines: { 5: 0.002 } }),
    pseudo('await', '[await]', { self: 0.001 })));
  const m = M.mergeTrees([a, b]);
  assert.deepEqual(m.children.map((c) => [c.function, Math.round(c.wall_s * 1e6)]), [['x', 5000], ['y', 2000], ['[await]', 1000]]);
  assert.deepEqual(m.children[0].lines, { 2: 0.003, 5: 0.002 });
  assert.ok(close(m.wall_s, a.wall_s + b.wall_s));
});

test('roots that differ hang under a [merged] root', () => {
  const a = finish(frame('one', APP + 'a.py', 1, { self: 0.001 }));
  const b = finish(frame('two', APP + 'b.py', 1, { self: 0.002 }));
  const m = M.mergeTrees([a, b]);
  assert.equal(m.function, '[merged]');
  assert.deepEqual(m.children.map((c) => c.function), ['two', 'one']);
  assert.ok(close(m.wall_s, 0.003));
  assert.equal(M.mergeTrees([]), null);
});

test('a function at different depths is not merged across depths', () => {
  const a = finish(frame('h', APP + 'h.py', 1, {}, frame('f', APP + 'f.py', 1, { self: 0.001 })));
  const b = finish(frame('h', APP + 'h.py', 1, {}, frame('g', APP + 'g.py', 1, {}, frame('f', APP + 'f.py', 1, { self: 0.001 }))));
  const m = M.mergeTrees([a, b]);
  assert.deepEqual(m.children.map((c) => c.function).sort(), ['f', 'g']);
});
