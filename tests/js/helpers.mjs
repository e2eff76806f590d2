// Builders for profile trees (docs/json-schema.md) in the model's tests.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const M = require('../../src/reqprof/viewer/model.js');

export const SITE = '/venv/lib/python3.11/site-packages/';
export const STDLIB = '/usr/lib/python3.11/';
export const APP = '/srv/app/';

function short(file) {
  for (const p of [SITE, STDLIB, APP]) if (file.startsWith(p)) return file.slice(p.length);
  return file;
}

/** A frame; totals are filled in by finish(). opts: {self, cpu, lines}. */
export function frame(fn, file, line, opts = {}, ...children) {
  const sf = short(file);
  const self = opts.self || 0;
  return {
    name: `${fn} (${sf}:${line})`, function: fn, file, short_file: sf, line, kind: 'frame',
    self_wall_s: self, self_cpu_s: opts.cpu === undefined ? self : opts.cpu,
    lines: opts.lines || (self ? { [String(line + 1)]: self } : {}), children,
  };
}

export function pseudo(kind, label, opts = {}, ...children) {
  return {
    name: label, function: label, file: '', short_file: '', line: 0, kind,
    self_wall_s: opts.self || 0, self_cpu_s: opts.cpu || 0, lines: opts.lines || {}, children,
  };
}

/** Fill wall/CPU totals and samples bottom-up, sort children by wall. */
export function finish(root) {
  const order = [];
  const stack = [root];
  while (stack.length) {
    const n = stack.pop();
    order.push(n);
    stack.push(...n.children);
  }
  for (const n of order.reverse()) {
    n.children.sort((a, b) => b.wall_s - a.wall_s);
    n.wall_s = n.self_wall_s + n.children.reduce((t, c) => t + c.wall_s, 0);
    n.cpu_s = n.self_cpu_s + n.children.reduce((t, c) => t + c.cpu_s, 0);
    n.samples = Math.max(1, Math.round(n.self_wall_s * 1000) + n.children.reduce((t, c) => t + c.samples, 0));
  }
  return root;
}

/**
 * handler (app)
 *   starlette Router.__call__ (lib) -> starlette Route.handle (lib) -> endpoint (app, self 5ms)
 *                                                                  -> json.dumps (stdlib, self 1ms)
 *   asyncio sleep (stdlib) -> [await] 10ms
 *   helper (app, self 2ms)
 */
export function sampleTree() {
  return finish(
    frame('handler', APP + 'app/main.py', 10, { self: 0.001 },
      frame('Router.__call__', SITE + 'starlette/routing.py', 697, {},
        frame('Route.handle', SITE + 'starlette/routing.py', 275, { self: 0.0005 },
          frame('endpoint', APP + 'app/api.py', 5, { self: 0.005, lines: { 7: 0.004, 9: 0.001 } }),
          frame('dumps', STDLIB + 'json/__init__.py', 183, { self: 0.001 }))),
      frame('sleep', STDLIB + 'asyncio/tasks.py', 637, {},
        pseudo('await', '[await]', { self: 0.010, lines: { 649: 0.010 } })),
      frame('helper', APP + 'app/util.py', 3, { self: 0.002 })));
}

/** The display tree, fully built, as nested labels, for readable asserts. */
export function shape(idx, dt) {
  function label(d) {
    return d.type === 'group' ? `group(${d.members.length})` : idx.nodes[d.id].function;
  }
  function walk(d) {
    const kids = dt.children(d);
    return kids.length ? { [label(d)]: kids.map(walk) } : label(d);
  }
  return walk(dt.root);
}

/** A chain of n frames, each calling the next (no recursion in the builder). */
export function chain(n) {
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push(frame(`f${i}`, APP + 'app/deep.py', i + 1, { self: i === n - 1 ? 0.001 : 0 }));
  for (let i = 0; i < n - 1; i++) nodes[i].children.push(nodes[i + 1]);
  return finish(nodes[0]);
}
