/*
 * reqprof viewer: the model.
 *
 * Plain functions over the profile tree of docs/json-schema.md: no DOM, no
 * state, so they run the same in the browser (inlined into the report as a
 * classic script, exposed as globalThis.ReqprofModel) and under Node's test
 * runner (require()d as a CommonJS module).
 *
 * Most functions work on an *index* built once by flatten(): the tree in
 * preorder, one integer id per node, with parent, depth and subtree end
 * arrays. Preorder makes the usual questions cheap: the subtree of i is
 * ids i .. end[i]-1, the children of i are i+1, end[i+1], ... while below
 * end[i], and a reverse walk visits children before their parents.
 *
 * Nothing here mutates the profile it is given.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  }
  if (root) {
    root.ReqprofModel = api;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  var PSEUDO_KINDS = ['await', 'out-of-context', 'thread', 'truncated', 'gc', 'unsampled',
    'request', 'after-response', 'loop-busy', 'blocker'];
  var METRICS = { wall: 'wall_s', cpu: 'cpu_s' };

  // ---------------------------------------------------------------- files

  var SITE_RE = /[\\/](site|dist)-packages[\\/]/;
  var STDLIB_RE = /[\\/]lib(64)?[\\/](pypy|python)\d+(\.\d+)?t?[\\/]|[\\/]Lib[\\/]/;

  /** 'library' (site-packages), 'stdlib', or 'app', from co_filename. */
  function fileCategory(file) {
    if (typeof file !== 'string' || file === '') return 'app';
    if (SITE_RE.test(file)) return 'library';
    if (file.lastIndexOf('<frozen ', 0) === 0) return 'stdlib';
    if (STDLIB_RE.test(file)) return 'stdlib';
    return 'app';
  }

  /** 'pseudo' for [await] and friends, else fileCategory(node.file). */
  function nodeCategory(node) {
    if (node.kind && node.kind !== 'frame') return 'pseudo';
    return fileCategory(node.file);
  }

  function isLibrary(node) {
    var c = nodeCategory(node);
    return c === 'library' || c === 'stdlib';
  }

  /** The module a frame belongs to: its short file, or the pseudo kind. */
  function moduleKey(node) {
    if (node.kind && node.kind !== 'frame') return '[' + node.kind + ']';
    return node.short_file || node.file || node.function || '';
  }

  /** Top-level package of a frame: "starlette" for starlette/routing.py. */
  function topPackage(node) {
    var f = node.short_file || node.file || '';
    if (f.charAt(0) === '<') return f;
    var parts = f.split(/[\\/]/);
    var first = parts[0] === '' && parts.length > 1 ? parts[1] : parts[0];
    return first.replace(/\.pyw?$/, '') || f;
  }

  // ---------------------------------------------------------------- colour

  /** FNV-1a, 32 bits, over UTF-16 code units: stable across runs. */
  function hashString(s) {
    var h = 0x811c9dc5;
    for (var i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
  }

  var PSEUDO_COLOURS = {
    'await': 'hsl(210, 22%, 78%)',
    'out-of-context': 'hsl(0, 0%, 80%)',
    'thread': 'hsl(275, 40%, 80%)',
    'truncated': 'hsl(35, 15%, 72%)',
    'gc': 'hsl(12, 70%, 72%)',
    'unsampled': 'hsl(0, 0%, 88%)',
    'request': 'hsl(200, 15%, 86%)',
    'after-response': 'hsl(48, 55%, 78%)',
    'loop-busy': 'hsl(0, 65%, 74%)',
    'blocker': 'hsl(0, 45%, 82%)'
  };

  /**
   * A fill colour for a node, stable per module (the same file gets the same
   * colour in every report). App code is saturated, library and stdlib code
   * muted, pseudo-frames have fixed colours.
   */
  function colourFor(node) {
    var cat = nodeCategory(node);
    if (cat === 'pseudo') return PSEUDO_COLOURS[node.kind] || 'hsl(0, 0%, 80%)';
    var h = hashString(moduleKey(node));
    var hue = h % 360;
    if (cat === 'app') {
      return 'hsl(' + hue + ', ' + (55 + (h >>> 9) % 20) + '%, ' + (62 + (h >>> 17) % 10) + '%)';
    }
    return 'hsl(' + hue + ', ' + (12 + (h >>> 9) % 10) + '%, ' + (74 + (h >>> 17) % 8) + '%)';
  }

  // ---------------------------------------------------------------- format

  function trimZeros(s) {
    return s.indexOf('.') < 0 ? s : s.replace(/\.?0+$/, '');
  }

  /** Seconds as a short human string: "0", "850 ns", "12 µs", "3.4 ms", "1.25 s". */
  function formatTime(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '–';
    if (s === 0) return '0';
    var a = Math.abs(s);
    var v, unit;
    if (a < 1e-6) { v = s * 1e9; unit = ' ns'; }
    else if (a < 1e-3) { v = s * 1e6; unit = ' µs'; }
    else if (a < 1) { v = s * 1e3; unit = ' ms'; }
    else { v = s; unit = ' s'; }
    var av = Math.abs(v);
    var digits = av >= 100 ? 0 : av >= 10 ? 1 : 2;
    if (unit === ' ns') digits = 0;
    return trimZeros(v.toFixed(digits)) + unit;
  }

  /** value / total as a fraction in [0, 1]; 0 when total is 0. */
  function percent(value, total) {
    if (!total || !isFinite(total) || !isFinite(value)) return 0;
    return value / total;
  }

  /** A fraction as "12.3%", "100%", "0.04%", "<0.01%". */
  function formatPercent(frac) {
    if (!isFinite(frac) || frac <= 0) return '0%';
    var p = frac * 100;
    if (p < 0.01) return '<0.01%';
    var digits = p >= 99.95 ? 0 : p >= 10 ? 1 : p >= 1 ? 1 : 2;
    return trimZeros(p.toFixed(digits)) + '%';
  }

  /**
   * When the overhead budget made the sampling interval at least 1% longer
   * than asked (the text report's rule): "lengthened to 4.37 ms (1 ms
   * asked) to stay within the 1% overhead budget"; null otherwise, and for
   * a profile written before effective_interval_s existed.
   */
  function intervalNote(profile) {
    var asked = profile ? profile.interval_s : undefined;
    var used = profile ? profile.effective_interval_s : undefined;
    if (typeof asked !== 'number' || typeof used !== 'number' || !(asked > 0) ||
        !isFinite(used) || !(used >= asked * 1.01)) return null;
    var budget = profile.overhead_budget_percent;
    return 'lengthened to ' + formatTime(used) + ' (' + formatTime(asked) + ' asked) to stay within ' +
      (typeof budget === 'number' && budget > 0
        ? 'the ' + trimZeros(budget.toFixed(6)) + '% overhead budget'
        : 'the overhead budget of another session');
  }

  /**
   * The CPU the engine's own threads used while the profile ran, and its
   * share of one core: "3.1 ms (0.31% of a core)"; '' when not known.
   */
  function samplerCpu(profile) {
    var cpu = profile ? profile.sampler_cpu_s : undefined;
    if (typeof cpu !== 'number' || !isFinite(cpu)) return '';
    var share = profile.sampler_cpu_percent;
    return formatTime(cpu) + (typeof share === 'number' && isFinite(share)
      ? ' (' + formatPercent(share / 100) + ' of a core)' : '');
  }

  /** Unix seconds as a local "YYYY-MM-DD HH:MM:SS". */
  function formatDate(unixSeconds) {
    if (typeof unixSeconds !== 'number' || !isFinite(unixSeconds) || unixSeconds <= 0) return '';
    var d = new Date(unixSeconds * 1000);
    function p2(n) { return (n < 10 ? '0' : '') + n; }
    return d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + ' ' +
      p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds());
  }

  /** Byte count as "812 B", "3.4 kB", "1.2 MB". */
  function formatBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '';
    if (n < 1000) return n + ' B';
    if (n < 1e6) return trimZeros((n / 1e3).toFixed(1)) + ' kB';
    if (n < 1e9) return trimZeros((n / 1e6).toFixed(1)) + ' MB';
    return trimZeros((n / 1e9).toFixed(1)) + ' GB';
  }

  // ---------------------------------------------------------------- checks

  /** Problems that stop the viewer from showing a profile ([] when fine). */
  function validateProfile(p) {
    var problems = [];
    if (!p || typeof p !== 'object') return ['the profile is not a JSON object'];
    if (p.version !== 1) problems.push('unsupported schema version ' + JSON.stringify(p.version) + ' (this viewer reads version 1)');
    if (!p.root || typeof p.root !== 'object') problems.push('the profile has no root node');
    else if (!Array.isArray(p.root.children)) problems.push('the root node has no children list');
    return problems;
  }

  // ---------------------------------------------------------------- index

  /**
   * The tree in preorder: {nodes, parent, depth, end, lib, maxDepth, size}.
   * nodes[i] is the profile node with id i (root = 0); parent[0] = -1; the
   * subtree of i is i .. end[i]-1; lib[i] is 1 for library and stdlib frames.
   * Iterative: a 10,000-deep chain is fine.
   */
  function flatten(root) {
    var nodes = [];
    var parents = [];
    var depths = [];
    var stack = [root];
    var pstack = [-1];
    var dstack = [0];
    while (stack.length) {
      var n = stack.pop();
      var p = pstack.pop();
      var d = dstack.pop();
      var id = nodes.length;
      nodes.push(n);
      parents.push(p);
      depths.push(d);
      var ch = n.children || [];
      for (var c = ch.length - 1; c >= 0; c--) {
        stack.push(ch[c]);
        pstack.push(id);
        dstack.push(d + 1);
      }
    }
    var count = nodes.length;
    var parent = new Int32Array(count);
    var depth = new Int32Array(count);
    var end = new Int32Array(count);
    var lib = new Uint8Array(count);
    var maxDepth = 0;
    var libByFile = new Map();
    for (var i = 0; i < count; i++) {
      parent[i] = parents[i];
      depth[i] = depths[i];
      end[i] = i + 1;
      if (depths[i] > maxDepth) maxDepth = depths[i];
      var nd = nodes[i];
      if (nd.kind && nd.kind !== 'frame') continue;
      var f = nd.file || '';
      var isLib = libByFile.get(f);
      if (isLib === undefined) { isLib = isLibrary(nd) ? 1 : 0; libByFile.set(f, isLib); }
      lib[i] = isLib;
    }
    for (var j = count - 1; j > 0; j--) {
      if (end[j] > end[parent[j]]) end[parent[j]] = end[j];
    }
    return { nodes: nodes, parent: parent, depth: depth, end: end, lib: lib, maxDepth: maxDepth, size: count };
  }

  /** Ids of the children of i, in the profile's order. */
  function childIds(index, i) {
    var out = [];
    for (var c = i + 1; c < index.end[i]; c = index.end[c]) out.push(c);
    return out;
  }

  /** Ids from the root down to i, both included. */
  function ancestorIds(index, i) {
    var out = [];
    for (var a = i; a >= 0; a = index.parent[a]) out.push(a);
    return out.reverse();
  }

  /** The id of a profile node (by identity), or -1. Linear: use sparingly. */
  function idOf(index, node) {
    return index.nodes.indexOf(node);
  }

  // ---------------------------------------------------------------- paths

  /**
   * The hot path: from the root, repeatedly the child with the most time
   * (metric: 'wall_s' or 'cpu_s'; the first one on a tie), down to a leaf,
   * or until that child has less than minShare of the root's time.
   * Returns ids, the root's (0) first.
   */
  function hotPath(index, metric, minShare) {
    metric = metric || 'wall_s';
    var floor = (minShare || 0) * (index.nodes[0][metric] || 0);
    var path = [0];
    var i = 0;
    for (;;) {
      var best = -1;
      var bestV = 0;
      for (var c = i + 1; c < index.end[i]; c = index.end[c]) {
        var v = index.nodes[c][metric] || 0;
        if (v > bestV) { bestV = v; best = c; }
      }
      if (best < 0 || bestV < floor) return path;
      path.push(best);
      i = best;
    }
  }

  /** [[line, seconds], ...] of a node's hot lines, largest first. */
  function hotLines(node) {
    var out = [];
    var lines = node.lines || {};
    for (var k in lines) {
      if (Object.prototype.hasOwnProperty.call(lines, k)) out.push([Number(k), lines[k]]);
    }
    out.sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; });
    return out;
  }

  // ---------------------------------------------------------------- search

  /** A case-insensitive matcher for a query, or null for an empty query. */
  function makeMatcher(query) {
    var q = String(query || '').trim().toLowerCase();
    if (!q) return null;
    return function (node) {
      var name = node.name || node.function || '';
      if (name.toLowerCase().indexOf(q) >= 0) return true;
      var file = node.file || '';
      return file !== '' && file.toLowerCase().indexOf(q) >= 0;
    };
  }

  /**
   * Which nodes match a query: {query, match, onPath, keep, count}. match[i]
   * is 1 when node i matches; onPath[i] when i or one of its descendants
   * does; keep[i] when onPath[i] or i is below a match (the nodes a filtered
   * tree keeps). Null for an empty query.
   */
  function searchTree(index, query) {
    var matcher = makeMatcher(query);
    if (!matcher) return null;
    var n = index.size;
    var match = new Uint8Array(n);
    var onPath = new Uint8Array(n);
    var count = 0;
    for (var i = 0; i < n; i++) {
      if (matcher(index.nodes[i])) { match[i] = 1; onPath[i] = 1; count++; }
    }
    for (var j = n - 1; j > 0; j--) {
      if (onPath[j]) onPath[index.parent[j]] = 1;
    }
    // keep: what a filtered tree shows: the paths to matches, and what lies
    // under a match (so a match can still be explored).
    var under = new Uint8Array(n);
    var keep = new Uint8Array(n);
    for (var k = 0; k < n; k++) {
      under[k] = match[k] || (k > 0 && under[index.parent[k]]) ? 1 : 0;
      keep[k] = onPath[k] || under[k] ? 1 : 0;
    }
    return { query: String(query).trim(), match: match, onPath: onPath, keep: keep, count: count };
  }

  // ------------------------------------------------------------ breakdown

  /**
   * The parts of a profile's time (its `breakdown`, docs/json-schema.md),
   * in a fixed order, those with time only: [{key, label, kind, wall_s,
   * share, blockers}]. `kind` is the node kind the part is made of (null for
   * running: the frames themselves); `share` is of the parts' sum. [] when
   * the profile has no breakdown (written before it existed).
   */
  var BREAKDOWN_PARTS = [
    ['running', 'running', null],
    ['awaiting', 'awaiting', 'await'],
    ['event_loop_busy', 'waiting for a busy event loop', 'loop-busy'],
    ['in_worker_threads', 'in worker threads', 'thread'],
    ['gc', 'GC', 'gc'],
    ['unsampled', 'unsampled', 'unsampled'],
    ['out_of_context', 'out of context', 'out-of-context']
  ];

  function breakdownParts(profile) {
    var b = profile && profile.breakdown;
    if (!b || typeof b !== 'object') return [];
    var parts = [];
    var total = 0;
    BREAKDOWN_PARTS.forEach(function (p) {
      var v = b[p[0]];
      var wall = v && typeof v.wall_s === 'number' && v.wall_s > 0 ? v.wall_s : 0;
      if (!wall) return;
      total += wall;
      parts.push({ key: p[0], label: p[1], kind: p[2], wall_s: wall, share: 0,
        blockers: p[0] === 'event_loop_busy' && Array.isArray(v.blockers) ? v.blockers : [] });
    });
    parts.forEach(function (p) { p.share = total > 0 ? p.wall_s / total : 0; });
    return parts;
  }

  /**
   * The nodes of one kind as a search result (searchTree's shape): what a
   * click on a breakdown part shows. Null when the kind is null or absent.
   */
  function kindFilter(index, kind) {
    if (!kind) return null;
    var n = index.size;
    var match = new Uint8Array(n);
    var onPath = new Uint8Array(n);
    var count = 0;
    for (var i = 0; i < n; i++) {
      if (index.nodes[i].kind === kind) { match[i] = 1; onPath[i] = 1; count++; }
    }
    if (!count) return null;
    for (var j = n - 1; j > 0; j--) {
      if (onPath[j]) onPath[index.parent[j]] = 1;
    }
    var under = new Uint8Array(n);
    var keep = new Uint8Array(n);
    for (var k = 0; k < n; k++) {
      under[k] = match[k] || (k > 0 && under[index.parent[k]]) ? 1 : 0;
      keep[k] = onPath[k] || under[k] ? 1 : 0;
    }
    return { query: '[' + kind + ']', match: match, onPath: onPath, keep: keep, count: count };
  }

  /**
   * Where a query occurs in a text, case-insensitively: [[start, end], ...].
   * When lower-casing changes the text's length, the whole text is one range.
   */
  function highlightRanges(text, query) {
    var q = String(query || '').trim().toLowerCase();
    if (!q || !text) return [];
    var lower = text.toLowerCase();
    if (lower.length !== text.length) return lower.indexOf(q) >= 0 ? [[0, text.length]] : [];
    var out = [];
    var from = 0;
    for (;;) {
      var at = lower.indexOf(q, from);
      if (at < 0) return out;
      out.push([at, at + q.length]);
      from = at + q.length;
    }
  }

  // ---------------------------------------------------------------- library groups

  /**
   * The library region headed by id h: h and every library frame reachable
   * from it through library frames only. Returns {members, exits}: exits are
   * the non-library children of members (app frames, pseudo-frames), whose
   * subtrees are disjoint, so wall(h) = sum(self of members) + sum(wall of exits).
   */
  function libraryRegion(index, h) {
    var members = [];
    var exits = [];
    var stack = [h];
    while (stack.length) {
      var i = stack.pop();
      members.push(i);
      var kids = childIds(index, i);
      for (var k = kids.length - 1; k >= 0; k--) {
        var ch = kids[k];
        if (index.lib[ch]) stack.push(ch);
        else exits.push(ch);
      }
    }
    members.sort(function (a, b) { return a - b; });
    exits.sort(function (a, b) { return a - b; });
    return { members: members, exits: exits };
  }

  function sumOver(index, ids, field) {
    var t = 0;
    for (var i = 0; i < ids.length; i++) t += index.nodes[ids[i]][field] || 0;
    return t;
  }

  /** Distinct top-level packages of some frames, in first-seen order. */
  function packagesOf(index, ids) {
    var seen = {};
    var out = [];
    for (var i = 0; i < ids.length; i++) {
      var p = topPackage(index.nodes[ids[i]]);
      if (!Object.prototype.hasOwnProperty.call(seen, p)) { seen[p] = 1; out.push(p); }
    }
    return out;
  }

  /**
   * The tree the call-tree view shows: profile nodes, with runs of library
   * frames folded into group nodes when opts.groupLibrary is set. Built
   * lazily: a display node's children exist once children(d) is asked for
   * them (the view asks only for expanded nodes), so opening a 50,000-node
   * profile builds a few dozen display nodes.
   *
   * A group stands for a library region (libraryRegion) of at least
   * opts.minGroup (2) frames whose head's parent is not a library frame
   * (the root is never grouped); its children are the region's exits,
   * largest first. opts.openGroups (a Set of head ids) lists groups shown
   * as plain frames. opts.filter (a Uint8Array such as searchTree().keep)
   * keeps only the nodes it marks; opts.match opens the groups that have a
   * matching member, so the match is visible.
   *
   * Display nodes: {key, type: 'node'|'group', id, depth, parent, wall_s,
   * cpu_s, self_wall_s, self_cpu_s, samples} plus, for groups, {members,
   * exits, packages}. key is 'n' + id or 'g' + head id, stable across
   * rebuilds. Returns {root, byKey (Map of the nodes built so far),
   * groupOf (Int32Array: head id of the closed group a node was folded
   * into, -1 when not (yet) known), children(d), locate(id)}.
   */
  function buildDisplayTree(index, opts) {
    opts = opts || {};
    var group = !!opts.groupLibrary;
    var minGroup = opts.minGroup || 2;
    var open = opts.openGroups || null;
    var filter = opts.filter || null;
    var match = opts.match || null;
    var byKey = new Map();
    var groupOf = new Int32Array(index.size).fill(-1);

    function plain(id, depth, parent, inOpen) {
      var n = index.nodes[id];
      var d = {
        key: 'n' + id, type: 'node', id: id, depth: depth, parent: parent, _kids: null, _inOpen: inOpen,
        wall_s: n.wall_s || 0, cpu_s: n.cpu_s || 0, self_wall_s: n.self_wall_s || 0,
        self_cpu_s: n.self_cpu_s || 0, samples: n.samples || 0
      };
      byKey.set(d.key, d);
      return d;
    }

    function makeGroup(c, region, parent) {
      var hn = index.nodes[c];
      var g = {
        key: 'g' + c, type: 'group', id: c, depth: parent.depth + 1, parent: parent, _kids: null,
        wall_s: hn.wall_s || 0, cpu_s: hn.cpu_s || 0,
        self_wall_s: sumOver(index, region.members, 'self_wall_s'),
        self_cpu_s: sumOver(index, region.members, 'self_cpu_s'),
        samples: hn.samples || 0,
        members: region.members, exits: region.exits,
        packages: packagesOf(index, region.members)
      };
      for (var r = 0; r < region.members.length; r++) groupOf[region.members[r]] = c;
      byKey.set(g.key, g);
      return g;
    }

    function children(d) {
      if (d._kids) return d._kids;
      var out = [];
      if (d.type === 'group') {
        var ex = d.exits.slice().sort(function (a, b) {
          return (index.nodes[b].wall_s || 0) - (index.nodes[a].wall_s || 0) || a - b;
        });
        for (var e = 0; e < ex.length; e++) {
          if (!filter || filter[ex[e]]) out.push(plain(ex[e], d.depth + 1, d, false));
        }
        d._kids = out;
        return out;
      }
      var inOpen = d._inOpen;
      for (var c = d.id + 1; c < index.end[d.id]; c = index.end[c]) {
        if (filter && !filter[c]) continue;
        var isLib = index.lib[c] === 1;
        if (group && isLib && !inOpen) {
          var region = libraryRegion(index, c);
          var opened = !!(open && open.has(c));
          if (!opened && match) {
            for (var m = 0; m < region.members.length; m++) {
              if (match[region.members[m]]) { opened = true; break; }
            }
          }
          if (region.members.length >= minGroup && !opened) out.push(makeGroup(c, region, d));
          else out.push(plain(c, d.depth + 1, d, region.members.length >= minGroup));
          continue;
        }
        out.push(plain(c, d.depth + 1, d, inOpen && isLib));
      }
      d._kids = out;
      return out;
    }

    /** The display node that shows profile node id (building the way to it), or null. */
    function locate(id) {
      var path = ancestorIds(index, id);
      var d = root;
      for (var p = 1; p < path.length; p++) {
        if (filter && !filter[path[p]]) return null;
        if (d.type === 'group' && groupOf[path[p]] === d.id) continue;
        var kids = children(d);
        var want = groupOf[path[p]] >= 0 ? 'g' + groupOf[path[p]] : 'n' + path[p];
        var next = null;
        for (var k = 0; k < kids.length; k++) if (kids[k].key === want) { next = kids[k]; break; }
        if (!next) return null;
        d = next;
      }
      return d;
    }

    var root = plain(0, 0, null, false);
    return { root: root, byKey: byKey, groupOf: groupOf, children: children, locate: locate };
  }

  /** Display nodes visible with the given expanded keys (a Set), in order. */
  function visibleRows(dt, expanded) {
    var out = [];
    var stack = [dt.root];
    while (stack.length) {
      var d = stack.pop();
      out.push(d);
      if (expanded.has(d.key)) {
        var kids = dt.children(d);
        for (var i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
      }
    }
    return out;
  }

  /**
   * The member of a group with the most self wall time, when it holds at
   * least minShare (default 0.25) of the group's wall time; else -1.
   */
  function hottestMember(index, g, minShare) {
    var best = -1;
    var bestV = 0;
    for (var i = 0; i < g.members.length; i++) {
      var v = index.nodes[g.members[i]].self_wall_s || 0;
      if (v > bestV) { bestV = v; best = g.members[i]; }
    }
    var floor = (minShare === undefined ? 0.25 : minShare) * (g.wall_s || 0);
    return best >= 0 && bestV > 0 && bestV >= floor ? best : -1;
  }

  /** A short label for a group: "5 library frames: starlette, anyio". */
  function groupLabel(g) {
    var pk = g.packages.slice(0, 4).join(', ');
    if (g.packages.length > 4) pk += ' +' + (g.packages.length - 4);
    return g.members.length + ' library frames: ' + pk;
  }

  // ---------------------------------------------------------------- top functions

  function functionKey(node) {
    return (node.kind || 'frame') + '\u0000' + (node.function || '') + '\u0000' + (node.file || '') + '\u0000' + (node.line || 0);
  }

  /**
   * Self time per function (function + file + first line + kind), largest
   * self wall time first. total_wall_s / total_cpu_s count a function once
   * per stack (recursion is not double counted). ids: the nodes of the
   * function, largest self wall time first.
   */
  function topFunctions(index) {
    var rows = new Map();
    var active = new Map();
    var openEnd = [];
    var openKey = [];
    var busyOf = new Int32Array(index.size);  // the [event loop busy] above, or -1
    for (var i = 0; i < index.size; i++) {
      while (openEnd.length && openEnd[openEnd.length - 1] <= i) {
        openEnd.pop();
        var ok = openKey.pop();
        active.set(ok, active.get(ok) - 1);
      }
      var n = index.nodes[i];
      var up = i > 0 ? busyOf[index.parent[i]] : -1;
      busyOf[i] = up >= 0 ? up : (n.kind === 'loop-busy' ? i : -1);
      if (up >= 0) {
        // The blocker's frames are another request's work: the wait's time.
        var wait = rows.get(functionKey(index.nodes[up]));
        wait.self_wall_s += n.self_wall_s || 0;
        wait.self_cpu_s += n.self_cpu_s || 0;
        continue;
      }
      var key = functionKey(n);
      var row = rows.get(key);
      if (!row) {
        row = {
          key: key, name: n.name || n.function || '', function: n.function || '', file: n.file || '',
          short_file: n.short_file || '', line: n.line || 0, kind: n.kind || 'frame',
          category: nodeCategory(n), self_wall_s: 0, self_cpu_s: 0, total_wall_s: 0, total_cpu_s: 0,
          samples: 0, count: 0, ids: []
        };
        rows.set(key, row);
      }
      row.self_wall_s += n.self_wall_s || 0;
      row.self_cpu_s += n.self_cpu_s || 0;
      row.count++;
      row.ids.push(i);
      var act = active.get(key) || 0;
      if (act === 0) {
        row.total_wall_s += n.wall_s || 0;
        row.total_cpu_s += n.cpu_s || 0;
        row.samples += n.samples || 0;
      }
      active.set(key, act + 1);
      openEnd.push(index.end[i]);
      openKey.push(key);
    }
    var out = Array.from(rows.values());
    for (var r = 0; r < out.length; r++) {
      out[r].ids.sort(function (a, b) {
        return (index.nodes[b].self_wall_s || 0) - (index.nodes[a].self_wall_s || 0) || a - b;
      });
    }
    return sortRows(out, 'self_wall_s', true);
  }

  /**
   * Rows sorted by a column, stable, ties broken by name. Numbers compare
   * numerically, strings case-insensitively. Returns a new array.
   */
  function sortRows(rows, column, descending) {
    var sign = descending ? -1 : 1;
    var decorated = rows.map(function (r, i) { return [r, i]; });
    decorated.sort(function (a, b) {
      var x = a[0][column];
      var y = b[0][column];
      var c;
      if (typeof x === 'number' && typeof y === 'number') c = x - y;
      else c = String(x).toLowerCase() < String(y).toLowerCase() ? -1 : String(x).toLowerCase() > String(y).toLowerCase() ? 1 : 0;
      if (c !== 0) return sign * c;
      var na = a[0].name || '';
      var nb = b[0].name || '';
      if (na !== nb) return na < nb ? -1 : 1;
      return a[1] - b[1];
    });
    return decorated.map(function (d) { return d[0]; });
  }

  // ---------------------------------------------------------------- flame graph

  /**
   * Icicle layout for a metric ('wall_s' or 'cpu_s'): x0[i] and w[i] as
   * fractions of the root's value (the root spans [0, 1]); children are
   * laid left to right in profile order, each as wide as its value and
   * clamped to its parent. byDepth[d] lists the ids at depth d, by x0.
   *
   * With `grouped`, library regions are folded as in the call tree
   * (buildDisplayTree): a region of two or more library frames under the
   * root or a non-library frame is one rect at its head's id (groups: head id ->
   * {members, exits, packages}), its other members are not drawn (w 0,
   * depth -1), and its exits (the app frames and pseudo-frames it calls)
   * are drawn right below the head. depth[i], parent[i] and maxDepth are
   * the drawn tree's.
   */
  function flameLayout(index, metric, grouped) {
    metric = metric || 'wall_s';
    var n = index.size;
    var x0 = new Float64Array(n);
    var w = new Float64Array(n);
    var cursor = new Float64Array(n);
    var depth = new Int32Array(n);
    var parent = Int32Array.from(index.parent);
    var hidden = new Uint8Array(n);
    var groups = new Map();
    var total = index.nodes[0][metric] || 0;
    var maxDepth = 0;
    var byDepthLists = [[]];
    for (var i = 0; i < n; i++) {
      if (hidden[i]) {
        depth[i] = -1;
        parent[i] = -1;
        continue;
      }
      if (i === 0) {
        x0[0] = 0;
        w[0] = total > 0 ? 1 : 0;
      } else {
        var p = parent[i];
        var v = total > 0 ? (index.nodes[i][metric] || 0) / total : 0;
        var start = cursor[p];
        var limit = x0[p] + w[p];
        if (start + v > limit) v = Math.max(0, limit - start);
        x0[i] = start;
        w[i] = v;
        cursor[p] = start + v;
        depth[i] = depth[p] + 1;
        // A region starts at a library frame called by the root or by a
        // frame that is not library code (buildDisplayTree's rule).
        if (grouped && index.lib[i] && (index.parent[i] === 0 || !index.lib[index.parent[i]])) {
          var region = libraryRegion(index, i);
          if (region.members.length >= 2) {
            region.packages = packagesOf(index, region.members);
            groups.set(i, region);
            for (var m = 0; m < region.members.length; m++) if (region.members[m] !== i) hidden[region.members[m]] = 1;
            for (var e = 0; e < region.exits.length; e++) parent[region.exits[e]] = i;
          }
        }
      }
      cursor[i] = x0[i];
      if (depth[i] > maxDepth) maxDepth = depth[i];
      while (byDepthLists.length <= depth[i]) byDepthLists.push([]);
      if (w[i] > 0) byDepthLists[depth[i]].push(i);
    }
    // Rects of one depth are laid in id order, which is x order except
    // under groups (exits come after other members): sort by x0.
    var byDepth = byDepthLists.map(function (l) {
      if (grouped) l.sort(function (a, b) { return x0[a] - x0[b] || a - b; });
      return Int32Array.from(l);
    });
    return {
      metric: metric, total: total, x0: x0, w: w, byDepth: byDepth, grouped: !!grouped,
      depth: depth, parent: parent, maxDepth: maxDepth, groups: groups
    };
  }

  /** Ids drawn right below id in a flame layout, left to right. */
  function flameChildren(layout, id) {
    var out = [];
    var ids = layout.byDepth[layout.depth[id] + 1];
    if (!ids) return out;
    for (var k = firstEndingAfter(layout, ids, layout.x0[id]); k < ids.length; k++) {
      var c = ids[k];
      if (layout.x0[c] >= layout.x0[id] + layout.w[id]) break;
      if (layout.parent[c] === id) out.push(c);
    }
    return out;
  }

  /** Ids from the root down to id in a flame layout. */
  function flameAncestors(layout, id) {
    var out = [];
    for (var a = id; a >= 0; a = layout.parent[a]) out.push(a);
    return out.reverse();
  }

  /** The first position in ids (sorted by x0) whose rect ends after x. */
  function firstEndingAfter(layout, ids, x) {
    var lo = 0;
    var hi = ids.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      var id = ids[mid];
      if (layout.x0[id] + layout.w[id] <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The id of the rect at depth d covering fraction x, or -1. */
  function flameHit(layout, depth, x) {
    var ids = layout.byDepth[depth];
    if (!ids) return -1;
    var k = firstEndingAfter(layout, ids, x);
    if (k >= ids.length) return -1;
    var id = ids[k];
    return layout.x0[id] <= x ? id : -1;
  }

  return {
    PSEUDO_KINDS: PSEUDO_KINDS,
    METRICS: METRICS,
    fileCategory: fileCategory,
    nodeCategory: nodeCategory,
    isLibrary: isLibrary,
    moduleKey: moduleKey,
    topPackage: topPackage,
    hashString: hashString,
    colourFor: colourFor,
    formatTime: formatTime,
    formatPercent: formatPercent,
    formatDate: formatDate,
    formatBytes: formatBytes,
    intervalNote: intervalNote,
    samplerCpu: samplerCpu,
    percent: percent,
    validateProfile: validateProfile,
    flatten: flatten,
    childIds: childIds,
    ancestorIds: ancestorIds,
    idOf: idOf,
    hotPath: hotPath,
    hotLines: hotLines,
    makeMatcher: makeMatcher,
    searchTree: searchTree,
    breakdownParts: breakdownParts,
    kindFilter: kindFilter,
    highlightRanges: highlightRanges,
    libraryRegion: libraryRegion,
    buildDisplayTree: buildDisplayTree,
    visibleRows: visibleRows,
    groupLabel: groupLabel,
    hottestMember: hottestMember,
    functionKey: functionKey,
    topFunctions: topFunctions,
    sortRows: sortRows,
    flameLayout: flameLayout,
    flameChildren: flameChildren,
    flameAncestors: flameAncestors,
    firstEndingAfter: firstEndingAfter,
    flameHit: flameHit
  };
});
