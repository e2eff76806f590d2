/*
 * reqprof viewer: the differential view (before -> after), shared by the
 * dashboard's compare tab and the page `reqprof diff` writes.
 *
 * ReqprofDiffView.create(host, before, after, opts) diffs two profiles
 * with ReqprofDiff (the model) and shows:
 *
 * - a flame graph of the union of both call trees (the report's
 *   ReqprofFlame, with this view's colours and tooltip): widths are the
 *   mean of the two shares by default (so frames that are gone still
 *   show), or either side's; colours are the change, red for more time,
 *   blue for less: in share of the time (the default), or in time per
 *   request;
 * - the differential call tree: before, after and change per call path,
 *   children by absolute change, the path of the largest changes open;
 * - the functions whose self time changed most.
 *
 * Every string from a profile reaches the page as text (ReqprofViews.el)
 * or canvas fillText, as in the report.
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;
  var V = global.ReqprofViews;
  var D = global.ReqprofDiff;
  var el = V.el;

  var ROW_H = 22;
  var OVERSCAN = 8;
  var MAX_FUNCTIONS = 500;
  /** The path of the largest changes is opened down to changes this many times the neutral one. */
  var OPEN_FLOOR = 5;
  /** ... else the hot path, down to frames of this share. */
  var HOT_FLOOR = 0.02;

  var WIDTHS = [
    { id: 'both_share', label: 'Both', title: 'Frame width: the mean of its share before and after (frames of either side show)' },
    { id: 'before_share', label: 'Before', title: 'Frame width: its share before' },
    { id: 'after_share', label: 'After', title: 'Frame width: its share after' }
  ];

  function statusText(n) {
    return n.status === 'added' ? 'new' : n.status === 'removed' ? 'gone' : '';
  }

  /** "12.3% (4.1 ms)" for one side of a node. */
  function sideText(share, seconds, count) {
    var t = M.formatPercent(share);
    if (seconds > 0) t += ' · ' + M.formatTime(count > 1 ? seconds / count : seconds) + (count > 1 ? '/req' : '');
    return t;
  }

  // ------------------------------------------------------------ the tree

  function createDiffTree(host, ctx) {
    var index = ctx.index;
    var diff = ctx.diff;
    var scale = ctx.scale.scale;
    var head = el('div', { className: 'rd-tree-head', 'aria-hidden': 'true' }, [
      el('span', { className: 'rd-c-chg', text: diff.basis === 'time' ? 'Change / req' : 'Change' }),
      el('span', { className: 'rd-c-side', text: 'Before' }),
      el('span', { className: 'rd-c-side', text: 'After' }),
      el('span', { className: 'rd-c-name', text: 'Frame' })
    ]);
    var scroller = el('div', {
      className: 'rd-tree', role: 'tree', tabindex: '0',
      'aria-label': 'Differential call tree: each frame\'s share of the time before and after, and the change; largest changes first'
    });
    var sizer = el('div', { className: 'rp-tree-sizer' });
    scroller.appendChild(sizer);
    host.appendChild(head);
    host.appendChild(scroller);

    var expanded = new Set();
    var rows = [];
    var selected = 0;
    var drawQueued = false;

    function hasKids(i) { return index.end[i] > i + 1; }

    function refreshRows() {
      rows = [];
      var stack = [0];
      while (stack.length) {
        var i = stack.pop();
        rows.push(i);
        if (expanded.has(i)) {
          var kids = M.childIds(index, i);
          for (var k = kids.length - 1; k >= 0; k--) stack.push(kids[k]);
        }
      }
      sizer.style.height = rows.length * ROW_H + 'px';
      draw();
    }

    function renderRow(i, pos) {
      var n = index.nodes[i];
      var open = expanded.has(i);
      var cls = 'rd-row';
      if (n.status !== 'same') cls += ' is-' + n.status;
      var cat = M.nodeCategory(n);
      if (cat === 'pseudo') cls += ' kind-' + n.kind;
      else if (cat !== 'app') cls += ' cat-' + cat;
      if (i === selected) cls += ' is-selected';
      var row = el('div', {
        className: cls, role: 'treeitem', id: 'rd-row-' + i, 'data-id': String(i),
        'aria-level': String(index.depth[i] + 1), 'aria-selected': i === selected ? 'true' : 'false',
        'aria-expanded': hasKids(i) ? (open ? 'true' : 'false') : undefined
      });
      row.style.top = pos * ROW_H + 'px';
      var bar = el('span', { className: 'rd-chg-bar ' + (n.change >= 0 ? 'up' : 'down') });
      var w = Math.min(50, 50 * Math.abs(n.change) / scale);
      bar.style.width = w.toFixed(2) + '%';
      bar.style.background = D.diffColour(n.change, scale, ctx.scale.neutral);
      var name = el('span', { className: 'rd-c-name' });
      name.style.paddingLeft = Math.min(index.depth[i], 24) * 14 + Math.max(0, index.depth[i] - 24) * 4 + 'px';
      name.appendChild(el('span', { className: 'rp-toggle', 'aria-hidden': 'true', text: hasKids(i) ? (open ? '▾' : '▸') : '' }));
      name.appendChild(el('span', { className: 'rp-fn', text: V.frameLabel(n) }));
      var where = V.frameWhere(n);
      if (where) name.appendChild(el('span', { className: 'rp-where', text: where }));
      var st = statusText(n);
      if (st) name.appendChild(el('span', { className: 'rd-badge rd-' + n.status, text: st }));
      V.append(row, [
        el('span', { className: 'rd-c-chg', title: diff.basis === 'time' ? 'Change in time per request' : 'Change in share of the time, in percentage points' }, [
          el('span', { className: 'rd-chg-track' }, bar),
          el('span', { className: 'rd-chg-text', text: D.formatChange(diff, n.change, M.formatTime) })
        ]),
        el('span', { className: 'rd-c-side', text: M.formatPercent(n.before_share) }),
        el('span', { className: 'rd-c-side', text: M.formatPercent(n.after_share) }),
        name
      ]);
      return row;
    }

    function draw() {
      var top = scroller.scrollTop;
      var h = scroller.clientHeight || 600;
      var first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
      var last = Math.min(rows.length, Math.ceil((top + h) / ROW_H) + OVERSCAN);
      var frag = document.createDocumentFragment();
      for (var p = first; p < last; p++) frag.appendChild(renderRow(rows[p], p));
      sizer.replaceChildren(frag);
      var at = rows.indexOf(selected);
      if (at >= first && at < last) scroller.setAttribute('aria-activedescendant', 'rd-row-' + selected);
      else scroller.removeAttribute('aria-activedescendant');
    }

    function scheduleDraw() {
      if (drawQueued) return;
      drawQueued = true;
      global.requestAnimationFrame(function () { drawQueued = false; draw(); });
    }

    function ensureVisible(pos) {
      var top = pos * ROW_H;
      var h = scroller.clientHeight || 600;
      if (top < scroller.scrollTop) scroller.scrollTop = top;
      else if (top + ROW_H > scroller.scrollTop + h) scroller.scrollTop = top + ROW_H - h;
    }

    function selectAt(pos, scroll) {
      if (!rows.length) return;
      pos = Math.max(0, Math.min(rows.length - 1, pos));
      selected = rows[pos];
      if (scroll !== false) ensureVisible(pos);
      draw();
      ctx.onSelect(selected, 'tree');
    }

    function toggle(i, open) {
      if (!hasKids(i)) return;
      if (open === undefined) open = !expanded.has(i);
      if (open) expanded.add(i); else expanded.delete(i);
      refreshRows();
    }

    /** Show node i: open its ancestors, select it, scroll to it. */
    function reveal(i) {
      for (var a = index.parent[i]; a >= 0; a = index.parent[a]) expanded.add(a);
      selected = i;
      refreshRows();
      var pos = rows.indexOf(i);
      if (pos >= 0) {
        var h = scroller.clientHeight || 600;
        var top = pos * ROW_H;
        if (top < scroller.scrollTop || top + ROW_H > scroller.scrollTop + h) scroller.scrollTop = Math.max(0, top - Math.floor(h / 3));
      }
      draw();
    }

    scroller.addEventListener('scroll', scheduleDraw, { passive: true });
    scroller.addEventListener('click', function (ev) {
      var r = ev.target.closest ? ev.target.closest('.rd-row') : null;
      if (!r) return;
      var i = Number(r.getAttribute('data-id'));
      if (ev.target.closest('.rp-toggle') || ev.detail === 2) toggle(i);
      selectAt(rows.indexOf(i), false);
      scroller.focus({ preventScroll: true });
    });
    scroller.addEventListener('keydown', function (ev) {
      if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
      var pos = Math.max(0, rows.indexOf(selected));
      var i = rows[pos];
      var page = Math.max(1, Math.floor((scroller.clientHeight || 600) / ROW_H) - 1);
      var handled = true;
      switch (ev.key) {
        case 'ArrowDown': selectAt(pos + 1); break;
        case 'ArrowUp': selectAt(pos - 1); break;
        case 'PageDown': selectAt(pos + page); break;
        case 'PageUp': selectAt(pos - page); break;
        case 'Home': selectAt(0); break;
        case 'End': selectAt(rows.length - 1); break;
        case 'ArrowRight':
          if (hasKids(i)) { if (!expanded.has(i)) toggle(i, true); else selectAt(pos + 1); }
          break;
        case 'ArrowLeft':
          if (hasKids(i) && expanded.has(i)) toggle(i, false);
          else if (index.parent[i] >= 0) selectAt(rows.indexOf(index.parent[i]));
          break;
        case 'Enter':
        case ' ':
          toggle(i);
          break;
        default:
          handled = false;
      }
      if (handled) ev.preventDefault();
    });
    if (global.ResizeObserver) new global.ResizeObserver(scheduleDraw).observe(scroller);

    // Open the path of the largest changes; when nothing changed much, the
    // hot path (by the mean share), as the report opens its tree.
    expanded.add(0);
    var ids = D.changePath(diff, OPEN_FLOOR * ctx.scale.neutral).map(function (n) { return M.idOf(index, n); });
    if (ids.length < 2) ids = M.hotPath(index, 'both_share', HOT_FLOOR);
    for (var p = 0; p < ids.length - 1; p++) expanded.add(ids[p]);
    selected = ids[ids.length - 1] >= 0 ? ids[ids.length - 1] : 0;
    refreshRows();

    return {
      element: scroller,
      reveal: reveal,
      draw: draw,
      rowCount: function () { return rows.length; },
      selectedId: function () { return selected; },
      focus: function () { scroller.focus({ preventScroll: true }); }
    };
  }

  // ------------------------------------------------------------ functions

  function createFunctions(host, before, after, diff, opts, scale) {
    var all = D.diffFunctions(before, after, opts);
    var shown = all.slice(0, MAX_FUNCTIONS);
    var time = diff.basis === 'time';
    host.appendChild(el('p', { className: 'rp-table-note', text:
      all.length + ' functions with self time' + (shown.length < all.length ? ', the ' + shown.length + ' that changed most shown' : '') +
      '. Self time: time with the function as the innermost frame, ' + (time ? 'per request' : 'as a share of each side\'s total') +
      '; largest change first.' }));
    var tbody = el('tbody');
    shown.forEach(function (r) {
      var bar = el('span', { className: 'rd-chg-bar ' + (r.change >= 0 ? 'up' : 'down') });
      bar.style.width = Math.min(50, 50 * Math.abs(r.change) / scale.scale).toFixed(2) + '%';
      bar.style.background = D.diffColour(r.change, scale.scale, scale.neutral);
      var where = r.kind === 'frame' ? (r.line ? r.short_file + ':' + r.line : r.short_file) : '';
      tbody.appendChild(el('tr', { className: 'rd-fn-row' + (r.kind !== 'frame' ? ' kind-' + r.kind : '') }, [
        el('td', { className: 'rp-fn', text: r.kind === 'frame' ? (r.function || r.name) : r.name }),
        el('td', { className: 'rp-where', text: where }),
        el('td', { className: 'num', text: time ? M.formatTime(r.before_s) : M.formatPercent(r.before_share) }),
        el('td', { className: 'num', text: time ? M.formatTime(r.after_s) : M.formatPercent(r.after_share) }),
        el('td', { className: 'num rd-chg-cell' }, [el('span', { className: 'rd-chg-track' }, bar), el('span', { className: 'rd-chg-text', text: D.formatChange(diff, r.change, M.formatTime) })])
      ]));
    });
    var table = el('table', { className: 'rp-top rd-functions' }, [
      el('thead', null, el('tr', null, [
        el('th', { scope: 'col', text: 'Function' }), el('th', { scope: 'col', text: 'Location' }),
        el('th', { scope: 'col', className: 'num', text: time ? 'Self before / req' : 'Self before' }),
        el('th', { scope: 'col', className: 'num', text: time ? 'Self after / req' : 'Self after' }),
        el('th', { scope: 'col', className: 'num', text: 'Change' })
      ])),
      tbody
    ]);
    host.appendChild(el('div', { className: 'rp-table-wrap' }, table));
    return { rows: all };
  }

  // ------------------------------------------------------------ details

  function renderDetails(panel, index, id, counts) {
    panel.replaceChildren();
    var n = index.nodes[id];
    if (!n) {
      panel.appendChild(el('p', { className: 'rp-muted', text: 'Select a frame to see how it changed.' }));
      return;
    }
    panel.appendChild(el('h2', { className: 'rp-detail-title', text: V.frameLabel(n) }));
    var where = V.frameWhere(n);
    if (where) panel.appendChild(el('p', { className: 'rp-where', text: where }));
    if (n.file && n.file !== n.short_file) panel.appendChild(el('p', { className: 'rp-file', text: n.file }));
    if (n.status === 'added') panel.appendChild(el('p', { className: 'rd-note', text: 'Only in the after profile.' }));
    if (n.status === 'removed') panel.appendChild(el('p', { className: 'rd-note', text: 'Only in the before profile.' }));
    function row(label, value) {
      return el('div', { className: 'rp-stat' }, [el('dt', { text: label }), el('dd', { text: value })]);
    }
    var cb = counts.before;
    var ca = counts.after;
    var perReq = cb > 1 || ca > 1 ? ' per request' : '';
    panel.appendChild(el('dl', { className: 'rp-stats' }, [
      row('change', D.formatDelta(n.delta) + ' of the time'),
      row('time change', D.formatDeltaTime(n.delta_s, M.formatTime) + perReq),
      row('before', sideText(n.before_share, n.before_s, cb)),
      row('after', sideText(n.after_share, n.after_s, ca)),
      row('self change', D.formatDelta(n.self_delta) + ', ' + D.formatDeltaTime(n.self_delta_s, M.formatTime) + perReq),
      row('self before', M.formatTime(cb > 1 ? n.before_self_s / cb : n.before_self_s) + (cb > 1 ? '/req' : '')),
      row('self after', M.formatTime(ca > 1 ? n.after_self_s / ca : n.after_self_s) + (ca > 1 ? '/req' : ''))
    ]));
  }

  // ------------------------------------------------------------ the view

  /**
   * The differential view of after against before, in host (emptied).
   * opts: labels {before, after} (text), counts {before, after} (requests
   * each side stands for: per-request times), metric ('wall_s'|'cpu_s'),
   * basis ('share'|'time'), view ('flame'|'tree'|'functions').
   * Returns {diff, index, flame, tree, switchView(id)}.
   */
  function create(host, before, after, opts) {
    opts = opts || {};
    var labels = opts.labels || { before: 'Before', after: 'After' };
    var counts = { before: (opts.counts && opts.counts.before) || 1, after: (opts.counts && opts.counts.after) || 1 };
    var metric = opts.metric === 'cpu_s' ? 'cpu_s' : 'wall_s';
    var basis = opts.basis === 'time' ? 'time' : 'share';
    var view = opts.view || 'flame';
    var widthMetric = 'both_share';
    var api = {};

    host.replaceChildren();
    host.classList.add('rd-diff');

    var summary = el('div', { className: 'rd-summary' });
    var tabs = el('div', { className: 'rp-tabs', role: 'tablist', 'aria-label': 'Differential views' });
    var VIEWS = [['flame', 'Flame graph'], ['tree', 'Call tree'], ['functions', 'Functions']];
    var tabButtons = {};
    VIEWS.forEach(function (v) {
      var b = el('button', { type: 'button', role: 'tab', id: 'rd-diff-tab-' + v[0], 'aria-controls': 'rd-diff-view-' + v[0], 'data-view': v[0], text: v[1] });
      tabButtons[v[0]] = b;
      tabs.appendChild(b);
    });
    function seg(attr, value, label, title, on) {
      var props = { type: 'button', className: 'rp-seg', 'aria-pressed': on ? 'true' : 'false', text: label, title: title };
      props['data-' + attr] = value;
      return el('button', props);
    }
    var metricGroup = el('div', { className: 'rp-segmented', role: 'group', 'aria-label': 'Compare by' }, [
      seg('metric', 'wall_s', 'Wall', 'Compare shares of wall time', metric === 'wall_s'),
      seg('metric', 'cpu_s', 'CPU', 'Compare shares of CPU time', metric === 'cpu_s')
    ]);
    var basisGroup = el('div', { className: 'rp-segmented', role: 'group', 'aria-label': 'Measure the change in' }, [
      seg('basis', 'share', 'Share', 'Change in each frame\'s share of the time (percentage points)', basis === 'share'),
      seg('basis', 'time', 'Time / req', 'Change in each frame\'s time per request', basis === 'time')
    ]);
    var widthGroup = el('div', { className: 'rp-segmented', role: 'group', 'aria-label': 'Flame graph frame width' },
      WIDTHS.map(function (w) { return seg('width', w.id, w.label, w.title, w.id === widthMetric); }));
    var legendText = el('span', { className: 'rp-muted' });
    var legend = el('div', { className: 'rd-legend' }, [
      el('span', { text: 'less time' }),
      el('span', { className: 'rd-scale', 'aria-hidden': 'true' }),
      el('span', { text: 'more time' }),
      legendText
    ]);
    var toolbar = el('div', { className: 'rp-toolbar rd-toolbar' }, [
      tabs, metricGroup, el('span', { className: 'rd-tool-label rp-muted', text: 'Change in' }), basisGroup,
      el('span', { className: 'rd-tool-label rp-muted', text: 'Width' }), widthGroup, legend
    ]);
    var panels = {};
    VIEWS.forEach(function (v) {
      panels[v[0]] = el('section', { className: 'rp-view rd-view-' + v[0], id: 'rd-diff-view-' + v[0], role: 'tabpanel', 'aria-labelledby': 'rd-diff-tab-' + v[0] });
    });
    var details = el('aside', { className: 'rp-details', 'aria-label': 'Selected frame' });
    var main = el('div', { className: 'rp-main' }, [el('div', { className: 'rp-views' }, [panels.flame, panels.tree, panels.functions]), details]);
    V.append(host, [summary, toolbar, main]);

    var flame = null;
    var tree = null;
    var functionsBuilt = false;
    var diff, index, scale;

    function buildSummary() {
      summary.replaceChildren();
      function side(label, cls, total, count) {
        var per = count > 1 ? ' · ' + M.formatTime(total / count) + ' per request' : '';
        return el('div', { className: 'rd-side ' + cls }, [
          el('span', { className: 'rd-side-tag', text: cls === 'rd-before' ? 'Before' : 'After' }),
          el('span', { className: 'rd-side-label', text: label }),
          el('span', { className: 'rp-muted', text: ' · ' + (metric === 'cpu_s' ? 'CPU ' : 'wall ') + M.formatTime(total) + per })
        ]);
      }
      V.append(summary, [
        side(labels.before, 'rd-before', diff.before.total, counts.before),
        side(labels.after, 'rd-after', diff.after.total, counts.after),
        el('p', { className: 'rd-counts rp-muted', text: diff.size + ' call paths; ' + diff.added + ' new, ' + diff.removed + ' gone; largest change ' +
          D.formatChange(diff, diff.maxChange, M.formatTime).replace(/^[+\u2212]/, '') + (basis === 'time' ? ' per request' : '') })
      ]);
    }

    var app = {
      state: { metric: widthMetric },
      onSelect: function (id, group, source) {
        renderDetails(details, index, id, counts);
        if (source !== 'flame' && flame) flame.setSelected(id);
      },
      colourFor: function (id) { return D.diffColour(index.nodes[id].change, scale.scale, scale.neutral); },
      tipRows: function (id) {
        var n = index.nodes[id];
        var rows = [el('div', { className: 'rp-tip-name', text: V.frameLabel(n) })];
        var where = V.frameWhere(n);
        if (where) rows.push(el('div', { className: 'rp-tip-where', text: where }));
        rows.push(el('div', { className: 'rp-tip-stats', text: 'change ' + D.formatDelta(n.delta) + ' · ' + D.formatDeltaTime(n.delta_s, M.formatTime) +
          (counts.before > 1 || counts.after > 1 ? '/req' : '') + (statusText(n) ? ' (' + statusText(n) + ')' : '') }));
        rows.push(el('div', { className: 'rp-tip-stats', text: 'before ' + sideText(n.before_share, n.before_s, counts.before) }));
        rows.push(el('div', { className: 'rp-tip-stats', text: 'after ' + sideText(n.after_share, n.after_s, counts.after) }));
        return rows;
      },
      announce: function (id) {
        var n = index.nodes[id];
        return V.frameLabel(n) + ', change ' + D.formatChange(diff, n.change, M.formatTime) + ', before ' + M.formatPercent(n.before_share) + ', after ' + M.formatPercent(n.after_share);
      }
    };

    function diffOptions() {
      return { metric: metric, basis: basis, counts: counts };
    }

    function build() {
      diff = D.diffProfiles(before, after, diffOptions());
      index = M.flatten(diff.root);
      scale = D.colourScale(diff);
      legendText.textContent = '· grey: unchanged · change = after − before, ' + (basis === 'time' ? 'in time per request' : 'in share of the time');
      app.index = index;
      buildSummary();
      panels.flame.replaceChildren();
      panels.tree.replaceChildren();
      panels.functions.replaceChildren();
      functionsBuilt = false;
      flame = global.ReqprofFlame.createFlame(panels.flame, app);
      tree = createDiffTree(panels.tree, { index: index, diff: diff, scale: scale, onSelect: function (id, source) { app.onSelect(id, null, source); } });
      app.onSelect(tree.selectedId(), null, 'tree');
      api.diff = diff;
      api.index = index;
      api.flame = flame;
      api.tree = tree;
    }

    function switchView(id) {
      view = id;
      VIEWS.forEach(function (v) {
        var on = v[0] === id;
        panels[v[0]].hidden = !on;
        tabButtons[v[0]].setAttribute('aria-selected', on ? 'true' : 'false');
        tabButtons[v[0]].setAttribute('tabindex', on ? '0' : '-1');
      });
      if (id === 'flame') flame.draw();
      else if (id === 'tree') tree.draw();
      else if (!functionsBuilt) {
        createFunctions(panels.functions, before, after, diff, diffOptions(), scale);
        functionsBuilt = true;
      }
    }

    tabs.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-view]') : null;
      if (b) switchView(b.getAttribute('data-view'));
    });
    tabs.addEventListener('keydown', function (ev) {
      if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
      var order = VIEWS.map(function (v) { return v[0]; });
      var i = order.indexOf(view);
      var next = order[(i + (ev.key === 'ArrowRight' ? 1 : order.length - 1)) % order.length];
      switchView(next);
      tabButtons[next].focus();
      ev.preventDefault();
    });
    metricGroup.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-metric]') : null;
      if (!b || b.getAttribute('data-metric') === metric) return;
      metric = b.getAttribute('data-metric');
      metricGroup.querySelectorAll('[data-metric]').forEach(function (x) {
        x.setAttribute('aria-pressed', x.getAttribute('data-metric') === metric ? 'true' : 'false');
      });
      build();
      switchView(view);
    });
    basisGroup.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-basis]') : null;
      if (!b || b.getAttribute('data-basis') === basis) return;
      basis = b.getAttribute('data-basis');
      basisGroup.querySelectorAll('[data-basis]').forEach(function (x) {
        x.setAttribute('aria-pressed', x.getAttribute('data-basis') === basis ? 'true' : 'false');
      });
      build();
      switchView(view);
    });
    widthGroup.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-width]') : null;
      if (!b) return;
      widthMetric = b.getAttribute('data-width');
      app.state.metric = widthMetric;
      widthGroup.querySelectorAll('[data-width]').forEach(function (x) {
        x.setAttribute('aria-pressed', x.getAttribute('data-width') === widthMetric ? 'true' : 'false');
      });
      flame.setMetric();
    });

    build();
    switchView(view);
    api.switchView = switchView;
    api.view = function () { return view; };
    return api;
  }

  global.ReqprofDiffView = { create: create, createDiffTree: createDiffTree, ROW_H: ROW_H };
})(globalThis);
