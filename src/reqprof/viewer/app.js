/*
 * reqprof viewer: the page. Reads the profile JSON embedded in the report
 * (<script type="application/json" id="profile-data">), builds the index
 * once, and wires the header, toolbar, the three views and the detail
 * panel together.
 *
 * Shared state: the metric (wall or CPU), library grouping on/off, the
 * search, the active view. Views call back through the `app` object
 * (onSelect, findInTree, clearSearch); they never touch each other.
 *
 * Keys: "/" search, Esc clears the search, resets the flame zoom or closes
 * the help, 1 / 2 / 3 switch views, * expands the whole call tree, ?
 * shows the keys (KEYS, the one list the help and the footer show).
 *
 * When the first view is on screen, the time it took is left on <html>:
 * data-render-ms from the start of this script (parse, index, first view),
 * data-load-ms from the start of navigation (includes reading the page).
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;
  var V = global.ReqprofViews;
  var el = V.el;

  var VIEWS = [
    { id: 'tree', label: 'Call tree', key: '1' },
    { id: 'flame', label: 'Flame graph', key: '2' },
    { id: 'top', label: 'Top functions', key: '3' }
  ];

  var KEYS = [
    ['/', 'search frames'],
    ['Esc', 'clear the search, reset the flame zoom, close this help'],
    ['1 2 3', 'call tree, flame graph, top functions'],
    ['↑ ↓ ← →', 'move between frames (← → fold and unfold in the tree)'],
    ['Enter', 'expand or fold a row, zoom the flame graph'],
    ['*', 'expand the whole call tree'],
    ['o', 'show or fold the library frames of a group'],
    ['?', 'show or hide this list']
  ];

  function fail(root, message) {
    root.replaceChildren(el('div', { className: 'rp-error', role: 'alert' }, [
      el('h1', { text: 'This report cannot be shown' }),
      el('p', { text: message })
    ]));
  }

  function main() {
    var t0 = global.performance.now();
    var root = document.getElementById('app');
    var dataEl = document.getElementById('profile-data');
    var profile;
    try {
      profile = JSON.parse(dataEl ? dataEl.textContent : '');
    } catch (e) {
      fail(root, 'The profile data in this file is not valid JSON (' + e.message + ').');
      return;
    }
    var problems = M.validateProfile(profile);
    if (problems.length) {
      fail(root, problems.join('; ') + '.');
      return;
    }
    document.title = V.pageTitle(profile);

    var index = M.flatten(profile.root);
    var state = { metric: 'wall_s', groupLibrary: true, view: 'tree', search: null };
    var app = { profile: profile, index: index, state: state };

    // ------------------------------------------------------- toolbar
    var tabs = el('div', { className: 'rp-tabs', role: 'tablist', 'aria-label': 'Views' });
    var tabButtons = {};
    VIEWS.forEach(function (v) {
      var b = el('button', {
        type: 'button', role: 'tab', id: 'rp-tab-' + v.id, 'aria-controls': 'rp-view-' + v.id,
        'aria-selected': v.id === state.view ? 'true' : 'false', tabindex: v.id === state.view ? '0' : '-1',
        title: v.label + ' (' + v.key + ')', 'data-view': v.id, text: v.label
      });
      tabButtons[v.id] = b;
      tabs.appendChild(b);
    });

    var searchInput = el('input', {
      type: 'search', className: 'rp-search', placeholder: 'Search frames  /',
      'aria-label': 'Search frames by function or file', spellcheck: 'false', autocomplete: 'off'
    });
    var searchCount = el('span', { className: 'rp-search-count', 'aria-live': 'polite' });

    function segButton(metric, label) {
      return el('button', { type: 'button', className: 'rp-seg', 'data-metric': metric, 'aria-pressed': metric === state.metric ? 'true' : 'false', text: label });
    }
    var metricGroup = el('div', { className: 'rp-segmented', role: 'group', 'aria-label': 'Measure frames by' }, [
      segButton('wall_s', 'Wall'), segButton('cpu_s', 'CPU')
    ]);

    var groupBox = el('input', { type: 'checkbox', id: 'rp-group-lib' });
    groupBox.checked = state.groupLibrary;
    var groupLabel = el('label', { className: 'rp-check', for: 'rp-group-lib', title: 'Fold site-packages and standard-library frames into groups in the call tree' }, [groupBox, ' Group library frames']);

    var expandButton = el('button', { type: 'button', className: 'rp-expand-all', title: 'Expand the whole call tree (*)', text: 'Expand all' });
    var helpButton = el('button', { type: 'button', className: 'rp-help-button', title: 'Keyboard shortcuts (?)', 'aria-haspopup': 'dialog', text: '?' });
    var toolbar = el('div', { className: 'rp-toolbar' }, [
      tabs,
      el('div', { className: 'rp-searchbox' }, [searchInput, searchCount]),
      metricGroup,
      groupLabel,
      expandButton,
      helpButton
    ]);

    // ------------------------------------------------------- views
    var panels = {};
    VIEWS.forEach(function (v) {
      panels[v.id] = el('section', {
        className: 'rp-view rp-view-' + v.id, id: 'rp-view-' + v.id, role: 'tabpanel',
        'aria-labelledby': 'rp-tab-' + v.id, hidden: v.id !== state.view
      });
    });
    var details = el('aside', { className: 'rp-details', 'aria-label': 'Selected frame' });
    var status = el('p', { className: 'rp-status-line', 'aria-live': 'polite' });
    var mainEl = el('main', { className: 'rp-main' }, [
      el('div', { className: 'rp-views' }, [panels.tree, panels.flame, panels.top]),
      details
    ]);
    var footer = el('footer', { className: 'rp-footer' }, [
      status,
      el('p', { className: 'rp-keys', text: 'Keys: ' + KEYS.map(function (k) { return k[0] + ' ' + k[1].split(',')[0]; }).join(' · ') })
    ]);
    var helpList = el('dl', { className: 'rp-help-keys' });
    KEYS.forEach(function (k) {
      helpList.appendChild(el('div', null, [el('dt', null, el('kbd', { text: k[0] })), el('dd', { text: k[1] })]));
    });
    var help = el('div', { className: 'rp-help', role: 'dialog', 'aria-modal': 'true', 'aria-label': 'Keyboard shortcuts', tabindex: '-1', hidden: true }, [
      el('div', { className: 'rp-help-box' }, [el('h2', { text: 'Keyboard shortcuts' }), helpList,
        el('p', { className: 'rp-muted', text: 'Press ? or Esc to close.' })])
    ]);

    function toggleHelp(show) {
      help.hidden = show === undefined ? !help.hidden : !show;
      if (!help.hidden) help.focus();
      else focusView();
    }

    var breakdown = V.renderBreakdown(profile);
    root.replaceChildren.apply(root, [V.renderHeader(profile), breakdown, toolbar, mainEl, footer, help]
      .filter(Boolean));

    // ------------------------------------------------------- wiring
    var tree, flame, table;

    app.onSelect = function (id, group, source) {
      V.renderDetails(details, index, id, group, {
        showInTree: source === 'tree' ? null : function (i) { app.findInTree(i, ''); },
        showInFlame: function (i) { switchView('flame'); flame.zoomTo(i); flame.setSelected(i); }
      });
      if (source !== 'flame' && flame) flame.setSelected(id);
    };

    app.findInTree = function (id, note) {
      switchView('tree');
      tree.reveal(id, true);
      status.textContent = 'Showing ' + V.frameLabel(index.nodes[id]) + (note ? ' (' + note + ')' : '') + ' in the call tree.';
    };

    app.clearSearch = function () {
      searchInput.value = '';
      applySearch('');
    };

    function applySearch(q) {
      showSearch(M.searchTree(index, q));
      markPart(null);
    }

    // A click on a part of the breakdown bar shows its nodes, as a search
    // would; again (or on "running") shows everything.
    function markPart(key) {
      if (!breakdown) return;
      breakdown.querySelectorAll('[data-part]').forEach(function (x) {
        if (x.tagName === 'BUTTON') x.setAttribute('aria-pressed', x.getAttribute('data-part') === key ? 'true' : 'false');
      });
    }

    function pickPart(key, kind) {
      var on = breakdown.querySelector('button[data-part="' + key + '"]');
      var again = on && on.getAttribute('aria-pressed') === 'true';
      searchInput.value = '';
      var s = again ? null : M.kindFilter(index, kind);
      showSearch(s);
      markPart(s ? key : null);
      switchView('tree');
      status.textContent = s ? 'Showing the ' + s.count + ' ' + key.replace(/_/g, ' ') + ' node' + (s.count === 1 ? '' : 's') + ' in the call tree.' : '';
    }

    if (breakdown) {
      breakdown.addEventListener('click', function (ev) {
        var b = ev.target.closest ? ev.target.closest('button[data-part]') : null;
        if (b) pickPart(b.getAttribute('data-part'), b.getAttribute('data-kind') || null);
      });
    }

    function showSearch(s) {
      state.search = s;
      tree.setSearch(s);
      flame.setSearch(s);
      table.setSearch(s);
      if (!s) searchCount.textContent = '';
      else if (!s.count) searchCount.textContent = 'no match';
      else searchCount.textContent = s.count + (s.count === 1 ? ' frame' : ' frames');
      searchInput.classList.toggle('no-match', !!s && !s.count);
    }

    function switchView(id) {
      if (state.view === id) return;
      state.view = id;
      VIEWS.forEach(function (v) {
        var on = v.id === id;
        panels[v.id].hidden = !on;
        tabButtons[v.id].setAttribute('aria-selected', on ? 'true' : 'false');
        tabButtons[v.id].setAttribute('tabindex', on ? '0' : '-1');
      });
      if (id === 'flame') flame.draw();
      else if (id === 'top') table.render();
      else tree.drawNow();
    }

    function focusView() {
      if (state.view === 'tree') tree.focus();
      else if (state.view === 'flame') flame.focus();
      else table.focus();
    }

    tabs.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-view]') : null;
      if (b) switchView(b.getAttribute('data-view'));
    });
    tabs.addEventListener('keydown', function (ev) {
      var order = VIEWS.map(function (v) { return v.id; });
      var i = order.indexOf(state.view);
      if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
        var next = order[(i + (ev.key === 'ArrowRight' ? 1 : order.length - 1)) % order.length];
        switchView(next);
        tabButtons[next].focus();
        ev.preventDefault();
      }
    });

    var searchTimer = 0;
    searchInput.addEventListener('input', function () {
      global.clearTimeout(searchTimer);
      searchTimer = global.setTimeout(function () { applySearch(searchInput.value); }, 120);
    });
    searchInput.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter') {
        global.clearTimeout(searchTimer);
        applySearch(searchInput.value);
        focusView();
        ev.preventDefault();
      } else if (ev.key === 'Escape') {
        global.clearTimeout(searchTimer);
        if (searchInput.value) app.clearSearch();
        focusView();
        ev.preventDefault();
        ev.stopPropagation();
      }
    });

    metricGroup.addEventListener('click', function (ev) {
      var b = ev.target.closest ? ev.target.closest('[data-metric]') : null;
      if (!b) return;
      state.metric = b.getAttribute('data-metric');
      metricGroup.querySelectorAll('[data-metric]').forEach(function (x) {
        x.setAttribute('aria-pressed', x.getAttribute('data-metric') === state.metric ? 'true' : 'false');
      });
      flame.setMetric();
      tree.redraw();
    });

    groupBox.addEventListener('change', function () {
      state.groupLibrary = groupBox.checked;
      tree.setGrouping();
      flame.setGrouping();
    });

    function expandAll() {
      switchView('tree');
      var all = tree.expandAll();
      status.textContent = all ? 'Every frame of the call tree is expanded.'
        : 'The call tree is expanded as far as a fast view allows; search to find the rest.';
    }
    expandButton.addEventListener('click', expandAll);
    helpButton.addEventListener('click', function () { toggleHelp(); });
    help.addEventListener('click', function (ev) { if (ev.target === help) toggleHelp(false); });

    document.addEventListener('keydown', function (ev) {
      if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      var t = ev.target;
      var typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable);
      if (typing && t.type !== 'checkbox') return;
      if (ev.key === '?') {
        toggleHelp();
        ev.preventDefault();
      } else if (ev.key === 'Escape' && !help.hidden) {
        toggleHelp(false);
        ev.preventDefault();
      } else if (!help.hidden) {
        return;
      } else if (ev.key === '/') {
        searchInput.focus();
        searchInput.select();
        ev.preventDefault();
      } else if (ev.key === '*') {
        expandAll();
        ev.preventDefault();
      } else if (ev.key === 'Escape') {
        if (state.view === 'flame' && flame.zoomed() !== 0) flame.reset();
        else if (state.search) app.clearSearch();
      } else {
        for (var i = 0; i < VIEWS.length; i++) {
          if (ev.key === VIEWS[i].key) { switchView(VIEWS[i].id); focusView(); ev.preventDefault(); return; }
        }
      }
    });

    tree = global.ReqprofTree.createTree(panels.tree, app);
    flame = global.ReqprofFlame.createFlame(panels.flame, app);
    table = global.ReqprofTable.createTable(panels.top, app);
    tree.start();

    var t1 = global.performance.now();
    document.documentElement.setAttribute('data-render-ms', (t1 - t0).toFixed(1));
    document.documentElement.setAttribute('data-load-ms', t1.toFixed(1));
    app.tree = tree;
    app.flame = flame;
    app.table = table;
    app.switchView = switchView;
    app.toggleHelp = toggleHelp;
    app.expandAll = expandAll;
  }

  if (typeof document !== 'undefined') {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
    else main();
  }
})(globalThis);
