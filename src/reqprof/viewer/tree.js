/*
 * reqprof viewer: the call tree.
 *
 * A virtual list: the display tree (ReqprofModel.buildDisplayTree: profile
 * nodes with library frames folded into groups) is flattened to the rows its
 * expanded set shows, and only the rows in the viewport exist in the DOM,
 * so a 50,000-node profile fully expanded scrolls as fast as a small one.
 *
 * State kept here: the expanded display keys, the selected key, the library
 * groups the user opened. Display keys ('n' + node id, 'g' + head id) stay
 * valid across rebuilds (grouping toggled, search changed).
 *
 * Keyboard (WAI-ARIA tree pattern): Up/Down move, Right expands or enters,
 * Left collapses or goes to the parent, Home/End, PageUp/PageDown,
 * Enter/Space toggle, "o" shows or folds a library group's frames.
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;
  var V = global.ReqprofViews;
  var el = V.el;

  var ROW_H = 22;
  var OVERSCAN = 8;
  // The hot path opened on load stops at frames under this share of the total.
  var HOT_MIN_SHARE = 0.02;

  function indentPx(depth) {
    return Math.min(depth, 24) * 14 + Math.max(0, depth - 24) * 4;
  }

  function createTree(host, app) {
    var index = app.index;
    var head = el('div', { className: 'rp-tree-head', 'aria-hidden': 'true' }, [
      el('span', { className: 'c-wall', text: 'Wall' }),
      el('span', { className: 'c-pct', text: '%' }),
      el('span', { className: 'c-cpu', text: 'CPU' }),
      el('span', { className: 'c-self', text: 'Self' }),
      el('span', { className: 'c-name', text: 'Frame' })
    ]);
    var scroller = el('div', { className: 'rp-tree', role: 'tree', tabindex: '0', 'aria-label': 'Call tree', 'aria-multiselectable': 'false' });
    var sizer = el('div', { className: 'rp-tree-sizer' });
    var empty = el('p', { className: 'rp-empty', hidden: true, text: 'No frame matches the search.' });
    scroller.appendChild(empty);
    scroller.appendChild(sizer);
    host.appendChild(head);
    host.appendChild(scroller);

    var display = null;
    var rows = [];
    var expanded = new Set();
    var savedExpanded = null;
    var openGroups = new Set();
    var selectedKey = null;
    var selectedId = 0;
    var hotKeys = new Set();
    var search = null;
    var drawQueued = false;

    function rebuild() {
      display = M.buildDisplayTree(index, {
        groupLibrary: app.state.groupLibrary,
        openGroups: openGroups,
        filter: search ? search.keep : null,
        match: search ? search.match : null
      });
      computeHotKeys();
    }

    function kids(d) { return display.children(d); }

    /** Display keys of d and its display ancestors. */
    function lineage(d) {
      var out = [];
      for (var x = d; x; x = x.parent) out.push(x.key);
      return out;
    }

    function hotLeaf() {
      var path = M.hotPath(index, 'wall_s', HOT_MIN_SHARE);
      return display.locate(path[path.length - 1]);
    }

    function computeHotKeys() {
      var leaf = search ? null : hotLeaf();
      hotKeys = new Set(leaf ? lineage(leaf) : []);
    }

    function expandHotPath() {
      var leaf = hotLeaf();
      if (!leaf) return;
      for (var x = leaf.parent; x; x = x.parent) expanded.add(x.key);
      selectedKey = leaf.key;
      selectedId = leaf.id;
    }

    function refreshRows() {
      var none = !!search && !search.count;
      rows = none ? [] : M.visibleRows(display, expanded);
      empty.hidden = !none;
      sizer.style.height = rows.length * ROW_H + 'px';
      draw();
    }

    function rowIndexOf(key) {
      for (var i = 0; i < rows.length; i++) if (rows[i].key === key) return i;
      return -1;
    }

    function scheduleDraw() {
      if (drawQueued) return;
      drawQueued = true;
      global.requestAnimationFrame(function () { drawQueued = false; draw(); });
    }

    function metricTotal() {
      return index.nodes[0][app.state.metric] || 0;
    }

    function renderRow(d, i) {
      var isGroup = d.type === 'group';
      var node = index.nodes[d.id];
      var hasKids = kids(d).length > 0;
      var isOpen = hasKids && expanded.has(d.key);
      var cls = 'rp-row';
      if (isGroup) cls += ' is-group';
      else {
        var cat = M.nodeCategory(node);
        if (cat === 'pseudo') cls += ' kind-' + node.kind;
        else if (cat !== 'app') cls += ' cat-' + cat;
      }
      if (hotKeys.has(d.key)) cls += ' is-hot';
      if (d.key === selectedKey) cls += ' is-selected';
      if (search && !isGroup && search.match[d.id]) cls += ' is-match';
      if (search && isGroup) {
        for (var m = 0; m < d.members.length; m++) if (search.match[d.members[m]]) { cls += ' is-match'; break; }
      }
      var metric = app.state.metric;
      var share = M.percent(d[metric], metricTotal());
      var row = el('div', {
        className: cls, role: 'treeitem', id: 'rp-row-' + d.key, 'data-key': d.key,
        'aria-level': String(d.depth + 1), 'aria-selected': d.key === selectedKey ? 'true' : 'false',
        'aria-expanded': hasKids ? (isOpen ? 'true' : 'false') : undefined
      });
      row.style.top = i * ROW_H + 'px';
      var bar = el('span', { className: 'rp-bar' });
      bar.style.width = Math.min(100, share * 100).toFixed(2) + '%';
      V.append(row, [
        el('span', { className: 'c-wall', text: M.formatTime(d.wall_s) }),
        el('span', { className: 'c-pct' }, [bar, el('span', { className: 'rp-pct-text', text: M.formatPercent(share) })]),
        el('span', { className: 'c-cpu', text: M.formatTime(d.cpu_s) }),
        el('span', { className: 'c-self', text: d.self_wall_s ? M.formatTime(d.self_wall_s) : '' })
      ]);
      var name = el('span', { className: 'c-name' });
      name.style.paddingLeft = indentPx(d.depth) + 'px';
      name.appendChild(el('span', { className: 'rp-toggle', 'aria-hidden': 'true', text: hasKids ? (isOpen ? '▾' : '▸') : '' }));
      var q = search ? search.query : '';
      if (isGroup) {
        name.appendChild(el('span', { className: 'rp-fn' }, V.highlighted(M.groupLabel(d), q)));
        var hottest = M.hottestMember(index, d);
        if (hottest >= 0) {
          name.appendChild(el('span', { className: 'rp-where', title: 'The frame of this group with the most self time' },
            V.highlighted('self time in ' + V.frameLabel(index.nodes[hottest]), q)));
        }
        name.appendChild(el('button', { type: 'button', className: 'rp-open-group', tabindex: '-1', 'data-action': 'open-group', title: 'Show these frames (o)', text: 'show frames' }));
      } else {
        var label = V.frameLabel(node);
        var fn = el('span', { className: 'rp-fn', title: V.KIND_TITLES[node.kind] }, V.highlighted(label, q));
        name.appendChild(fn);
        var where = V.frameWhere(node);
        if (where) name.appendChild(el('span', { className: 'rp-where' }, V.highlighted(where, q)));
        if (node.kind === 'frame' && node.self_wall_s > 0) {
          var hl = M.hotLines(node);
          if (hl.length) {
            var lineShare = M.percent(hl[0][1], node.self_wall_s);
            name.appendChild(el('span', {
              className: 'rp-hotline', title: 'Hot line: where this frame\'s own time was spent',
              text: 'L' + hl[0][0] + (hl.length > 1 ? ' ' + M.formatPercent(lineShare) : '')
            }));
          }
        }
        if (app.state.groupLibrary && openGroups.has(d.id)) {
          name.appendChild(el('button', { type: 'button', className: 'rp-open-group', tabindex: '-1', 'data-action': 'close-group', title: 'Fold these library frames again (o)', text: 'fold library frames' }));
        }
      }
      row.appendChild(name);
      return row;
    }

    function draw() {
      var top = scroller.scrollTop;
      var h = scroller.clientHeight || 600;
      var first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
      var last = Math.min(rows.length, Math.ceil((top + h) / ROW_H) + OVERSCAN);
      var frag = document.createDocumentFragment();
      for (var i = first; i < last; i++) frag.appendChild(renderRow(rows[i], i));
      sizer.replaceChildren(frag);
      var selIdx = rowIndexOf(selectedKey);
      if (selIdx >= first && selIdx < last) scroller.setAttribute('aria-activedescendant', 'rp-row-' + selectedKey);
      else scroller.removeAttribute('aria-activedescendant');
    }

    function ensureVisible(i) {
      var top = i * ROW_H;
      var h = scroller.clientHeight || 600;
      if (top < scroller.scrollTop) scroller.scrollTop = top;
      else if (top + ROW_H > scroller.scrollTop + h) scroller.scrollTop = top + ROW_H - h;
    }

    function notifySelect() {
      var d = display.byKey.get(selectedKey);
      if (!d) return;
      app.onSelect(d.id, d.type === 'group' ? d : null, 'tree');
    }

    function selectRow(i, scroll) {
      if (!rows.length) return;
      i = Math.max(0, Math.min(rows.length - 1, i));
      selectedKey = rows[i].key;
      selectedId = rows[i].id;
      if (scroll !== false) ensureVisible(i);
      draw();
      notifySelect();
    }

    function toggle(key, open) {
      var d = display.byKey.get(key);
      if (!d || !kids(d).length) return;
      var isOpen = expanded.has(key);
      if (open === undefined) open = !isOpen;
      if (open) expanded.add(key); else expanded.delete(key);
      refreshRows();
    }

    /** The head id of the opened library region a display node lies in, or -1. */
    function openRegionHead(d) {
      for (var x = d; x; x = x.parent) {
        if (x.type !== 'node' || !index.lib[x.id]) return -1;
        if (openGroups.has(x.id)) return x.id;
      }
      return -1;
    }

    function setGroupOpen(headId, open) {
      if (open) openGroups.add(headId); else openGroups.delete(headId);
      expanded.add('n' + headId);
      expanded.add('g' + headId);
      rebuild();
      reveal(headId, { openGroup: false });
    }

    function toggleGroupAt(key) {
      var d = display.byKey.get(key);
      if (!d) return;
      if (d.type === 'group') { setGroupOpen(d.id, true); return; }
      var h = openRegionHead(d);
      if (h >= 0) setGroupOpen(h, false);
    }

    scroller.addEventListener('scroll', scheduleDraw, { passive: true });

    scroller.addEventListener('click', function (ev) {
      var rowEl = ev.target.closest ? ev.target.closest('.rp-row') : null;
      if (!rowEl) return;
      var key = rowEl.getAttribute('data-key');
      var action = ev.target.closest('[data-action]');
      if (action) {
        var a = action.getAttribute('data-action');
        if (a === 'open-group') setGroupOpen(display.byKey.get(key).id, true);
        else if (a === 'close-group') toggleGroupAt(key);
        scroller.focus();
        return;
      }
      // A click on the arrow toggles; so does a double click anywhere on the
      // row (rows are redrawn on each click, so no dblclick event is relied on).
      if (ev.target.closest('.rp-toggle') || ev.detail === 2) toggle(key);
      selectRow(rowIndexOf(key), false);
      scroller.focus({ preventScroll: true });
    });

    scroller.addEventListener('keydown', function (ev) {
      if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
      var i = rowIndexOf(selectedKey);
      if (i < 0) i = 0;
      var d = rows[i];
      var page = Math.max(1, Math.floor((scroller.clientHeight || 600) / ROW_H) - 1);
      var handled = true;
      switch (ev.key) {
        case 'ArrowDown': selectRow(i + 1); break;
        case 'ArrowUp': selectRow(i - 1); break;
        case 'PageDown': selectRow(i + page); break;
        case 'PageUp': selectRow(i - page); break;
        case 'Home': selectRow(0); break;
        case 'End': selectRow(rows.length - 1); break;
        case 'ArrowRight':
          if (d && kids(d).length) {
            if (!expanded.has(d.key)) toggle(d.key, true);
            else selectRow(i + 1);
          }
          break;
        case 'ArrowLeft':
          if (d && kids(d).length && expanded.has(d.key)) toggle(d.key, false);
          else if (d && d.parent) selectRow(rowIndexOf(d.parent.key));
          break;
        case 'Enter':
        case ' ':
          if (d) toggle(d.key);
          break;
        case 'o':
          if (d) toggleGroupAt(d.key);
          break;
        case '*':
          expandAll();
          break;
        default:
          handled = false;
      }
      if (handled) ev.preventDefault();
    });

    if (global.ResizeObserver) new global.ResizeObserver(scheduleDraw).observe(scroller);

    // ----------------------------------------------------------- API

    /**
     * Show profile node id: expand its ancestors, select it, scroll to it.
     * opts.openGroup (default true): when the node is folded into a library
     * group, open the group so the frame itself shows; else select the group.
     * opts.focus: move keyboard focus to the tree.
     */
    function reveal(id, opts) {
      opts = opts || {};
      if (search && !search.keep[id]) app.clearSearch();
      var d = display.locate(id);
      if (d && d.type === 'group' && opts.openGroup !== false) {
        openGroups.add(d.id);
        rebuild();
        d = display.locate(id);
      }
      if (!d) d = display.root;
      for (var x = d.parent; x; x = x.parent) expanded.add(x.key);
      selectedKey = d.key;
      selectedId = d.id;
      refreshRows();
      var i = rowIndexOf(selectedKey);
      if (i >= 0) {
        // Put the row in the upper third of the view.
        var h = scroller.clientHeight || 600;
        var top = i * ROW_H;
        if (top < scroller.scrollTop || top + ROW_H > scroller.scrollTop + h) scroller.scrollTop = Math.max(0, top - Math.floor(h / 3));
      }
      draw();
      notifySelect();
      if (opts.focus) scroller.focus({ preventScroll: true });
    }

    // A search opens the paths to its matches, up to this many rows.
    var SEARCH_EXPAND_LIMIT = 5000;

    function setSearch(s) {
      if (s && !search) savedExpanded = new Set(expanded);
      search = s;
      rebuild();
      if (search) {
        expanded = new Set();
        var budget = SEARCH_EXPAND_LIMIT;
        var firstMatch = null;
        var stack = [display.root];
        while (stack.length && budget > 0) {
          var d = stack.pop();
          budget--;
          if (!firstMatch && d.type === 'node' && search.match[d.id]) firstMatch = d;
          var ks = kids(d);
          var onPath = [];
          for (var c = 0; c < ks.length; c++) if (search.onPath[ks[c].id]) onPath.push(ks[c]);
          if (onPath.length) expanded.add(d.key);
          for (var o = onPath.length - 1; o >= 0; o--) stack.push(onPath[o]);
        }
        if (firstMatch) { selectedKey = firstMatch.key; selectedId = firstMatch.id; }
        refreshRows();
        scroller.scrollTop = 0;
        var fi = rowIndexOf(selectedKey);
        if (fi >= 0) ensureVisible(fi);
        draw();
        if (firstMatch) notifySelect();
        return;
      }
      if (savedExpanded) expanded = savedExpanded;
      savedExpanded = null;
      reveal(selectedId, { openGroup: false });
    }

    function setGrouping() {
      rebuild();
      reveal(selectedId, { openGroup: false });
    }

    // Expand-all opens at most this many rows (the view stays fast; a
    // bigger profile is better read by search or the flame graph).
    var EXPAND_ALL_LIMIT = 20000;

    /** Expand every row (up to EXPAND_ALL_LIMIT); true when all fit. */
    function expandAll() {
      var budget = EXPAND_ALL_LIMIT;
      var stack = [display.root];
      while (stack.length && budget > 0) {
        var d = stack.pop();
        budget--;
        var ks = kids(d);
        if (ks.length) expanded.add(d.key);
        for (var c = ks.length - 1; c >= 0; c--) stack.push(ks[c]);
      }
      refreshRows();
      var i = rowIndexOf(selectedKey);
      if (i >= 0) ensureVisible(i);
      draw();
      return stack.length === 0;
    }

    /** Collapse every row but the root's, then show the selection. */
    function collapseAll() {
      expanded = new Set([display.root.key]);
      refreshRows();
      draw();
    }

    rebuild();
    expandHotPath();
    refreshRows();

    return {
      element: scroller,
      reveal: reveal,
      setSearch: setSearch,
      setGrouping: setGrouping,
      expandAll: expandAll,
      collapseAll: collapseAll,
      redraw: function () { scheduleDraw(); },
      drawNow: draw,
      focus: function () { scroller.focus({ preventScroll: true }); },
      selectedId: function () { return selectedId; },
      selectedGroup: function () { var d = display.byKey.get(selectedKey); return d && d.type === 'group' ? d : null; },
      rowCount: function () { return rows.length; },
      start: function () {
        var i = rowIndexOf(selectedKey);
        if (i >= 0) ensureVisible(i);
        draw();
        notifySelect();
      }
    };
  }

  global.ReqprofTree = { createTree: createTree, ROW_H: ROW_H };
})(globalThis);
