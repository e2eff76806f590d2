/*
 * reqprof dashboard: the page `reqprof dashboard` serves at /.
 *
 * Two screens, chosen by the URL fragment (ReqprofRoutes.parseState):
 *
 * - the route table of a time range: method, route, requests, errors,
 *   latency percentiles, wall and CPU time with their share; sortable by
 *   every column (buttons in the headings: mouse or keyboard), filtered
 *   by a text box;
 * - a route: its merged profile over the range in the report's own views
 *   (ReqprofTree, ReqprofFlame, ReqprofTable and the detail panel), its
 *   kept requests (slow, failed, asked for), each linking to its full
 *   report, and Compare: two time ranges of the route, or two of its kept
 *   requests, as a differential view (ReqprofDiffView).
 *
 * Data comes from the dashboard's own JSON API (same origin, /api/...,
 * ReqprofRoutes.apiUrl builds every URL; the CSP allows nothing else).
 * Route names, paths and frame names are data: they reach the page only as
 * text (ReqprofViews.el), as query parameters, or in the fragment.
 *
 * For tests and the benchmark, the time each view took is left on <html>:
 * data-routes-fetch-ms (the route table: the API's answer), data-routes-ms
 * (its first rows built and laid out), data-routes-shown-ms (... and drawn),
 * data-routes-all-ms (every row drawn),
 * data-profile-ms / data-profile-fetch-ms (a route's merged profile),
 * data-requests-ms, data-diff-ms.
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;
  var V = global.ReqprofViews;
  var R = global.ReqprofRoutes;
  var el = V.el;

  var REQUESTS_LIMIT = 200;
  /** Route table rows drawn at once (more than a screenful), then per frame. */
  var FIRST_ROWS = 60;
  var MORE_ROWS = 100;
  var PROFILE_TABS = { tree: 1, flame: 1, top: 1 };

  /** GET a same-origin API URL as JSON; rejects with the API's error message. */
  function getJSON(url) {
    return global.fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) {
            var e = new Error(body && body.error ? String(body.error) : 'HTTP ' + r.status);
            e.status = r.status;
            throw e;
          }
          return body;
        }, function () {
          var e = new Error('HTTP ' + r.status + ': not JSON');
          e.status = r.status;
          throw e;
        });
      });
  }

  function now() { return Date.now() / 1000; }

  /** Runs fn once the next frame has been drawn. */
  function afterPaint(fn) {
    global.requestAnimationFrame(function () { global.setTimeout(fn, 0); });
  }

  function mark(name, ms) {
    document.documentElement.setAttribute('data-' + name, ms.toFixed(1));
  }

  /** "10:05" or "2025-03-01 10:05" for a Unix time, local. */
  function shortTime(t, withDate) {
    var s = M.formatDate(t);
    return withDate ? s.slice(0, 16) : s.slice(11, 16);
  }

  function rangeLabel(since, until) {
    if (!since && !until) return 'all the store holds';
    var sameDay = until && M.formatDate(since).slice(0, 10) === M.formatDate(until).slice(0, 10);
    return shortTime(since, true) + ' → ' + (until ? shortTime(until, !sameDay) : 'now');
  }

  function main() {
    var root = document.getElementById('app');
    var state = R.parseState(global.location.hash);
    var epoch = 0;      // Refresh: everything cached before is stale
    var cache = {};     // name -> {key, promise}

    // ------------------------------------------------------- the frame of the page

    var rangeSelect = el('select', { id: 'rd-range' });
    R.RANGES.forEach(function (r) { rangeSelect.appendChild(el('option', { value: r.id, text: r.label })); });
    var sinceInput = el('input', { type: 'datetime-local', id: 'rd-since' });
    var untilInput = el('input', { type: 'datetime-local', id: 'rd-until' });
    var applyCustom = el('button', { type: 'button', className: 'rd-button', text: 'Apply' });
    var custom = el('span', { className: 'rd-custom', hidden: true }, [
      el('label', { for: 'rd-since', text: 'From' }), sinceInput,
      el('label', { for: 'rd-until', text: 'to' }), untilInput, applyCustom
    ]);
    var refresh = el('button', { type: 'button', className: 'rd-button', title: 'Read the store again', text: 'Refresh' });
    var updated = el('span', { className: 'rd-updated rp-muted', 'aria-live': 'polite' });
    var home = el('a', { className: 'rd-brand' }, [el('span', { className: 'rd-logo', 'aria-hidden': 'true', text: '◢' }), 'reqprof']);
    var top = el('header', { className: 'rd-top' }, [
      home,
      el('span', { className: 'rd-top-title', text: 'production view' }),
      el('div', { className: 'rd-range' }, [el('label', { for: 'rd-range', text: 'Time range' }), rangeSelect, custom, refresh, updated])
    ]);
    var status = el('p', { className: 'rd-status', role: 'alert', hidden: true });

    // ------------------------------------------------------- screen 1: routes

    var filter = el('input', {
      type: 'search', id: 'rd-filter', className: 'rp-search', placeholder: 'Filter routes', spellcheck: 'false', autocomplete: 'off'
    });
    var summaryLine = el('p', { className: 'rd-summary-line', 'aria-live': 'polite' });
    var headRow = el('tr');
    R.COLUMNS.forEach(function (c) {
      var label = c.label + (c.key === 'wall_s' || c.key === 'cpu_s' ? ' (share)' : '');
      headRow.appendChild(el('th', { scope: 'col', className: c.numeric ? 'num' : '', 'data-col': c.key },
        el('button', { type: 'button', className: 'rp-sort', 'data-col': c.key, text: label, title: 'Sort by ' + c.label.toLowerCase() })));
    });
    var tbody = el('tbody');
    // Fixed column widths: the browser lays 500 rows out without measuring every cell.
    var cols = el('colgroup', null, R.COLUMNS.map(function (c) { return el('col', { className: 'rd-col-' + c.key.replace('_', '-') }); }));
    var table = el('table', { className: 'rp-top rd-routes', id: 'rd-routes-table' }, [
      el('caption', { className: 'rp-sr-only', text: 'Routes in the time range. The column headings are buttons that sort the table.' }),
      cols, el('thead', null, headRow), tbody
    ]);
    var empty = el('p', { className: 'rd-empty', hidden: true });
    var routesScreen = el('section', { className: 'rd-screen rd-routes-screen', 'aria-label': 'Routes' }, [
      el('div', { className: 'rd-bar' }, [el('label', { for: 'rd-filter', className: 'rp-sr-only', text: 'Filter routes' }), filter, summaryLine]),
      el('div', { className: 'rp-table-wrap rd-table-wrap' }, [table, empty])
    ]);

    // ------------------------------------------------------- screen 2: a route

    var back = el('a', { className: 'rd-back', text: '← All routes' });
    var routeTitle = el('h1', { className: 'rp-title' });
    var routeFacts = el('dl', { className: 'rp-facts' });
    var TABS = [['tree', 'Call tree'], ['flame', 'Flame graph'], ['top', 'Top functions'], ['requests', 'Kept requests'], ['compare', 'Compare']];
    var tabs = el('div', { className: 'rp-tabs', role: 'tablist', 'aria-label': 'Route views' });
    var tabButtons = {};
    TABS.forEach(function (t) {
      var b = el('button', { type: 'button', role: 'tab', id: 'rd-tab-' + t[0], 'aria-controls': 'rd-panel-' + t[0], 'data-tab': t[0], text: t[1] });
      tabButtons[t[0]] = b;
      tabs.appendChild(b);
    });
    var search = el('input', {
      type: 'search', className: 'rp-search', placeholder: 'Search frames', 'aria-label': 'Search frames by function or file', spellcheck: 'false', autocomplete: 'off'
    });
    var searchCount = el('span', { className: 'rp-search-count', 'aria-live': 'polite' });
    var metricGroup = el('div', { className: 'rp-segmented', role: 'group', 'aria-label': 'Measure frames by' }, [
      el('button', { type: 'button', className: 'rp-seg', 'data-metric': 'wall_s', 'aria-pressed': 'true', text: 'Wall' }),
      el('button', { type: 'button', className: 'rp-seg', 'data-metric': 'cpu_s', 'aria-pressed': 'false', text: 'CPU' })
    ]);
    var groupBox = el('input', { type: 'checkbox', id: 'rd-group-lib' });
    groupBox.checked = true;
    var profileTools = el('div', { className: 'rd-profile-tools' }, [
      el('div', { className: 'rp-searchbox' }, [search, searchCount]), metricGroup,
      el('label', { className: 'rp-check', for: 'rd-group-lib' }, [groupBox, ' Group library frames'])
    ]);
    var profileNote = el('p', { className: 'rd-profile-note rp-muted' });
    var profileHost = el('div', { className: 'rd-panel rd-profile', id: 'rd-panel-profile' });
    var requestsHost = el('section', { className: 'rd-panel rd-requests', id: 'rd-panel-requests', role: 'tabpanel', 'aria-labelledby': 'rd-tab-requests' });
    var compareHost = el('section', { className: 'rd-panel rd-compare', id: 'rd-panel-compare', role: 'tabpanel', 'aria-labelledby': 'rd-tab-compare' });
    var routeScreen = el('section', { className: 'rd-screen rd-route-screen', 'aria-label': 'Route', hidden: true }, [
      el('div', { className: 'rp-header rd-route-head' }, [back, routeTitle, routeFacts]),
      el('div', { className: 'rp-toolbar' }, [tabs, profileTools]),
      profileNote, profileHost, requestsHost, compareHost
    ]);

    root.replaceChildren(top, status, routesScreen, routeScreen);

    // ------------------------------------------------------- navigation

    function hashOf(s) { return '#' + R.formatState(s); }

    function navigate(changes, replace) {
      var next = R.withState(state, changes);
      if (replace) global.history.replaceState(null, '', hashOf(next));
      else global.history.pushState(null, '', hashOf(next));
      state = next;
      update();
    }

    function onLocation() {
      var s = R.parseState(global.location.hash);
      if (R.formatState(s) === R.formatState(state)) return;
      state = s;
      update();
    }
    global.addEventListener('popstate', onLocation);
    global.addEventListener('hashchange', onLocation);

    function showError(e) {
      status.hidden = false;
      status.textContent = e && e.message ? e.message : String(e);
    }
    function clearError() { status.hidden = true; status.textContent = ''; }

    /** A cached promise per name and key: the same key never loads twice (until Refresh). */
    function load(name, key, loader) {
      key = epoch + '|' + key;
      var c = cache[name];
      if (c && c.key === key) return c.promise;
      var promise = loader();
      cache[name] = { key: key, promise: promise };
      promise.catch(function () { if (cache[name] && cache[name].key === key) delete cache[name]; });
      return promise;
    }

    function bounds(s) { return R.rangeBounds(s || state, now()); }

    function rangeKey(s) { return s.range === 'custom' ? 'custom:' + s.since + ':' + s.until : s.range; }

    // ------------------------------------------------------- the range controls

    function syncRange() {
      rangeSelect.value = state.range;
      custom.hidden = state.range !== 'custom';
      if (state.range === 'custom') {
        sinceInput.value = R.toLocalInput(state.since);
        untilInput.value = state.until === null ? '' : R.toLocalInput(state.until);
      }
      home.href = hashOf(R.withState(R.defaultState(), { range: state.range, since: state.since, until: state.until }));
    }

    rangeSelect.addEventListener('change', function () {
      var v = rangeSelect.value;
      if (v === 'custom') {
        var b = bounds();
        custom.hidden = false;
        sinceInput.value = R.toLocalInput(b.since || now() - 3600);
        untilInput.value = '';
        sinceInput.focus();
        return;
      }
      navigate({ range: v, since: null, until: null });
    });
    function applyRange() {
      var since = R.fromLocalInput(sinceInput.value);
      var until = R.fromLocalInput(untilInput.value);
      if (since === null) { showError('Give the start of the custom time range.'); sinceInput.focus(); return; }
      if (until !== null && until <= since) { showError('The end of the time range must come after its start.'); untilInput.focus(); return; }
      clearError();
      navigate({ range: 'custom', since: since, until: until });
    }
    applyCustom.addEventListener('click', applyRange);
    [sinceInput, untilInput].forEach(function (i) {
      i.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') { applyRange(); ev.preventDefault(); } });
    });
    refresh.addEventListener('click', function () { epoch++; update(); });

    // ------------------------------------------------------- the route table

    function loadRoutes() {
      var s = state;
      return load('routes', rangeKey(s), function () {
        var b = bounds(s);
        var t = global.performance.now();
        return getJSON(R.apiUrl('routes', { since: b.since, until: b.until })).then(function (data) {
          mark('routes-fetch-ms', global.performance.now() - t);
          updated.textContent = 'Read at ' + M.formatDate(now()).slice(11);
          return data;
        });
      });
    }

    function routeHash(r) {
      return hashOf(R.withState(R.defaultState(), {
        range: state.range, since: state.since, until: state.until, method: r.method, route: r.route, tab: 'flame'
      }));
    }

    function shareCell(seconds, share, cls) {
      var fill = el('span', { className: 'rd-share-fill ' + cls });
      fill.style.width = Math.min(100, share * 100).toFixed(2) + '%';
      return el('td', { className: 'num rd-share', title: M.formatPercent(share) + ' of all routes' }, [
        el('span', { className: 'rd-share-time', text: M.formatTime(seconds) }),
        el('span', { className: 'rd-share-track', 'aria-hidden': 'true' }, fill),
        el('span', { className: 'rd-share-pct', text: M.formatPercent(share) })
      ]);
    }

    function routeRow(r) {
      var link = el('a', { className: 'rd-route-link', title: String(r.route), text: String(r.route) });
      link.href = routeHash(r);
      return el('tr', { className: 'rd-route-row' + (r.errors ? ' has-errors' : '') }, [
        el('td', null, el('span', { className: 'rp-method', text: String(r.method) })),
        el('td', { className: 'rd-route-cell' }, link),
        el('td', { className: 'num', text: R.formatCount(r.count) }),
        el('td', { className: 'num rd-errors', text: R.formatCount(r.errors) }),
        el('td', { className: 'num', text: R.formatMs(r.p50_ms) }),
        el('td', { className: 'num', text: R.formatMs(r.p95_ms) }),
        el('td', { className: 'num', text: R.formatMs(r.p99_ms) }),
        el('td', { className: 'num', text: R.formatMs(r.max_ms) }),
        shareCell(r.wall_s, r.wall_share || 0, ''),
        shareCell(r.cpu_s, r.cpu_share || 0, 'rd-bar-cpu')
      ]);
    }

    function routeRows(rows, from, to) {
      var frag = document.createDocumentFragment();
      for (var i = from; i < Math.min(to, rows.length); i++) frag.appendChild(routeRow(rows[i]));
      return frag;
    }

    var tableGeneration = 0;

    /**
     * The table: the first screenful of rows at once, the rest in chunks,
     * a frame each (a browser takes most of a second to lay out 500 rows
     * of 10 cells at once on a slow machine; this way the first rows show
     * at once and the page stays responsive). A newer render cancels the
     * chunks of an older one.
     */
    function renderTable(data) {
      var t = global.performance.now();
      var generation = ++tableGeneration;
      var all = data.routes || [];
      var rows = R.sortRoutes(R.filterRoutes(all, state.q), state.sort, state.desc);
      headRow.querySelectorAll('th').forEach(function (th) {
        var col = th.getAttribute('data-col');
        if (col === state.sort) th.setAttribute('aria-sort', state.desc ? 'descending' : 'ascending');
        else th.removeAttribute('aria-sort');
      });
      tbody.replaceChildren(routeRows(rows, 0, FIRST_ROWS));
      var tot = R.totals(all);
      summaryLine.textContent = (rows.length === all.length ? all.length + ' routes' : rows.length + ' of ' + all.length + ' routes') +
        ' · ' + R.formatCount(tot.count) + ' requests · ' + R.formatCount(tot.errors) + ' errors · wall ' + M.formatTime(tot.wall_s) +
        ' · CPU ' + M.formatTime(tot.cpu_s);
      empty.hidden = rows.length > 0;
      empty.textContent = all.length ? 'No route matches the filter.' : 'No requests in this time range.';
      void table.offsetHeight;    // layout now: the time below includes it
      mark('routes-ms', global.performance.now() - t);
      var done = FIRST_ROWS;
      function more() {
        if (generation !== tableGeneration) return;
        if (done === FIRST_ROWS) mark('routes-shown-ms', global.performance.now() - t);
        if (done < rows.length) {
          tbody.appendChild(routeRows(rows, done, done + MORE_ROWS));
          done += MORE_ROWS;
          afterPaint(more);
          return;
        }
        mark('routes-all-ms', global.performance.now() - t);
      }
      afterPaint(more);
    }

    headRow.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('button[data-col]') : null;
      if (!b) return;
      var col = R.column(b.getAttribute('data-col'));
      var desc = col.key === state.sort ? !state.desc : col.numeric;
      navigate({ sort: col.key, desc: desc }, true);
      var again = headRow.querySelector('button[data-col="' + col.key + '"]');
      if (again) again.focus();
    });

    var filterTimer = 0;
    filter.addEventListener('input', function () {
      global.clearTimeout(filterTimer);
      filterTimer = global.setTimeout(function () { navigate({ q: filter.value }, true); }, 120);
    });

    function showRoutes() {
      routesScreen.hidden = false;
      routeScreen.hidden = true;
      document.title = 'reqprof dashboard';
      if (document.activeElement !== filter) filter.value = state.q;
      var s = state;
      loadRoutes().then(function (data) {
        if (state !== s) return;
        clearError();
        renderTable(data);
      }, showError);
    }

    // ------------------------------------------------------- a route

    function routeKey(s) { return s.method + '\u0000' + s.route; }

    function renderRouteHead(row) {
      routeTitle.replaceChildren(el('span', { className: 'rp-method', text: state.method }), el('span', { className: 'rp-path', text: state.route }));
      routeFacts.replaceChildren();
      function fact(label, value, title) {
        routeFacts.appendChild(el('div', { className: 'rp-fact', title: title }, [el('dt', { text: label }), el('dd', { text: value })]));
      }
      var b = bounds();
      fact('range', rangeLabel(b.since || 0, b.until));
      if (row === undefined) return;    // not read yet
      if (!row) {
        fact('requests', '0', 'No request to this route in the time range');
        return;
      }
      fact('requests', R.formatCount(row.count));
      fact('errors', R.formatCount(row.errors), '5xx answers and exceptions');
      fact('p50', R.formatMs(row.p50_ms));
      fact('p95', R.formatMs(row.p95_ms));
      fact('p99', R.formatMs(row.p99_ms));
      fact('max', R.formatMs(row.max_ms));
      fact('wall', M.formatTime(row.wall_s) + ' (' + M.formatPercent(row.wall_share) + ' of all routes)');
      fact('CPU', M.formatTime(row.cpu_s) + ' (' + M.formatPercent(row.cpu_share) + ')');
    }

    function findRow(data, s) {
      var rows = data.routes || [];
      for (var i = 0; i < rows.length; i++) if (rows[i].method === s.method && rows[i].route === s.route) return rows[i];
      return null;
    }

    function selectTab(tab) {
      TABS.forEach(function (t) {
        var on = t[0] === tab;
        tabButtons[t[0]].setAttribute('aria-selected', on ? 'true' : 'false');
        tabButtons[t[0]].setAttribute('tabindex', on ? '0' : '-1');
      });
      var isProfile = !!PROFILE_TABS[tab];
      profileTools.hidden = !isProfile;
      profileHost.hidden = !isProfile;
      profileNote.hidden = !isProfile || !profileNote.textContent;
      requestsHost.hidden = tab !== 'requests';
      compareHost.hidden = tab !== 'compare';
    }

    tabs.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-tab]') : null;
      if (b) navigate({ tab: b.getAttribute('data-tab') });
    });
    tabs.addEventListener('keydown', function (ev) {
      if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
      var order = TABS.map(function (t) { return t[0]; });
      var i = order.indexOf(state.tab);
      var next = order[(i + (ev.key === 'ArrowRight' ? 1 : order.length - 1)) % order.length];
      navigate({ tab: next }, true);
      tabButtons[next].focus();
      ev.preventDefault();
    });

    function showRoute() {
      routesScreen.hidden = true;
      routeScreen.hidden = false;
      document.title = state.method + ' ' + state.route + ' · reqprof dashboard';
      back.href = hashOf(R.withState(state, { method: null, route: null, tab: 'flame' }));
      renderRouteHead(undefined);
      selectTab(state.tab);
      var s = state;
      if (PROFILE_TABS[s.tab] && profileView && profileView.key === profileKey(s)) switchProfileView(s.tab);
      loadRoutes().then(function (data) {
        if (state !== s) return;
        clearError();
        var row = findRow(data, s);
        renderRouteHead(row);
        if (PROFILE_TABS[s.tab]) showProfile(row);
      }, showError);
      loadRequests(s).then(function (list) {
        if (state !== s) return;
        tabButtons.requests.textContent = 'Kept requests (' + list.length + (list.length >= REQUESTS_LIMIT ? '+' : '') + ')';
        if (s.tab === 'requests') renderRequests(list);
        if (s.tab === 'compare') showCompare(list);
      }, showError);
    }

    // ------------------------------------------------------- the merged profile

    var profileView = null;   // {key, app, tree, flame, table}
    var searchRoute = null;   // the route the search box was used on

    function profileKey(s) { return routeKey(s) + '\u0000' + rangeKey(s) + '\u0000' + epoch; }

    function showProfile(row) {
      var s = state;
      var key = profileKey(s);
      if (profileView && profileView.key === key) {
        switchProfileView(s.tab);
        return;
      }
      if (!row || !row.has_profile) {
        profileView = null;
        profileHost.replaceChildren(el('p', { className: 'rd-empty', text: row
          ? 'No samples for this route in this time range: its requests were shorter than the sampling interval.'
          : 'No request to this route in this time range.' }));
        profileNote.textContent = '';
        profileNote.hidden = true;
        return;
      }
      profileHost.replaceChildren(el('p', { className: 'rd-loading rp-muted', text: 'Merging the route\'s profiles…' }));
      var b = bounds(s);
      var t = global.performance.now();
      load('profile', key, function () {
        return getJSON(R.apiUrl('profile', { method: s.method, route: s.route, since: b.since, until: b.until }));
      }).then(function (profile) {
        if (state !== s && profileKey(state) !== key) return;
        mark('profile-fetch-ms', global.performance.now() - t);
        var t1 = global.performance.now();
        mountProfile(profile, key);
        switchProfileView(state.tab);
        mark('profile-ms', global.performance.now() - t1);
      }, function (e) {
        profileHost.replaceChildren(el('p', { className: 'rd-empty', text: e.message }));
      });
    }

    function mountProfile(profile, key) {
      var problems = M.validateProfile(profile);
      if (problems.length) throw new Error(problems.join('; '));
      var index = M.flatten(profile.root);
      var meta = profile.meta || {};
      profileNote.textContent = 'Merged profile of ' + R.formatCount(meta.requests || 0) + ' requests (' +
        M.formatTime(profile.wall_s) + ' wall, ' + M.formatTime(profile.cpu_s) + ' CPU sampled)' +
        (profile.truncated ? '; truncated: the merged tree reached its size cap, the smallest paths are folded' : '') + '.';
      profileNote.hidden = false;
      var panels = {};
      ['tree', 'flame', 'top'].forEach(function (id) {
        panels[id] = el('section', { className: 'rp-view rp-view-' + id, id: 'rd-panel-' + id, role: 'tabpanel', 'aria-labelledby': 'rd-tab-' + id });
      });
      var details = el('aside', { className: 'rp-details', 'aria-label': 'Selected frame' });
      profileHost.replaceChildren(el('div', { className: 'rp-main' }, [el('div', { className: 'rp-views' }, [panels.tree, panels.flame, panels.top]), details]));
      var view = { key: key, panels: panels };
      var app = {
        profile: profile, index: index,
        state: { metric: 'wall_s', groupLibrary: groupBox.checked, view: 'tree', search: null },
        onSelect: function (id, group, source) {
          V.renderDetails(details, index, id, group, {
            showInTree: source === 'tree' ? null : function (i) { app.findInTree(i, ''); },
            showInFlame: function (i) { navigate({ tab: 'flame' }); view.flame.zoomTo(i); view.flame.setSelected(i); }
          });
          if (source !== 'flame' && view.flame) view.flame.setSelected(id);
        },
        findInTree: function (id) {
          navigate({ tab: 'tree' });
          view.tree.reveal(id, { focus: true });
        },
        clearSearch: function () { search.value = ''; applySearch(''); }
      };
      view.app = app;
      view.tree = global.ReqprofTree.createTree(panels.tree, app);
      view.flame = global.ReqprofFlame.createFlame(panels.flame, app);
      view.table = global.ReqprofTable.createTable(panels.top, app);
      // A search is kept across time ranges of a route, not across routes.
      if (searchRoute !== routeKey(state)) { search.value = ''; searchCount.textContent = ''; search.classList.remove('no-match'); }
      searchRoute = routeKey(state);
      profileView = view;
      metricGroup.querySelectorAll('[data-metric]').forEach(function (x) {
        x.setAttribute('aria-pressed', x.getAttribute('data-metric') === 'wall_s' ? 'true' : 'false');
      });
      if (search.value) applySearch(search.value);
      view.tree.start();
    }

    function switchProfileView(tab) {
      var v = profileView;
      if (!v) return;
      v.app.state.view = tab;
      ['tree', 'flame', 'top'].forEach(function (id) { v.panels[id].hidden = id !== tab; });
      if (tab === 'flame') v.flame.draw();
      else if (tab === 'top') v.table.render();
      else v.tree.drawNow();
    }

    function applySearch(q) {
      var v = profileView;
      if (!v) return;
      var s = M.searchTree(v.app.index, q);
      v.app.state.search = s;
      v.tree.setSearch(s);
      v.flame.setSearch(s);
      v.table.setSearch(s);
      searchCount.textContent = !s ? '' : !s.count ? 'no match' : s.count + (s.count === 1 ? ' frame' : ' frames');
      search.classList.toggle('no-match', !!s && !s.count);
    }

    var searchTimer = 0;
    search.addEventListener('input', function () {
      global.clearTimeout(searchTimer);
      searchTimer = global.setTimeout(function () { applySearch(search.value); }, 120);
    });
    search.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter') { global.clearTimeout(searchTimer); applySearch(search.value); ev.preventDefault(); }
      else if (ev.key === 'Escape' && search.value) { search.value = ''; applySearch(''); ev.preventDefault(); }
    });
    metricGroup.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-metric]') : null;
      var v = profileView;
      if (!b || !v) return;
      v.app.state.metric = b.getAttribute('data-metric');
      metricGroup.querySelectorAll('[data-metric]').forEach(function (x) {
        x.setAttribute('aria-pressed', x.getAttribute('data-metric') === v.app.state.metric ? 'true' : 'false');
      });
      v.flame.setMetric();
      v.tree.redraw();
    });
    groupBox.addEventListener('change', function () {
      var v = profileView;
      if (!v) return;
      v.app.state.groupLibrary = groupBox.checked;
      v.tree.setGrouping();
    });

    // ------------------------------------------------------- kept requests

    function loadRequests(s) {
      return load('requests', routeKey(s) + '\u0000' + rangeKey(s), function () {
        var b = bounds(s);
        return getJSON(R.apiUrl('requests', { method: s.method, route: s.route, since: b.since, limit: REQUESTS_LIMIT }))
          .then(function (data) {
            var list = data.requests || [];
            if (b.until !== null) list = list.filter(function (r) { return r.started < b.until; });
            return list;
          });
      });
    }

    function requestLabel(r) {
      return '#' + r.id + ' ' + String(r.path) + ' → ' + (r.status === null || r.status === undefined ? 'no status' : r.status) +
        ' in ' + R.formatMs(r.duration_ms) + ' (' + shortTime(r.started, true) + ')';
    }

    function renderRequests(list) {
      var t = global.performance.now();
      requestsHost.replaceChildren();
      if (!list.length) {
        requestsHost.appendChild(el('p', { className: 'rd-empty', text:
          'No kept request for this route in this time range. Requests are kept when they are slow (PROFILING_SLOW_MS), fail, or ask for a report.' }));
        mark('requests-ms', global.performance.now() - t);
        return;
      }
      requestsHost.appendChild(el('p', { className: 'rp-table-note', text:
        list.length + ' kept requests, slowest first' + (list.length >= REQUESTS_LIMIT ? ' (the ' + REQUESTS_LIMIT + ' slowest)' : '') +
        '. Open one for its full report.' }));
      var body = el('tbody');
      list.forEach(function (r) {
        var link = el('a', { className: 'rd-report-link', text: String(r.path) });
        link.href = R.reportUrl(r.id);
        var st = r.status === null || r.status === undefined ? '–' : String(r.status);
        body.appendChild(el('tr', { className: 'rd-request-row' + (r.status >= 500 || r.kept_because === 'error' ? ' has-errors' : '') }, [
          el('td', { className: 'num', text: R.formatMs(r.duration_ms) }),
          el('td', { className: 'rd-path-cell' }, link),
          el('td', { className: 'num', text: st }),
          el('td', { text: String(r.kept_because || '') }),
          el('td', { text: M.formatDate(r.started) }),
          el('td', { className: 'rp-muted', text: String(r.host || '') + (r.pid ? ':' + r.pid : '') }),
          el('td', { className: 'rp-muted', text: r.trace_id ? String(r.trace_id) : '' })
        ]));
      });
      var heads = ['Duration', 'Path', 'Status', 'Kept because', 'Started', 'Worker', 'Trace'];
      requestsHost.appendChild(el('div', { className: 'rp-table-wrap' }, el('table', { className: 'rp-top rd-requests-table' }, [
        el('thead', null, el('tr', null, heads.map(function (h, i) {
          return el('th', { scope: 'col', className: i === 0 || i === 2 ? 'num' : '', text: h });
        }))),
        body
      ])));
      mark('requests-ms', global.performance.now() - t);
    }

    // ------------------------------------------------------- compare

    var compareView = null;   // {key}
    var compareForm = null;

    function buildCompareForm(list) {
      var modeRanges = el('input', { type: 'radio', id: 'rd-cmp-ranges', value: 'ranges' });
      var modeRequests = el('input', { type: 'radio', id: 'rd-cmp-requests', value: 'requests' });
      modeRanges.name = modeRequests.name = 'rd-cmp-mode';
      var inputs = {};
      ['a0', 'a1', 'b0', 'b1'].forEach(function (k) { inputs[k] = el('input', { type: 'datetime-local', id: 'rd-cmp-' + k }); });
      var ranges = el('div', { className: 'rd-cmp-ranges' }, [
        el('fieldset', null, [el('legend', { text: 'Before' }),
          el('label', { for: 'rd-cmp-a0', text: 'from' }), inputs.a0, el('label', { for: 'rd-cmp-a1', text: 'to' }), inputs.a1]),
        el('fieldset', null, [el('legend', { text: 'After' }),
          el('label', { for: 'rd-cmp-b0', text: 'from' }), inputs.b0, el('label', { for: 'rd-cmp-b1', text: 'to' }), inputs.b1]),
        el('div', { className: 'rd-presets' }, [
          el('button', { type: 'button', className: 'rd-button', 'data-preset': '3600', text: 'Last hour vs the hour before' }),
          el('button', { type: 'button', className: 'rd-button', 'data-preset': '86400', text: 'Last 24 h vs the day before' })
        ])
      ]);
      var selA = el('select', { id: 'rd-cmp-ra' });
      var selB = el('select', { id: 'rd-cmp-rb' });
      var requests = el('div', { className: 'rd-cmp-requests' }, [
        el('label', { for: 'rd-cmp-ra', text: 'Before' }), selA, el('label', { for: 'rd-cmp-rb', text: 'After' }), selB
      ]);
      var go = el('button', { type: 'button', className: 'rd-button rd-primary', id: 'rd-cmp-go', text: 'Compare' });
      var form = el('div', { className: 'rd-cmp-form', role: 'group', 'aria-label': 'What to compare' }, [
        el('div', { className: 'rd-cmp-modes' }, [
          modeRanges, el('label', { for: 'rd-cmp-ranges', text: 'Two time ranges (before and after a deploy)' }),
          modeRequests, el('label', { for: 'rd-cmp-requests', text: 'Two kept requests' })
        ]),
        ranges, requests, go
      ]);
      var result = el('div', { className: 'rd-cmp-result' });
      compareHost.replaceChildren(form, result);
      compareForm = { form: form, result: result, inputs: inputs, selA: selA, selB: selB, modeRanges: modeRanges,
        modeRequests: modeRequests, ranges: ranges, requests: requests, listKey: null };

      function mode() { return modeRequests.checked ? 'requests' : 'ranges'; }
      function syncMode() {
        ranges.hidden = mode() !== 'ranges';
        requests.hidden = mode() !== 'requests';
      }
      modeRanges.addEventListener('change', syncMode);
      modeRequests.addEventListener('change', syncMode);
      compareForm.syncMode = syncMode;
      ranges.addEventListener('click', function (ev) {
        var b = ev.target.closest ? ev.target.closest('[data-preset]') : null;
        if (!b) return;
        var span = Number(b.getAttribute('data-preset'));
        var t = Math.floor(now());
        navigate({ cmp: 'ranges', a0: t - 2 * span, a1: t - span, b0: t - span, b1: t });
      });
      go.addEventListener('click', function () {
        if (mode() === 'ranges') {
          var v = {};
          for (var k in inputs) v[k] = R.fromLocalInput(inputs[k].value);
          if (v.a0 === null || v.a1 === null || v.b0 === null || v.b1 === null) { showError('Give both time ranges, start and end.'); return; }
          if (v.a1 <= v.a0 || v.b1 <= v.b0) { showError('Each time range must end after it starts.'); return; }
          clearError();
          navigate({ cmp: 'ranges', a0: v.a0, a1: v.a1, b0: v.b0, b1: v.b1 });
        } else {
          if (!selA.value || !selB.value) { showError('Choose two kept requests.'); return; }
          clearError();
          navigate({ cmp: 'requests', ra: Number(selA.value), rb: Number(selB.value) });
        }
      });
    }

    function fillCompareForm(list) {
      var f = compareForm;
      var d = R.defaultCompare(now());
      ['a0', 'a1', 'b0', 'b1'].forEach(function (k) {
        f.inputs[k].value = R.toLocalInput(state[k] !== null ? state[k] : d[k]);
      });
      f.modeRanges.checked = state.cmp === 'ranges';
      f.modeRequests.checked = state.cmp === 'requests';
      f.syncMode();
      var listKey = list.map(function (r) { return r.id; }).join(',');
      if (f.listKey !== listKey) {
        f.listKey = listKey;
        [f.selA, f.selB].forEach(function (sel) {
          sel.replaceChildren();
          list.forEach(function (r) { sel.appendChild(el('option', { value: String(r.id), text: requestLabel(r) })); });
        });
      }
      // Defaults: the fastest kept request before, the slowest after.
      if (list.length) {
        f.selA.value = String(state.ra !== null ? state.ra : list[list.length - 1].id);
        f.selB.value = String(state.rb !== null ? state.rb : list[0].id);
      }
      f.modeRequests.disabled = list.length < 1;
    }

    function compareKey(s) {
      return routeKey(s) + '\u0000' + epoch + '\u0000' + (s.cmp === 'ranges'
        ? ['r', s.a0, s.a1, s.b0, s.b1].join(':') : ['q', s.ra, s.rb].join(':'));
    }

    function showCompare(list) {
      if (!compareForm) buildCompareForm(list);
      fillCompareForm(list);
      var s = state;
      var ready = s.cmp === 'ranges' ? s.a0 !== null && s.a1 !== null && s.b0 !== null && s.b1 !== null : s.ra !== null && s.rb !== null;
      var result = compareForm.result;
      if (!ready) {
        compareView = null;
        result.replaceChildren(el('p', { className: 'rd-empty', text: s.cmp === 'ranges'
          ? 'Choose two time ranges of this route (before and after a deploy, say) and press Compare. Frames are coloured by the change in their share of the time: red for more, blue for less.'
          : 'Choose two kept requests of this route and press Compare.' }));
        return;
      }
      var key = compareKey(s);
      if (compareView && compareView.key === key) return;
      compareView = { key: key };
      result.replaceChildren(el('p', { className: 'rd-loading rp-muted', text: 'Loading both profiles…' }));
      var t = global.performance.now();
      var sides;
      if (s.cmp === 'ranges') {
        sides = [[s.a0, s.a1], [s.b0, s.b1]].map(function (r) {
          return getJSON(R.apiUrl('profile', { method: s.method, route: s.route, since: r[0], until: r[1] })).then(function (p) {
            return { profile: p, label: rangeLabel(r[0], r[1]) + ' · ' + R.formatCount((p.meta && p.meta.requests) || 0) + ' requests',
              count: (p.meta && p.meta.requests) || 1 };
          }, function (e) {
            if (e.status === 404) throw new Error('No profile for this route from ' + rangeLabel(r[0], r[1]) + ': no sampled request in that range.');
            throw e;
          });
        });
      } else {
        var byId = {};
        list.forEach(function (r) { byId[r.id] = r; });
        sides = [s.ra, s.rb].map(function (id) {
          return getJSON(R.apiUrl('requests/' + id, {})).then(function (p) {
            var r = byId[id];
            var meta = p.meta || {};
            return { profile: p, count: 1, label: r ? requestLabel(r) : '#' + id + ' ' + String(meta.path || '') + ' in ' + M.formatTime(p.duration_s) };
          });
        });
      }
      Promise.all(sides).then(function (two) {
        if (!compareView || compareView.key !== key) return;
        var t1 = global.performance.now();
        var problems = M.validateProfile(two[0].profile).concat(M.validateProfile(two[1].profile));
        if (problems.length) throw new Error(problems.join('; '));
        result.replaceChildren();
        compareView.view = global.ReqprofDiffView.create(result, two[0].profile, two[1].profile, {
          labels: { before: two[0].label, after: two[1].label },
          counts: { before: two[0].count, after: two[1].count }
        });
        mark('diff-fetch-ms', t1 - t);
        mark('diff-ms', global.performance.now() - t1);
      }).catch(function (e) {
        if (!compareView || compareView.key !== key) return;
        compareView = null;
        result.replaceChildren(el('p', { className: 'rd-empty', role: 'status', text: e.message }));
      });
    }

    // ------------------------------------------------------- update

    function update() {
      syncRange();
      if (state.route === null) showRoutes();
      else showRoute();
    }

    document.addEventListener('keydown', function (ev) {
      if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      var t = ev.target;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
      if (ev.key === '/') {
        (state.route === null ? filter : search).focus();
        ev.preventDefault();
      }
    });

    update();
    document.documentElement.setAttribute('data-dashboard', 'ready');
  }

  if (typeof document !== 'undefined') {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
    else main();
  }
})(globalThis);
