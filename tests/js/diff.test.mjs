// Differential profiles: matching, shares, order by change, colours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { M, APP, SITE, frame, pseudo, finish, sampleTree, chain } from './helpers.mjs';

const require = createRequire(import.meta.url);
const D = require('../../src/reqprof/viewer/diff.js');

const close = (a, b, eps = 1e-9) => Math.abs(a - b) < eps;
const doc = (root) => ({ version: 1, root });
const child = (n, fn) => n.children.find((c) => c.function === fn);

/** handler -> {load (self a), render (self b)} */
function handler(load, render, extra = []) {
  return finish(frame('handler', APP + 'app/main.py', 10, {},
    frame('load', APP + 'app/db.py', 3, { self: load }),
    frame('render', APP + 'app/views.py', 7, { self: render }),
    ...extra));
}

test('matched frames carry both sides, their shares and the change', () => {
  const d = D.diffProfiles(doc(handler(0.030, 0.010)), doc(handler(0.010, 0.030)));
  assert.equal(d.metric, 'wall_s');
  assert.ok(close(d.before.total, 0.040) && close(d.after.total, 0.040));
  assert.equal(d.root.function, 'handler');
  assert.equal(d.root.before_share, 1);
  assert.equal(d.root.after_share, 1);
  assert.equal(d.root.delta, 0);
  const load = child(d.root, 'load');
  assert.ok(close(load.before_s, 0.030) && close(load.after_s, 0.010));
  assert.ok(close(load.before_share, 0.75) && close(load.after_share, 0.25));
  assert.ok(close(load.delta, -0.5) && close(load.self_delta, -0.5));
  assert.ok(close(load.both_share, 0.5));
  assert.equal(load.status, 'same');
  assert.ok(close(d.maxDelta, 0.5));
  assert.equal(d.size, 3);
});

test('shares, not seconds: a profile twice as long with the same split shows no change', () => {
  const d = D.diffProfiles(doc(handler(0.030, 0.010)), doc(handler(0.060, 0.020)));
  for (const c of d.root.children) assert.ok(close(c.delta, 0), c.function);
  assert.ok(close(d.maxDelta, 0));
});

test('children are sorted by absolute change, largest first', () => {
  const before = handler(0.010, 0.010, [frame('cache', APP + 'app/cache.py', 1, { self: 0.010 })]);
  const after = handler(0.011, 0.001, [frame('cache', APP + 'app/cache.py', 1, { self: 0.028 })]);
  const d = D.diffProfiles(doc(before), doc(after));
  const order = d.root.children.map((c) => c.function);
  assert.deepEqual(order, ['cache', 'render', 'load']);
  const deltas = d.root.children.map((c) => Math.abs(c.delta));
  for (let i = 1; i < deltas.length; i++) assert.ok(deltas[i - 1] >= deltas[i]);
});

test('frames of one side only are added or removed, and counted', () => {
  const before = finish(frame('handler', APP + 'app/main.py', 10, {},
    frame('old_render', APP + 'app/views.py', 7, { self: 0.02 }), frame('load', APP + 'app/db.py', 3, { self: 0.01 })));
  const after = finish(frame('handler', APP + 'app/main.py', 10, {},
    frame('new_render', APP + 'app/views.py', 7, { self: 0.005 }), frame('load', APP + 'app/db.py', 3, { self: 0.01 })));
  const d = D.diffProfiles(doc(before), doc(after));
  const oldR = child(d.root, 'old_render');
  const newR = child(d.root, 'new_render');
  assert.equal(oldR.status, 'removed');
  assert.equal(newR.status, 'added');
  assert.equal(oldR.after_s, 0);
  assert.equal(newR.before_s, 0);
  assert.ok(oldR.delta < 0 && newR.delta > 0);
  assert.equal(d.added, 1);
  assert.equal(d.removed, 1);
  assert.equal(child(d.root, 'load').status, 'same');
});

test('a function a deploy moved to another line still matches, and shows its new line', () => {
  const before = finish(frame('h', APP + 'app/main.py', 1, {}, frame('work', APP + 'app/w.py', 10, { self: 0.01 })));
  const after = finish(frame('h', APP + 'app/main.py', 1, {}, frame('work', APP + 'app/w.py', 42, { self: 0.01 })));
  const d = D.diffProfiles(doc(before), doc(after));
  assert.equal(d.root.children.length, 1);
  assert.equal(d.root.children[0].line, 42);
  assert.equal(d.root.children[0].status, 'same');
});

test('the same file under another prefix matches by its short file; other files do not', () => {
  const before = finish(frame('h', '/srv/release-1/app/main.py', 1, { }, frame('work', '/srv/release-1/app/w.py', 1, { self: 0.01 })));
  const after = finish(frame('h', '/srv/release-2/app/main.py', 1, {}, frame('work', '/srv/release-2/app/w.py', 1, { self: 0.01 })));
  for (const n of [before, after]) {
    n.short_file = 'app/main.py';
    n.children[0].short_file = 'app/w.py';
  }
  const d = D.diffProfiles(doc(before), doc(after));
  assert.equal(d.root.children.length, 1);
  assert.equal(d.root.children[0].file, '/srv/release-2/app/w.py');
  const other = finish(frame('h', APP + 'app/main.py', 1, {}, frame('work', APP + 'app/other.py', 1, { self: 0.01 })));
  assert.equal(D.diffProfiles(doc(before), doc(other)).root.children.length, 2);
});

test('siblings with one identity are merged on each side', () => {
  const before = finish(frame('h', APP + 'a.py', 1, {},
    frame('work', APP + 'w.py', 1, { self: 0.01 }), frame('work', APP + 'w.py', 1, { self: 0.02 })));
  const after = finish(frame('h', APP + 'a.py', 1, {}, frame('work', APP + 'w.py', 1, { self: 0.03 })));
  const d = D.diffProfiles(doc(before), doc(after));
  assert.equal(d.root.children.length, 1);
  assert.ok(close(d.root.children[0].before_s, 0.03));
  assert.ok(close(d.root.children[0].delta, 0));
});

test('pseudo-frames match by kind and label', () => {
  const mk = (w) => finish(frame('h', APP + 'a.py', 1, {}, pseudo('await', '[await]', { self: w }),
    pseudo('thread', '[thread pool-1]', { self: 0.01 })));
  const d = D.diffProfiles(doc(mk(0.01)), doc(mk(0.03)));
  assert.deepEqual(d.root.children.map((c) => c.kind).sort(), ['await', 'thread']);
  assert.ok(child(d.root, '[await]').delta > 0);
});

test('the CPU metric uses CPU time and self CPU time', () => {
  const before = finish(frame('h', APP + 'a.py', 1, {}, frame('io', APP + 'io.py', 1, { self: 0.02, cpu: 0 }),
    frame('calc', APP + 'c.py', 1, { self: 0.01, cpu: 0.01 })));
  const d = D.diffProfiles(doc(before), doc(before), { metric: 'cpu_s' });
  assert.equal(d.metric, 'cpu_s');
  assert.ok(close(d.before.total, 0.01));
  assert.ok(close(child(d.root, 'calc').before_share, 1));
  assert.equal(child(d.root, 'io').before_share, 0);
});

test('a profile without time (or without a root) gives shares of 0, not NaN', () => {
  const empty = { version: 1, root: { function: 'h', kind: 'frame', wall_s: 0, cpu_s: 0, self_wall_s: 0, self_cpu_s: 0, children: [] } };
  const d = D.diffProfiles(empty, doc(handler(0.01, 0.01)));
  assert.equal(d.root.before_share, 0);
  assert.equal(d.root.after_share, 1);
  for (const c of d.root.children) {
    assert.ok(Number.isFinite(c.delta));
    assert.equal(c.status, 'added');
  }
  const none = D.diffProfiles({}, null);
  assert.equal(none.size, 1);
  assert.equal(none.root.delta, 0);
});

test('the inputs are not changed', () => {
  const a = doc(sampleTree());
  const b = doc(handler(0.01, 0.02));
  const ja = JSON.stringify(a);
  const jb = JSON.stringify(b);
  D.diffProfiles(a, b);
  D.diffFunctions(a, b);
  assert.equal(JSON.stringify(a), ja);
  assert.equal(JSON.stringify(b), jb);
});

test('a 10,000-deep chain against itself: no recursion, no change', () => {
  const c = chain(10000);
  const d = D.diffProfiles(doc(c), doc(c));
  assert.equal(d.size, 10000);
  assert.equal(d.maxDelta, 0);
  const idx = M.flatten(d.root);
  assert.equal(idx.maxDepth, 9999);
});

test('the diff tree feeds the viewer model: flatten and a flame layout by mean share', () => {
  const d = D.diffProfiles(doc(handler(0.030, 0.010)), doc(handler(0.010, 0.030, [frame('extra', SITE + 'lib/x.py', 1, { self: 0.04 })])));
  const idx = M.flatten(d.root);
  const L = M.flameLayout(idx, 'both_share');
  assert.equal(L.w[0], 1);
  for (let i = 1; i < idx.size; i++) {
    const p = idx.parent[i];
    assert.ok(L.x0[i] >= L.x0[p] - 1e-12 && L.x0[i] + L.w[i] <= L.x0[p] + L.w[p] + 1e-12, 'inside its parent');
    assert.ok(close(L.w[i], idx.nodes[i].both_share));
  }
  // A frame only in one side still has a width.
  const extra = idx.nodes.findIndex((n) => n.function === 'extra');
  assert.ok(L.w[extra] > 0);
  assert.equal(idx.lib[extra], 1);
});

test('diffFunctions: self shares per function, by absolute change', () => {
  const before = finish(frame('h', APP + 'a.py', 1, {}, frame('f', APP + 'f.py', 1, { self: 0.01 }, frame('g', APP + 'g.py', 1, { self: 0.01 })),
    frame('g', APP + 'g.py', 1, { self: 0.02 })));
  const after = finish(frame('h', APP + 'a.py', 1, {}, frame('f', APP + 'f.py', 1, { self: 0.03 }), frame('g', APP + 'g.py', 5, { self: 0.01 })));
  const rows = D.diffFunctions(doc(before), doc(after));
  assert.deepEqual(rows.map((r) => r.function), ['f', 'g']);
  const [f, g] = rows;
  assert.ok(close(f.before_share, 0.25) && close(f.after_share, 0.75) && close(f.delta, 0.5));
  assert.ok(close(g.before_share, 0.75) && close(g.after_share, 0.25) && close(g.delta, -0.5));
  assert.equal(g.line, 5);
});

test('changePath follows the largest change down to a floor', () => {
  const before = finish(frame('h', APP + 'a.py', 1, {}, frame('a', APP + 'a.py', 2, {}, frame('b', APP + 'b.py', 1, { self: 0.01 })),
    frame('c', APP + 'c.py', 1, { self: 0.03 })));
  const after = finish(frame('h', APP + 'a.py', 1, {}, frame('a', APP + 'a.py', 2, {}, frame('b', APP + 'b.py', 1, { self: 0.03 })),
    frame('c', APP + 'c.py', 1, { self: 0.01 })));
  const d = D.diffProfiles(doc(before), doc(after));
  assert.deepEqual(D.changePath(d, 0.01).map((n) => n.function), ['h', 'a', 'b']);
  assert.deepEqual(D.changePath(d, 0.9).map((n) => n.function), ['h']);
  const same = D.diffProfiles(doc(before), doc(before));
  assert.deepEqual(D.changePath(same, 0).map((n) => n.function), ['h']);
});

test('diffColour: red for more, blue for less, grey when unchanged, stronger when larger', () => {
  const hsl = (s) => s.match(/hsl\((\d+), (\d+)%, (\d+)%\)/).slice(1).map(Number);
  const [hUp, sUp] = hsl(D.diffColour(0.05, 0.1));
  const [hDown] = hsl(D.diffColour(-0.05, 0.1));
  assert.ok(hUp < 20, 'red');
  assert.ok(hDown > 180 && hDown < 260, 'blue');
  assert.equal(D.diffColour(0.0001, 0.1), D.diffColour(-0.0002, 0.1));
  assert.equal(D.diffColour(NaN, 0.1), D.diffColour(0, 0.1));
  const [, sBig, lBig] = hsl(D.diffColour(0.1, 0.1));
  const [, , lUp] = hsl(D.diffColour(0.05, 0.1));
  assert.ok(sBig > sUp && lBig < lUp, 'stronger');
  assert.equal(D.diffColour(0.5, 0.1), D.diffColour(0.1, 0.1), 'saturates at the scale');
  assert.deepEqual(D.colourScale({ basis: 'share', maxChange: 0.001 }), { scale: D.MIN_SCALE, neutral: D.NEUTRAL });
  assert.equal(D.colourScale({ basis: 'share', maxChange: 0.3 }).scale, 0.3);
  // In time per request, the floors are shares of the longer side's request.
  const t = D.colourScale({ basis: 'time', maxChange: 0.0001, before: { total: 1, count: 100 }, after: { total: 4, count: 200 } });
  assert.ok(close(t.scale, D.MIN_SCALE * 0.02) && close(t.neutral, D.NEUTRAL * 0.02));
  // One sample's share of the side with fewer samples is noise.
  const few = D.colourScale({ basis: 'share', maxChange: 0.016, before: { samples: 62 }, after: { samples: 500 } });
  assert.ok(close(few.neutral, 1 / 62) && close(few.scale, 4 / 62));
  const many = D.colourScale({ basis: 'share', maxChange: 0.3, before: { samples: 50000 }, after: { samples: 90000 } });
  assert.deepEqual(many, { scale: 0.3, neutral: D.NEUTRAL });
  assert.equal(D.diffColour(0.00001, 0.1, 0.0001), D.diffColour(0, 0.1));
  assert.notEqual(D.diffColour(0.001, 0.1, 0.0001), D.diffColour(0, 0.1));
});

test('basis time: the change is seconds per request, and orders the tree', () => {
  // Before: 10 requests, load 4 ms + old render 12 ms each. After: 10
  // requests, load 4 ms + new render 3 ms each: load's share grows, its time does not.
  const before = finish(frame('h', APP + 'a.py', 1, {}, frame('load', APP + 'l.py', 1, { self: 0.040 }),
    frame('render', APP + 'r.py', 1, { self: 0.120 })));
  const after = finish(frame('h', APP + 'a.py', 1, {}, frame('load', APP + 'l.py', 1, { self: 0.040 }),
    frame('render', APP + 'r.py', 1, { self: 0.030 })));
  const counts = { before: 10, after: 10 };
  const share = D.diffProfiles(doc(before), doc(after), { counts });
  assert.equal(share.basis, 'share');
  assert.ok(child(share.root, 'load').change > 0.3, 'its share grew');
  const time = D.diffProfiles(doc(before), doc(after), { counts, basis: 'time' });
  assert.equal(time.basis, 'time');
  assert.deepEqual(time.before, { total: 0.16, count: 10, samples: before.samples });
  const load = child(time.root, 'load');
  const render = child(time.root, 'render');
  assert.ok(close(load.change, 0) && close(load.delta_s, 0));
  assert.ok(close(render.change, -0.009) && close(render.self_delta_s, -0.009));
  assert.ok(close(time.root.delta_s, -0.009));
  assert.ok(close(time.maxChange, 0.009));
  assert.equal(time.root.children[0].function, 'render');
  assert.ok(load.delta > 0.3, 'the share change is still there');
  const fns = D.diffFunctions(doc(before), doc(after), { counts, basis: 'time' });
  assert.equal(fns[0].function, 'render');
  assert.ok(close(fns[0].before_s, 0.012) && close(fns[0].after_s, 0.003) && close(fns[0].change, -0.009));
  assert.ok(close(fns[1].change, 0));
});

test('formatDelta: signed percentage points', () => {
  assert.equal(D.formatDelta(0.042), '+4.2 pp');
  assert.equal(D.formatDelta(-0.0031), '\u22120.31 pp');
  assert.equal(D.formatDelta(0.5), '+50 pp');
  assert.equal(D.formatDelta(-1), '\u2212100 pp');
  assert.equal(D.formatDelta(0.00001), '0 pp');
  assert.equal(D.formatDelta(NaN), '–');
  assert.equal(D.formatDeltaTime(0.0041, M.formatTime), '+4.1 ms');
  assert.equal(D.formatDeltaTime(-0.00085, M.formatTime), '\u2212850 µs');
  assert.equal(D.formatDeltaTime(0, M.formatTime), '0');
  assert.equal(D.formatChange({ basis: 'time' }, 0.002, M.formatTime), '+2 ms');
  assert.equal(D.formatChange({ basis: 'share' }, 0.02, M.formatTime), '+2 pp');
});

test('frameKey ignores the line and the absolute file when a short file is known', () => {
  const a = frame('f', APP + 'app/x.py', 1);
  const b = frame('f', APP + 'app/x.py', 99);
  assert.equal(D.frameKey(a), D.frameKey(b));
  assert.notEqual(D.frameKey(a), D.frameKey(frame('g', APP + 'app/x.py', 1)));
  assert.notEqual(D.frameKey(pseudo('await', '[await]')), D.frameKey(pseudo('truncated', '[await]')));
});
