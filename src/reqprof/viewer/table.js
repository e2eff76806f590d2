/*
 * reqprof viewer: top functions by self time.
 *
 * One row per function (kind + qualname + file + first line, aggregated by
 * ReqprofModel.topFunctions over the whole tree), sortable by any column,
 * filtered by the search box. Clicking a row (or Enter on it) shows the
 * function in the call tree; clicking it again goes to its next occurrence,
 * heaviest first. Up/Down move between rows.
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;
  var V = global.ReqprofViews;
  var el = V.el;

  var MAX_ROWS = 1000;

  var COLUMNS = [
    { key: 'function', label: 'Function', numeric: false },
    { key: 'short_file', label: 'Location', numeric: false },
    { key: 'self_wall_s', label: 'Self wall', numeric: true },
    { key: 'self_pct', label: '% wall', numeric: true },
    { key: 'self_cpu_s', label: 'Self CPU', numeric: true },
    { key: 'total_wall_s', label: 'Total wall', numeric: true },
    { key: 'count', label: 'Frames', numeric: true }
  ];

  function createTable(host, app) {
    var index = app.index;
    var allRows = null;
    var sortKey = 'self_wall_s';
    var descending = true;
    var search = null;
    var cycle = new Map();

    var note = el('p', { className: 'rp-table-note' });
    var table = el('table', { className: 'rp-top' });
    var thead = el('thead');
    var tbody = el('tbody');
    var headRow = el('tr');
    COLUMNS.forEach(function (c) {
      var btn = el('button', { type: 'button', className: 'rp-sort', 'data-col': c.key, text: c.label });
      headRow.appendChild(el('th', { scope: 'col', className: c.numeric ? 'num' : '', 'data-col': c.key }, btn));
    });
    thead.appendChild(headRow);
    table.appendChild(thead);
    table.appendChild(tbody);
    var wrap = el('div', { className: 'rp-table-wrap' }, table);
    host.appendChild(note);
    host.appendChild(wrap);

    function ensureRows() {
      if (allRows) return;
      allRows = M.topFunctions(index);
      var total = index.nodes[0].wall_s || 0;
      allRows.forEach(function (r) { r.self_pct = M.percent(r.self_wall_s, total); });
    }

    function rowMatches(r) {
      if (!search) return true;
      for (var i = 0; i < r.ids.length; i++) if (search.match[r.ids[i]]) return true;
      return false;
    }

    function render() {
      ensureRows();
      var rows = M.sortRows(allRows.filter(rowMatches), sortKey, descending);
      headRow.querySelectorAll('th').forEach(function (th) {
        var col = th.getAttribute('data-col');
        if (col === sortKey) th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
        else th.removeAttribute('aria-sort');
      });
      var frag = document.createDocumentFragment();
      var q = search ? search.query : '';
      rows.slice(0, MAX_ROWS).forEach(function (r, i) {
        var n = index.nodes[r.ids[0]];
        var cls = 'rp-top-row';
        if (r.kind !== 'frame') cls += ' kind-' + r.kind;
        else if (r.category !== 'app') cls += ' cat-' + r.category;
        var tr = el('tr', { className: cls, tabindex: '0', 'data-row': String(i), title: 'Show in the call tree' });
        tr._row = r;
        var bar = el('span', { className: 'rp-bar' });
        bar.style.width = Math.min(100, r.self_pct * 100).toFixed(2) + '%';
        V.append(tr, [
          el('td', { className: 'rp-fn' }, V.highlighted(V.frameLabel(n), q)),
          el('td', { className: 'rp-where' }, V.highlighted(V.frameWhere(n), q)),
          el('td', { className: 'num', text: M.formatTime(r.self_wall_s) }),
          el('td', { className: 'num rp-pctcell' }, [bar, el('span', { className: 'rp-pct-text', text: M.formatPercent(r.self_pct) })]),
          el('td', { className: 'num', text: M.formatTime(r.self_cpu_s) }),
          el('td', { className: 'num', text: M.formatTime(r.total_wall_s) }),
          el('td', { className: 'num', text: String(r.count) })
        ]);
        frag.appendChild(tr);
      });
      tbody.replaceChildren(frag);
      var shown = Math.min(rows.length, MAX_ROWS);
      note.textContent = rows.length === allRows.length
        ? rows.length + ' functions' + (shown < rows.length ? ', the first ' + shown + ' shown' : '') + '. Click a row to find it in the call tree.'
        : rows.length + ' of ' + allRows.length + ' functions match' + (shown < rows.length ? ', the first ' + shown + ' shown' : '') + '.';
    }

    function open(tr) {
      var r = tr._row;
      if (!r) return;
      var k = cycle.has(r.key) ? (cycle.get(r.key) + 1) % r.ids.length : 0;
      cycle.set(r.key, k);
      app.findInTree(r.ids[k], r.ids.length > 1 ? 'occurrence ' + (k + 1) + ' of ' + r.ids.length : '');
    }

    thead.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-col]') : null;
      if (!b) return;
      var col = b.getAttribute('data-col');
      var numeric = COLUMNS.some(function (c) { return c.key === col && c.numeric; });
      if (col === sortKey) descending = !descending;
      else { sortKey = col; descending = numeric; }
      render();
    });
    tbody.addEventListener('click', function (ev) {
      var tr = ev.target.closest ? ev.target.closest('tr') : null;
      if (tr) open(tr);
    });
    tbody.addEventListener('keydown', function (ev) {
      var tr = ev.target.closest ? ev.target.closest('tr') : null;
      if (!tr) return;
      if (ev.key === 'Enter' || ev.key === ' ') { open(tr); ev.preventDefault(); }
      else if (ev.key === 'ArrowDown' && tr.nextElementSibling) { tr.nextElementSibling.focus(); ev.preventDefault(); }
      else if (ev.key === 'ArrowUp' && tr.previousElementSibling) { tr.previousElementSibling.focus(); ev.preventDefault(); }
    });

    return {
      render: render,
      setSearch: function (s) { search = s; if (allRows) render(); },
      focus: function () { var first = tbody.querySelector('tr'); if (first) first.focus(); },
      sortBy: function (col, desc) { sortKey = col; descending = desc; render(); }
    };
  }

  global.ReqprofTable = { createTable: createTable };
})(globalThis);
