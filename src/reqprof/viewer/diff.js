/*
 * reqprof viewer: differential profiles, the model.
 *
 * diffProfiles(before, after) lays two profiles (docs/json-schema.md) over
 * each other: one tree whose nodes are the call paths of either profile,
 * matched from the root down by frame identity (frameKey: kind, qualified
 * name and file, not the line, so a function a deploy moved still
 * matches). Each node carries both sides' time and its *share* of its own
 * profile's total, and the change in share (after - before): shares, not
 * seconds, so a range with twice the requests, or a slower machine, does
 * not read as a change everywhere. Children are sorted by the absolute
 * change, largest first.
 *
 * When each side stands for a known number of requests (a route's time
 * range), the change can be measured instead as time per request
 * (basis 'time'): a frame whose cost stayed the same then shows no change
 * even though the rest of the request got faster. Both are computed; the
 * basis picks the one that orders, colours and opens the tree (`change`).
 *
 * Plain functions, no DOM: they run in the dashboard and the `reqprof diff`
 * page (a classic script, exposed as globalThis.ReqprofDiff) and under
 * Node's test runner (require()d as a CommonJS module). Nothing here
 * mutates the profiles it is given. Iterative throughout: a 10,000-deep
 * chain is fine.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  }
  if (root) {
    root.ReqprofDiff = api;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  var SELF = { wall_s: 'self_wall_s', cpu_s: 'self_cpu_s' };
  /** Changes smaller than this share (0.1 point) are drawn as unchanged. */
  var NEUTRAL = 0.001;
  /** The colour scale saturates at the largest change, but never below this. */
  var MIN_SCALE = 0.02;

  /** A frame's identity across two profiles. */
  function frameKey(node) {
    return (node.kind || 'frame') + '\u0000' + (node.function || node.name || '') + '\u0000' +
      (node.short_file || node.file || '');
  }

  function newNode(p) {
    return {
      name: p.name || p.function || '', function: p.function || p.name || '', file: p.file || '',
      short_file: p.short_file || '', line: p.line || 0, kind: p.kind || 'frame',
      before_s: 0, after_s: 0, before_self_s: 0, after_self_s: 0,
      before_share: 0, after_share: 0, both_share: 0, delta: 0, self_delta: 0,
      delta_s: 0, self_delta_s: 0, change: 0, status: 'same', children: []
    };
  }

  /** Adds one side's tree under d (matched to that side's root p). */
  function addSide(d, p, side, metric, maps) {
    var selfMetric = SELF[metric];
    var stack = [d, p];
    d[side + '_s'] += p[metric] || 0;
    d[side + '_self_s'] += p[selfMetric] || 0;
    while (stack.length) {
      var pn = stack.pop();
      var dn = stack.pop();
      var kids = pn.children || [];
      if (!kids.length) continue;
      var map = maps.get(dn);
      if (!map) { map = new Map(); maps.set(dn, map); }
      for (var i = 0; i < kids.length; i++) {
        var c = kids[i];
        var key = frameKey(c);
        var dc = map.get(key);
        if (!dc) {
          dc = newNode(c);
          map.set(key, dc);
          dn.children.push(dc);
        } else if (side === 'after') {
          // Show where the function is now.
          dc.line = c.line || 0;
          dc.name = c.name || dc.name;
          dc.file = c.file || dc.file;
        }
        dc[side + '_s'] += c[metric] || 0;
        dc[side + '_self_s'] += c[selfMetric] || 0;
        stack.push(dc, c);
      }
    }
  }

  function byChange(a, b) {
    var d = Math.abs(b.change) - Math.abs(a.change);
    if (d) return d;
    d = Math.max(b.before_share, b.after_share) - Math.max(a.before_share, a.after_share);
    if (d) return d;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  }

  function share(value, total) {
    return total > 0 && isFinite(value) ? value / total : 0;
  }

  function options(opts) {
    opts = opts || {};
    var counts = opts.counts || {};
    return {
      metric: opts.metric === 'cpu_s' ? 'cpu_s' : 'wall_s',
      basis: opts.basis === 'time' ? 'time' : 'share',
      countBefore: counts.before > 0 ? counts.before : 1,
      countAfter: counts.after > 0 ? counts.after : 1
    };
  }

  /**
   * The differential tree of two profiles. opts: metric ('wall_s', the
   * default, or 'cpu_s'); counts {before, after}: the requests each side
   * stands for (default 1); basis: 'share' (default) or 'time' (what
   * `change` measures). Returns {root, metric, basis, before: {total,
   * count}, after: {total, count}, size, maxChange, maxDelta, added,
   * removed}. Nodes: {name, function, file, short_file, line, kind,
   * before_s, after_s, before_self_s, after_self_s, before_share,
   * after_share, both_share (their mean: a width that shows frames of
   * either side), delta (after_share - before_share), self_delta, delta_s
   * (change in seconds per request), self_delta_s, change (delta or
   * delta_s, by basis), status ('same', 'added': only after, 'removed':
   * only before), children (largest absolute change first)}.
   */
  function diffProfiles(before, after, opts) {
    var o = options(opts);
    var metric = o.metric;
    var rb = before && before.root ? before.root : { children: [] };
    var ra = after && after.root ? after.root : { children: [] };
    var root = newNode(ra.function || ra.name ? ra : rb);
    var maps = new Map();
    addSide(root, rb, 'before', metric, maps);
    addSide(root, ra, 'after', metric, maps);
    var totalBefore = root.before_s;
    var totalAfter = root.after_s;
    var size = 0;
    var maxDelta = 0;
    var maxChange = 0;
    var added = 0;
    var removed = 0;
    var stack = [root];
    while (stack.length) {
      var n = stack.pop();
      size++;
      n.before_share = share(n.before_s, totalBefore);
      n.after_share = share(n.after_s, totalAfter);
      n.both_share = (n.before_share + n.after_share) / 2;
      n.delta = n.after_share - n.before_share;
      n.self_delta = share(n.after_self_s, totalAfter) - share(n.before_self_s, totalBefore);
      n.delta_s = n.after_s / o.countAfter - n.before_s / o.countBefore;
      n.self_delta_s = n.after_self_s / o.countAfter - n.before_self_s / o.countBefore;
      n.change = o.basis === 'time' ? n.delta_s : n.delta;
      if (n !== root) {
        if (n.before_s <= 0 && n.after_s > 0) { n.status = 'added'; added++; }
        else if (n.after_s <= 0 && n.before_s > 0) { n.status = 'removed'; removed++; }
        if (Math.abs(n.delta) > maxDelta) maxDelta = Math.abs(n.delta);
        if (Math.abs(n.change) > maxChange) maxChange = Math.abs(n.change);
      }
      for (var i = 0; i < n.children.length; i++) stack.push(n.children[i]);
    }
    // Shares are final: now each child list can be sorted.
    stack = [root];
    while (stack.length) {
      var m = stack.pop();
      if (m.children.length > 1) m.children.sort(byChange);
      for (var j = 0; j < m.children.length; j++) stack.push(m.children[j]);
    }
    return {
      root: root, metric: metric, basis: o.basis, size: size, maxDelta: maxDelta, maxChange: maxChange,
      added: added, removed: removed,
      before: { total: totalBefore, count: o.countBefore, samples: rb.samples || 0 },
      after: { total: totalAfter, count: o.countAfter, samples: ra.samples || 0 }
    };
  }

  /**
   * Self time per function (frameKey) on each side, as shares of each
   * side's total and in seconds per request: [{key, name, function,
   * short_file, line, kind, before_share, after_share, delta, before_s,
   * after_s (per request), delta_s, change}], largest absolute change
   * first. opts as diffProfiles'.
   */
  function diffFunctions(before, after, opts) {
    var o = options(opts);
    var metric = o.metric;
    var selfMetric = SELF[metric];
    var rows = new Map();
    function walk(profile, side) {
      var r = profile && profile.root;
      if (!r) return;
      var total = r[metric] || 0;
      var stack = [r];
      while (stack.length) {
        var n = stack.pop();
        var self = n[selfMetric] || 0;
        if (self > 0) {
          var key = frameKey(n);
          var row = rows.get(key);
          if (!row) {
            row = { key: key, name: n.name || n.function || '', function: n.function || n.name || '',
              short_file: n.short_file || n.file || '', line: n.line || 0, kind: n.kind || 'frame',
              before_share: 0, after_share: 0, delta: 0, before_s: 0, after_s: 0, delta_s: 0, change: 0 };
            rows.set(key, row);
          }
          if (side === 'after') row.line = n.line || 0;
          row[side + '_share'] += share(self, total);
          row[side + '_s'] += self / (side === 'after' ? o.countAfter : o.countBefore);
        }
        var kids = n.children || [];
        for (var i = 0; i < kids.length; i++) stack.push(kids[i]);
      }
    }
    walk(before, 'before');
    walk(after, 'after');
    var out = Array.from(rows.values());
    for (var k = 0; k < out.length; k++) {
      var r = out[k];
      r.delta = r.after_share - r.before_share;
      r.delta_s = r.after_s - r.before_s;
      r.change = o.basis === 'time' ? r.delta_s : r.delta;
    }
    out.sort(byChange);
    return out;
  }

  /**
   * From the root, repeatedly the child with the largest absolute change,
   * while that change is at least floor (in the diff's basis: a share, or
   * seconds per request). Nodes, the root first.
   */
  function changePath(diff, floor) {
    var path = [diff.root];
    var n = diff.root;
    while (n.children.length && Math.abs(n.children[0].change) >= (floor || 0) && n.children[0].change !== 0) {
      n = n.children[0];
      path.push(n);
    }
    return path;
  }

  /**
   * The colour scale of a diff: {scale, neutral}. Changes under neutral
   * are drawn as unchanged: NEUTRAL of the time, or one sample's share of
   * the side with fewer samples, whichever is larger (a change of one
   * sample is noise). The scale is the largest change, at least MIN_SCALE
   * and four times neutral. In the time basis both are that share of the
   * longer side's time per request.
   */
  function colourScale(diff) {
    var b = diff.before || {};
    var a = diff.after || {};
    var unit = 1;
    if (diff.basis === 'time') {
      unit = Math.max((b.total || 0) / (b.count || 1), (a.total || 0) / (a.count || 1)) || 1;
    }
    var fewest = Math.min(b.samples || 0, a.samples || 0);
    var neutral = Math.max(NEUTRAL, fewest > 0 ? 1 / fewest : 0);
    var max = diff.maxChange === undefined ? diff.maxDelta : diff.maxChange;
    return { scale: Math.max(max || 0, Math.max(MIN_SCALE, 4 * neutral) * unit), neutral: neutral * unit };
  }

  /**
   * A fill colour for a change: red for more time, blue for less, grey
   * when unchanged (under neutral, default NEUTRAL); stronger as |change|
   * nears scale.
   */
  function diffColour(change, scale, neutral) {
    if (!isFinite(change) || Math.abs(change) < (neutral === undefined ? NEUTRAL : neutral)) return 'hsl(220, 10%, 84%)';
    var t = Math.min(1, Math.sqrt(Math.abs(change) / (scale > 0 ? scale : MIN_SCALE)));
    var hue = change > 0 ? 2 : 214;
    var sat = Math.round(40 + 45 * t);
    var light = Math.round(86 - 28 * t);
    return 'hsl(' + hue + ', ' + sat + '%, ' + light + '%)';
  }

  /** A change in share as signed percentage points: "+4.2 pp", "−0.31 pp", "0 pp". */
  function formatDelta(frac) {
    if (!isFinite(frac)) return '–';
    var p = frac * 100;
    var a = Math.abs(p);
    if (a < 0.005) return '0 pp';
    var digits = a >= 10 ? 1 : a >= 1 ? 1 : 2;
    var s = a.toFixed(digits);
    if (s.indexOf('.') >= 0) s = s.replace(/\.?0+$/, '');
    return (p > 0 ? '+' : '\u2212') + s + ' pp';
  }

  /** A change in seconds per request: "+4.1 ms", "−850 µs", "0". */
  function formatDeltaTime(seconds, formatTime) {
    if (!isFinite(seconds)) return '–';
    if (seconds === 0) return '0';
    return (seconds > 0 ? '+' : '\u2212') + formatTime(Math.abs(seconds));
  }

  /** A change in the diff's basis, as text. */
  function formatChange(diff, change, formatTime) {
    return diff.basis === 'time' ? formatDeltaTime(change, formatTime) : formatDelta(change);
  }

  return {
    NEUTRAL: NEUTRAL,
    MIN_SCALE: MIN_SCALE,
    frameKey: frameKey,
    diffProfiles: diffProfiles,
    diffFunctions: diffFunctions,
    changePath: changePath,
    colourScale: colourScale,
    diffColour: diffColour,
    formatDelta: formatDelta,
    formatDeltaTime: formatDeltaTime,
    formatChange: formatChange
  };
});
