/*
 * reqprof viewer: the flame graph, an icicle (root on top) on a <canvas>.
 *
 * Width is the node's wall (or CPU) time: ReqprofModel.flameLayout gives
 * every node its [x0, x0 + w) as a fraction of the root, once per metric.
 * Zooming only changes the window mapped to the canvas width ([x0, x0 + w)
 * of the zoomed node); ancestors of the zoomed node then span the whole
 * width. The canvas is the size of the viewport and sticks to the top of
 * a scroll box as tall as the graph: only the visible depths are drawn,
 * and at each depth only the rects inside the window (binary search), so a
 * 50,000-node profile redraws in a few milliseconds.
 *
 * Text goes to the canvas with fillText and to the tooltip as textContent.
 *
 * "Group library frames" folds library regions into one rect each, as in
 * the call tree (flameLayout's grouped layout): depths, parents and the
 * zoom path are then the layout's, not the profile's.
 *
 * Mouse: hover for a tooltip, click to zoom (click an ancestor to zoom
 * out). Keyboard (when focused): arrows move between frames, Enter zooms,
 * Escape resets.
 *
 * Other trees (the dashboard's differential one) may set on `app`:
 * colourFor(id) (a fill), tipRows(id) (the tooltip's elements) and
 * announce(id) (what a screen reader hears when a frame is selected).
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;
  var V = global.ReqprofViews;
  var el = V.el;

  var ROW = 20;
  var FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

  function createFlame(host, app) {
    var index = app.index;
    var layouts = {};
    var zoom = 0;
    var hover = -1;
    var selected = -1;
    var search = null;
    var colours = new Array(index.size);
    var charW = 0;
    var drawQueued = false;

    var crumbs = el('nav', { className: 'rp-crumbs', 'aria-label': 'Zoom path' });
    var reset = el('button', { type: 'button', className: 'rp-reset', text: 'Reset zoom', title: 'Show the whole profile (Esc)' });
    var legend = el('div', { className: 'rp-legend', 'aria-hidden': 'true' });
    [['app code', { kind: 'frame', file: '/app/x.py', short_file: 'app/x.py' }],
     ['library', { kind: 'frame', file: '/venv/lib/python3/site-packages/x.py', short_file: 'x.py' }],
     ['[await]', { kind: 'await' }], ['[gc]', { kind: 'gc' }], ['[thread]', { kind: 'thread' }],
     ['[unsampled]', { kind: 'unsampled' }], ['[after response]', { kind: 'after-response' }],
     ['[out-of-context]', { kind: 'out-of-context' }], ['[truncated]', { kind: 'truncated' }]
    ].forEach(function (item) {
      var sw = el('span', { className: 'rp-swatch' });
      sw.style.background = M.colourFor(item[1]);
      legend.appendChild(el('span', { className: 'rp-legend-item' }, [sw, item[0]]));
    });
    var bar = el('div', { className: 'rp-flame-bar' }, [reset, crumbs, legend]);
    var canvas = el('canvas', { className: 'rp-flame-canvas' });
    var spacer = el('div', { className: 'rp-flame-spacer' });
    var scroll = el('div', {
      className: 'rp-flame-scroll', tabindex: '0', role: 'application',
      'aria-label': 'Flame graph. Arrow keys move between frames, Enter zooms, Escape resets the zoom.'
    }, [canvas, spacer]);
    var tip = el('div', { className: 'rp-tooltip', role: 'tooltip', hidden: true });
    var live = el('p', { className: 'rp-sr-only', 'aria-live': 'polite' });
    host.appendChild(bar);
    host.appendChild(scroll);
    host.appendChild(tip);
    host.appendChild(live);

    function layout() {
      var m = app.state.metric;
      var grouped = !!app.state.groupLibrary;
      var key = m + (grouped ? ':grouped' : '');
      if (!layouts[key]) layouts[key] = M.flameLayout(index, m, grouped);
      return layouts[key];
    }

    /** What a rect is called: the frame, or its library group. */
    function labelOf(L, id) {
      var g = L.groups.get(id);
      return g ? M.groupLabel(g) : V.frameLabel(index.nodes[id]);
    }

    function colour(id) {
      var c = colours[id];
      if (!c) { c = app.colourFor ? app.colourFor(id) : M.colourFor(index.nodes[id]); colours[id] = c; }
      return c;
    }

    function windowOf(L) {
      var w = L.w[zoom];
      if (!(w > 0)) { zoom = 0; w = L.w[0] || 1; }
      return { x0: L.x0[zoom], w: w };
    }

    function cssVar(name, fallback) {
      var v = global.getComputedStyle(scroll).getPropertyValue(name);
      return v && v.trim() ? v.trim() : fallback;
    }

    function fitText(ctx, text, width) {
      if (!charW) charW = ctx.measureText('abcdefghijklmnopqrstuvwxyzABCDEFGHIJ._()').width / 40 || 7;
      var max = Math.floor((width - 6) / charW);
      if (max < 3) return '';
      if (text.length <= max) return text;
      return text.slice(0, max - 1) + '…';
    }

    function draw() {
      var L = layout();
      var W = scroll.clientWidth;
      var H = scroll.clientHeight;
      if (!W || !H) return;
      var total = (L.maxDepth + 1) * ROW;
      spacer.style.height = Math.max(0, total - H) + 'px';
      var dpr = global.devicePixelRatio || 1;
      if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
        canvas.width = Math.round(W * dpr);
        canvas.height = Math.round(H * dpr);
        canvas.style.width = W + 'px';
        canvas.style.height = H + 'px';
      }
      var ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.fillStyle = cssVar('--rp-bg', '#fff');
      ctx.fillRect(0, 0, W, H);
      ctx.font = FONT;
      ctx.textBaseline = 'middle';
      var win = windowOf(L);
      var scale = W / win.w;
      var top = scroll.scrollTop;
      var d0 = Math.max(0, Math.floor(top / ROW));
      var d1 = Math.min(L.maxDepth, Math.ceil((top + H) / ROW));
      var textColour = cssVar('--rp-flame-text', '#111');
      var fadedText = cssVar('--rp-flame-faded-text', '#777');
      var outlines = [];
      for (var d = d0; d <= d1; d++) {
        var ids = L.byDepth[d];
        if (!ids || !ids.length) continue;
        var y = d * ROW - top;
        for (var k = M.firstEndingAfter(L, ids, win.x0); k < ids.length; k++) {
          var id = ids[k];
          var x0 = L.x0[id];
          if (x0 >= win.x0 + win.w) break;
          var px = (x0 - win.x0) * scale;
          var pw = L.w[id] * scale;
          if (px < 0) { pw += px; px = 0; }
          if (px + pw > W) pw = W - px;
          if (pw < 0.4) continue;
          var faded = search && !search.match[id];
          ctx.globalAlpha = faded ? 0.28 : 1;
          ctx.fillStyle = colour(id);
          ctx.fillRect(px, y, pw > 2 ? pw - 1 : pw, ROW - 1);
          if (pw > 24) {
            var label = fitText(ctx, labelOf(L, id), pw);
            if (label) {
              ctx.globalAlpha = 1;
              ctx.fillStyle = faded ? fadedText : textColour;
              ctx.fillText(label, px + 3, y + ROW / 2);
            }
          }
          if (search && !faded) outlines.push([px, y, pw, 'match']);
          if (id === selected) outlines.push([px, y, pw, 'selected']);
          if (id === hover) outlines.push([px, y, pw, 'hover']);
        }
      }
      ctx.globalAlpha = 1;
      for (var o = 0; o < outlines.length; o++) {
        var r = outlines[o];
        ctx.lineWidth = r[3] === 'match' ? 1 : 2;
        ctx.strokeStyle = r[3] === 'selected' ? cssVar('--rp-accent', '#1558d6') : r[3] === 'hover' ? textColour : cssVar('--rp-match', '#d97706');
        ctx.strokeRect(r[0] + 1, r[1] + 1, Math.max(1, r[2] - 3), ROW - 3);
      }
    }

    function scheduleDraw() {
      if (drawQueued) return;
      drawQueued = true;
      global.requestAnimationFrame(function () { drawQueued = false; draw(); });
    }

    function renderCrumbs() {
      var L = layout();
      var path = M.flameAncestors(L, zoom);
      crumbs.replaceChildren();
      var shown = path;
      var skipped = false;
      if (path.length > 8) { shown = path.slice(0, 2).concat(path.slice(-5)); skipped = true; }
      shown.forEach(function (id, i) {
        if (i > 0) crumbs.appendChild(el('span', { className: 'rp-crumb-sep', 'aria-hidden': 'true', text: '›' }));
        if (skipped && i === 2) {
          crumbs.appendChild(el('span', { className: 'rp-crumb-more', text: '…' }));
          crumbs.appendChild(el('span', { className: 'rp-crumb-sep', 'aria-hidden': 'true', text: '›' }));
        }
        var b = el('button', { type: 'button', className: 'rp-crumb', 'data-id': String(id), text: labelOf(L, id) });
        if (id === zoom) b.setAttribute('aria-current', 'true');
        crumbs.appendChild(b);
      });
      reset.disabled = zoom === 0;
    }

    function zoomTo(id) {
      var L = layout();
      zoom = L.w[id] > 0 ? id : 0;
      renderCrumbs();
      // Keep the zoomed node's row in view.
      var y = L.depth[zoom] * ROW;
      if (y < scroll.scrollTop || y + ROW > scroll.scrollTop + scroll.clientHeight) scroll.scrollTop = Math.max(0, y - ROW * 2);
      scheduleDraw();
      app.onZoom && app.onZoom(zoom);
    }

    function select(id, announce) {
      selected = id;
      if (id >= 0) {
        var L = layout();
        app.onSelect(id, null, 'flame');
        if (announce) live.textContent = labelOf(L, id) + ', ' + M.formatTime(index.nodes[id][app.state.metric]);
        if (announce && app.announce) live.textContent = app.announce(id);
        var y = Math.max(0, L.depth[id]) * ROW;
        if (y < scroll.scrollTop) scroll.scrollTop = y;
        else if (y + ROW > scroll.scrollTop + scroll.clientHeight) scroll.scrollTop = y + ROW - scroll.clientHeight;
      }
      scheduleDraw();
    }

    function hitAt(clientX, clientY) {
      var rect = canvas.getBoundingClientRect();
      var x = clientX - rect.left;
      var y = clientY - rect.top + scroll.scrollTop;
      if (x < 0 || x > rect.width) return -1;
      var d = Math.floor(y / ROW);
      var L = layout();
      if (d < 0 || d > L.maxDepth) return -1;
      var win = windowOf(L);
      return M.flameHit(L, d, win.x0 + x * win.w / rect.width);
    }

    function showTip(id, clientX, clientY) {
      if (id < 0) { tip.hidden = true; return; }
      var n = index.nodes[id];
      var total = index.nodes[0].wall_s || 0;
      var zoomTotal = index.nodes[zoom].wall_s || 0;
      var L = layout();
      var rows = [
        el('div', { className: 'rp-tip-name', text: labelOf(L, id) })
      ];
      var where = V.frameWhere(n);
      if (where) rows.push(el('div', { className: 'rp-tip-where', text: where }));
      var stats = 'wall ' + M.formatTime(n.wall_s) + ' (' + M.formatPercent(M.percent(n.wall_s, total)) + ')' +
        ' · CPU ' + M.formatTime(n.cpu_s) + ' · self ' + M.formatTime(n.self_wall_s) + ' · ' + (n.samples || 0) + ' samples';
      rows.push(el('div', { className: 'rp-tip-stats', text: stats }));
      var inZoom = id >= zoom && id < index.end[zoom];
      if (zoom !== 0 && inZoom && id !== zoom) rows.push(el('div', { className: 'rp-tip-stats', text: M.formatPercent(M.percent(n.wall_s, zoomTotal)) + ' of the zoomed frame' }));
      var hl = M.hotLines(n);
      if (hl.length && n.kind === 'frame') rows.push(el('div', { className: 'rp-tip-stats', text: 'hot line ' + hl[0][0] + ': ' + M.formatTime(hl[0][1]) }));
      if (V.KIND_TITLES[n.kind]) rows.push(el('div', { className: 'rp-tip-note', text: V.KIND_TITLES[n.kind] }));
      if (app.tipRows) rows = app.tipRows(id);
      tip.replaceChildren.apply(tip, rows);
      tip.hidden = false;
      var hostRect = host.getBoundingClientRect();
      var x = clientX - hostRect.left + 14;
      var y = clientY - hostRect.top + 16;
      var tw = tip.offsetWidth;
      var th = tip.offsetHeight;
      if (x + tw > hostRect.width - 4) x = Math.max(4, clientX - hostRect.left - tw - 10);
      if (y + th > hostRect.height - 4) y = Math.max(4, clientY - hostRect.top - th - 10);
      tip.style.left = x + 'px';
      tip.style.top = y + 'px';
    }

    scroll.addEventListener('scroll', function () { tip.hidden = true; scheduleDraw(); }, { passive: true });
    scroll.addEventListener('mousemove', function (ev) {
      var id = hitAt(ev.clientX, ev.clientY);
      if (id !== hover) { hover = id; scheduleDraw(); }
      scroll.style.cursor = id >= 0 ? 'pointer' : 'default';
      showTip(id, ev.clientX, ev.clientY);
    });
    scroll.addEventListener('mouseleave', function () {
      hover = -1;
      tip.hidden = true;
      scheduleDraw();
    });
    scroll.addEventListener('click', function (ev) {
      var id = hitAt(ev.clientX, ev.clientY);
      if (id < 0) return;
      select(id, false);
      if (id !== zoom) zoomTo(id);
      scroll.focus({ preventScroll: true });
    });
    crumbs.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-id]') : null;
      if (b) { var id = Number(b.getAttribute('data-id')); select(id, false); zoomTo(id); }
    });
    reset.addEventListener('click', function () { zoomTo(0); });

    function neighbour(id, step) {
      var L = layout();
      var ids = L.byDepth[L.depth[id]];
      var k = M.firstEndingAfter(L, ids, L.x0[id]);
      while (k < ids.length && ids[k] !== id) k++;
      var j = k + step;
      if (j < 0 || j >= ids.length) return -1;
      var win = windowOf(L);
      var n = ids[j];
      if (L.x0[n] >= win.x0 + win.w || L.x0[n] + L.w[n] <= win.x0) return -1;
      return n;
    }

    scroll.addEventListener('keydown', function (ev) {
      if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
      var L = layout();
      var cur = selected >= 0 && L.w[selected] > 0 ? selected : zoom;
      var next = -1;
      var handled = true;
      switch (ev.key) {
        case 'ArrowUp':
          next = L.parent[cur];
          break;
        case 'ArrowDown':
          var best = -1;
          M.flameChildren(L, cur).forEach(function (c) { if (L.w[c] > 0 && (best < 0 || L.w[c] > L.w[best])) best = c; });
          next = best;
          break;
        case 'ArrowLeft': next = neighbour(cur, -1); break;
        case 'ArrowRight': next = neighbour(cur, 1); break;
        case 'Enter': zoomTo(cur); break;
        default: handled = false;
      }
      if (next >= 0) select(next, true);
      else if (handled && selected < 0) select(cur, true);
      if (handled) ev.preventDefault();
    });

    if (global.ResizeObserver) new global.ResizeObserver(scheduleDraw).observe(scroll);

    renderCrumbs();

    return {
      element: scroll,
      draw: draw,
      redraw: scheduleDraw,
      zoomTo: zoomTo,
      zoomed: function () { return zoom; },
      reset: function () { zoomTo(0); },
      setSelected: function (id) { selected = id; scheduleDraw(); },
      setSearch: function (s) { search = s; scheduleDraw(); },
      setMetric: function () { windowOf(layout()); renderCrumbs(); scheduleDraw(); },
      setGrouping: function () {
        var L = layout();
        if (!(L.w[zoom] > 0)) zoom = 0;     // the zoomed frame is folded now
        if (selected >= 0 && !(L.w[selected] > 0)) selected = -1;
        windowOf(L);
        renderCrumbs();
        scheduleDraw();
      },
      focus: function () { scroll.focus({ preventScroll: true }); }
    };
  }

  global.ReqprofFlame = { createFlame: createFlame, ROW: ROW };
})(globalThis);
