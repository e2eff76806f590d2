/*
 * reqprof dashboard: the model. Time ranges, the page's state in the URL
 * fragment, the route table's sorting and filtering, the API's URLs.
 *
 * Plain functions, no DOM: they run in the dashboard (a classic script,
 * exposed as globalThis.ReqprofRoutes) and under Node's test runner
 * (require()d as a CommonJS module).
 *
 * The state lives in location.hash (`#range=1h&method=GET&route=%2Fitems`)
 * so that Back from a kept request's report comes back to the same view,
 * and a view can be linked to. Everything read from it is checked: an
 * unknown value falls back to the default, never reaches the page as
 * markup (route names are data) and never reaches the API but as a query
 * parameter.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  }
  if (root) {
    root.ReqprofRoutes = api;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  /** The time ranges offered, in seconds back from now (null: everything). */
  var RANGES = [
    { id: '15m', label: 'Last 15 min', seconds: 900 },
    { id: '1h', label: 'Last hour', seconds: 3600 },
    { id: '24h', label: 'Last 24 h', seconds: 86400 },
    { id: 'all', label: 'All', seconds: null },
    { id: 'custom', label: 'Custom…', seconds: null }
  ];
  var DEFAULT_RANGE = '1h';

  /** The route table's columns: the API's field, its heading, numeric or not. */
  var COLUMNS = [
    { key: 'method', label: 'Method', numeric: false },
    { key: 'route', label: 'Route', numeric: false },
    { key: 'count', label: 'Requests', numeric: true },
    { key: 'errors', label: 'Errors', numeric: true },
    { key: 'p50_ms', label: 'p50', numeric: true },
    { key: 'p95_ms', label: 'p95', numeric: true },
    { key: 'p99_ms', label: 'p99', numeric: true },
    { key: 'max_ms', label: 'Max', numeric: true },
    { key: 'wall_s', label: 'Wall', numeric: true },
    { key: 'cpu_s', label: 'CPU', numeric: true }
  ];
  var DEFAULT_SORT = 'wall_s';

  var TABS = ['tree', 'flame', 'top', 'requests', 'compare'];
  var COMPARE_MODES = ['ranges', 'requests'];

  function column(key) {
    for (var i = 0; i < COLUMNS.length; i++) if (COLUMNS[i].key === key) return COLUMNS[i];
    return null;
  }

  function range(id) {
    for (var i = 0; i < RANGES.length; i++) if (RANGES[i].id === id) return RANGES[i];
    return null;
  }

  function num(v) {
    if (v === null || v === undefined || v === '') return null;
    var n = Number(v);
    return isFinite(n) && n >= 0 ? n : null;
  }

  function id(v) {
    var n = num(v);
    return n !== null && Math.floor(n) === n ? n : null;
  }

  // ---------------------------------------------------------------- state

  /** The default state: the route table, last hour, by wall time. */
  function defaultState() {
    return {
      range: DEFAULT_RANGE, since: null, until: null, sort: DEFAULT_SORT, desc: true, q: '',
      method: null, route: null, tab: 'flame',
      cmp: 'ranges', a0: null, a1: null, b0: null, b1: null, ra: null, rb: null
    };
  }

  /** The state a location.hash stands for (unknown values: the defaults). */
  function parseState(hash) {
    var s = defaultState();
    var text = String(hash || '');
    if (text.charAt(0) === '#') text = text.slice(1);
    var p = new URLSearchParams(text);
    if (range(p.get('range'))) s.range = p.get('range');
    s.since = num(p.get('since'));
    s.until = num(p.get('until'));
    if (s.range === 'custom' && s.since === null) s.range = DEFAULT_RANGE;
    if (s.range !== 'custom') { s.since = null; s.until = null; }
    if (column(p.get('sort'))) s.sort = p.get('sort');
    var desc = p.get('desc');
    s.desc = desc === null ? column(s.sort).numeric : desc !== '0';
    s.q = (p.get('q') || '').slice(0, 200);
    if (p.get('route') !== null) {
      s.method = (p.get('method') || '').slice(0, 40);
      s.route = p.get('route').slice(0, 4096);
    }
    if (TABS.indexOf(p.get('tab')) >= 0) s.tab = p.get('tab');
    if (COMPARE_MODES.indexOf(p.get('cmp')) >= 0) s.cmp = p.get('cmp');
    ['a0', 'a1', 'b0', 'b1'].forEach(function (k) { s[k] = num(p.get(k)); });
    s.ra = id(p.get('ra'));
    s.rb = id(p.get('rb'));
    return s;
  }

  /** The location.hash for a state (without '#'; defaults left out). */
  function formatState(s) {
    var d = defaultState();
    var p = new URLSearchParams();
    if (s.range !== d.range) p.set('range', s.range);
    if (s.range === 'custom') {
      if (s.since !== null && s.since !== undefined) p.set('since', String(s.since));
      if (s.until !== null && s.until !== undefined) p.set('until', String(s.until));
    }
    if (s.sort !== d.sort) p.set('sort', s.sort);
    var col = column(s.sort);
    if (col && !!s.desc !== col.numeric) p.set('desc', s.desc ? '1' : '0');
    if (s.q) p.set('q', s.q);
    if (s.route !== null && s.route !== undefined) {
      p.set('method', s.method || '');
      p.set('route', s.route);
      if (s.tab !== d.tab) p.set('tab', s.tab);
      if (s.tab === 'compare') {
        if (s.cmp !== d.cmp) p.set('cmp', s.cmp);
        ['a0', 'a1', 'b0', 'b1', 'ra', 'rb'].forEach(function (k) {
          if (s[k] !== null && s[k] !== undefined) p.set(k, String(s[k]));
        });
      }
    }
    return p.toString();
  }

  /** A copy of a state with some fields changed. */
  function withState(s, changes) {
    var out = {};
    for (var k in s) if (Object.prototype.hasOwnProperty.call(s, k)) out[k] = s[k];
    for (var c in changes) if (Object.prototype.hasOwnProperty.call(changes, c)) out[c] = changes[c];
    return out;
  }

  /**
   * The [since, until) a state's range stands for, in Unix seconds, at
   * time now (Unix seconds). until is null for "up to now".
   */
  function rangeBounds(s, now) {
    if (s.range === 'custom') return { since: s.since || 0, until: s.until === null || s.until === undefined ? null : s.until };
    var r = range(s.range) || range(DEFAULT_RANGE);
    if (r.seconds === null) return { since: 0, until: null };
    return { since: Math.floor(now - r.seconds), until: null };
  }

  /**
   * The two ranges a compare starts from when none is given: the hour
   * before the last one, and the last hour.
   */
  function defaultCompare(now) {
    var t = Math.floor(now);
    return { a0: t - 7200, a1: t - 3600, b0: t - 3600, b1: t };
  }

  // ---------------------------------------------------------------- the table

  /**
   * Rows sorted by a column of COLUMNS, stable; ties (and equal strings)
   * keep the API's order (wall time, largest first). Returns a new array.
   */
  function sortRoutes(rows, key, desc) {
    var col = column(key) || column(DEFAULT_SORT);
    var sign = desc ? -1 : 1;
    var decorated = rows.map(function (r, i) { return [r, i]; });
    decorated.sort(function (a, b) {
      var x = a[0][col.key];
      var y = b[0][col.key];
      var c;
      if (col.numeric) {
        c = (typeof x === 'number' && isFinite(x) ? x : -Infinity) - (typeof y === 'number' && isFinite(y) ? y : -Infinity);
        if (c !== c) c = 0;     // both -Infinity
      } else {
        x = String(x === undefined || x === null ? '' : x).toLowerCase();
        y = String(y === undefined || y === null ? '' : y).toLowerCase();
        c = x < y ? -1 : x > y ? 1 : 0;
      }
      return c !== 0 ? sign * c : a[1] - b[1];
    });
    return decorated.map(function (d) { return d[0]; });
  }

  /** The rows whose "METHOD route" holds the query (case-insensitive). */
  function filterRoutes(rows, query) {
    var q = String(query || '').trim().toLowerCase();
    if (!q) return rows;
    return rows.filter(function (r) {
      return (String(r.method) + ' ' + String(r.route)).toLowerCase().indexOf(q) >= 0;
    });
  }

  /** The table's totals: requests, errors, wall and CPU seconds. */
  function totals(rows) {
    var t = { routes: rows.length, count: 0, errors: 0, wall_s: 0, cpu_s: 0 };
    for (var i = 0; i < rows.length; i++) {
      t.count += rows[i].count || 0;
      t.errors += rows[i].errors || 0;
      t.wall_s += rows[i].wall_s || 0;
      t.cpu_s += rows[i].cpu_s || 0;
    }
    return t;
  }

  /** An integer with thousands separators: "1,234,567" (toLocaleString is slow for 500 rows). */
  function grouped(n) {
    var s = String(Math.abs(Math.round(n)));
    for (var i = s.length - 3; i > 0; i -= 3) s = s.slice(0, i) + ',' + s.slice(i);
    return (n < 0 && Math.round(n) !== 0 ? '-' : '') + s;
  }

  /** Milliseconds as "0.42 ms", "12.3 ms", "1,234 ms"; "–" when unknown. */
  function formatMs(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '–';
    if (ms < 10) return ms.toFixed(2) + ' ms';
    if (ms < 100) return ms.toFixed(1) + ' ms';
    return grouped(ms) + ' ms';
  }

  /** A count as "1,234". */
  function formatCount(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    return grouped(n);
  }

  // ---------------------------------------------------------------- the API

  /**
   * A same-origin API URL: '/api/' + path, with the parameters that are
   * not null as a query string. path is one of the API's own ('routes',
   * 'profile', 'requests', 'requests/<id>').
   */
  function apiUrl(path, params) {
    if (!/^(routes|profile|requests|requests\/\d+)$/.test(path)) throw new Error('apiUrl: unknown path ' + path);
    var p = new URLSearchParams();
    for (var k in params || {}) {
      if (!Object.prototype.hasOwnProperty.call(params, k)) continue;
      var v = params[k];
      if (v === null || v === undefined) continue;
      p.set(k, String(v));
    }
    var q = p.toString();
    return '/api/' + path + (q ? '?' + q : '');
  }

  /** The page of a kept request's full report. */
  function reportUrl(requestId) {
    var n = id(requestId);
    if (n === null) throw new Error('reportUrl: not a request id: ' + requestId);
    return '/requests/' + n;
  }

  // ---------------------------------------------------------------- times

  function p2(n) { return (n < 10 ? '0' : '') + n; }

  /** Unix seconds as the local "YYYY-MM-DDTHH:MM" of an <input type=datetime-local>. */
  function toLocalInput(unixSeconds) {
    if (typeof unixSeconds !== 'number' || !isFinite(unixSeconds)) return '';
    var d = new Date(unixSeconds * 1000);
    return d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + 'T' + p2(d.getHours()) + ':' + p2(d.getMinutes());
  }

  /** An <input type=datetime-local> value (local time) as Unix seconds, or null. */
  function fromLocalInput(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(String(value || ''));
    if (!m) return null;
    var d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    var t = d.getTime();
    return isFinite(t) ? Math.floor(t / 1000) : null;
  }

  return {
    RANGES: RANGES,
    COLUMNS: COLUMNS,
    TABS: TABS,
    DEFAULT_RANGE: DEFAULT_RANGE,
    DEFAULT_SORT: DEFAULT_SORT,
    column: column,
    range: range,
    defaultState: defaultState,
    parseState: parseState,
    formatState: formatState,
    withState: withState,
    rangeBounds: rangeBounds,
    defaultCompare: defaultCompare,
    sortRoutes: sortRoutes,
    filterRoutes: filterRoutes,
    totals: totals,
    formatMs: formatMs,
    formatCount: formatCount,
    apiUrl: apiUrl,
    reportUrl: reportUrl,
    toLocalInput: toLocalInput,
    fromLocalInput: fromLocalInput
  };
});
