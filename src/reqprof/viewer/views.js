/*
 * reqprof viewer: shared view helpers, the header and the detail panel.
 *
 * Escaping rule for every view: a string from the profile reaches the page
 * only as a text node (el()'s string children, textContent) or as canvas
 * fillText. Nothing in the viewer parses HTML: no innerHTML, outerHTML,
 * insertAdjacentHTML or document.write (a test greps for them), and the
 * page's CSP enforces Trusted Types so such a call would throw anyway.
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;

  var SAFE_ATTR = /^(aria-[a-z]+|data-[a-z-]+|role|tabindex|type|title|id|for|placeholder|value|spellcheck|autocomplete|scope|colspan)$/;

  /**
   * Create an element. props: className, text (textContent), hidden, and
   * attributes from a short allow-list; children: nodes or strings (text).
   */
  function el(tag, props, children) {
    var e = document.createElement(tag);
    if (props) {
      for (var k in props) {
        if (!Object.prototype.hasOwnProperty.call(props, k)) continue;
        var v = props[k];
        if (v === undefined || v === null || v === false) continue;
        if (k === 'className') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else if (k === 'hidden') e.hidden = !!v;
        else if (SAFE_ATTR.test(k)) e.setAttribute(k, v === true ? '' : String(v));
        else throw new Error('el(): attribute not allowed: ' + k);
      }
    }
    append(e, children);
    return e;
  }

  function append(parent, children) {
    if (children === undefined || children === null) return parent;
    if (!Array.isArray(children)) children = [children];
    for (var i = 0; i < children.length; i++) {
      var c = children[i];
      if (c === undefined || c === null || c === false) continue;
      parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return parent;
  }

  /** Text with the query's occurrences wrapped in <mark>, as text nodes. */
  function highlighted(text, query) {
    var frag = document.createDocumentFragment();
    var ranges = query ? M.highlightRanges(text, query) : [];
    var at = 0;
    for (var i = 0; i < ranges.length; i++) {
      if (ranges[i][0] > at) frag.appendChild(document.createTextNode(text.slice(at, ranges[i][0])));
      frag.appendChild(el('mark', null, text.slice(ranges[i][0], ranges[i][1])));
      at = ranges[i][1];
    }
    if (at < text.length) frag.appendChild(document.createTextNode(text.slice(at)));
    return frag;
  }

  /** How a node is labelled in lists: the function, then where it is. */
  function frameLabel(node) {
    if (node.kind && node.kind !== 'frame') return node.name || node.function || '[' + node.kind + ']';
    return node.function || node.name || '?';
  }

  function frameWhere(node) {
    if (node.kind && node.kind !== 'frame') {
      if (node.kind === 'await') {
        var at = node.short_file || node.file;
        if (at) return 'waiting at ' + at + (node.line ? ':' + node.line : '');
        var hl = M.hotLines(node);
        return hl.length ? 'waiting at line ' + hl[0][0] : '';
      }
      return '';
    }
    var f = node.short_file || node.file || '';
    return node.line ? f + ':' + node.line : f;
  }

  var KIND_TITLES = {
    'await': 'The request was suspended here, waiting.',
    'out-of-context': 'Time when the request\'s own context ran nowhere (strict async mode).',
    'thread': 'Work done for the request in another thread.',
    'truncated': 'Frames deeper than the depth cap, folded.',
    'gc': 'Garbage collection, triggered by the frame above; finalizers it ran are below.',
    'unsampled': 'Time no sample saw (since the last tick when the response ended or the profile stopped).',
    'request': 'The request: the root of its profile.',
    'after-response': 'Work done after the response was sent (background tasks, cleanup).',
    'loop-busy': 'The request was ready to run, but its event loop ran other code: the blocker is below.',
    'blocker': 'What held the event loop meanwhile: a request, or [no request] (a callback, a background task).'
  };

  var UNDERSAMPLED_HINTS = {
    'short request': 'the request lasted only a few sampling intervals',
    'GIL held by C code': 'a C call held the GIL, so the sampler could not take its samples',
    'machine load': 'the machine was too busy for the sampler to keep its schedule'
  };

  // ------------------------------------------------------------- header

  var TRUNCATION_REASONS = {
    nodes: 'the call tree reached its node cap',
    bytes: 'the call tree reached its memory cap',
    memory: 'memory ran out while recording',
    depth: 'stacks deeper than the depth cap were folded into [truncated]',
    duration: 'the session reached its duration cap'
  };

  /** Why a request's profile ended before the request (meta.ended). */
  var ENDED_REASONS = {
    'time limit': 'it reached the time limit (PROFILING_MANUAL_TIMEOUT)',
    'size limit': 'the captured response reached its size limit',
    'max duration': 'it reached the longest a sampled request is profiled'
  };

  function metaValue(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    return String(v);
  }

  /** The header: what was profiled and the totals. */
  function renderHeader(profile) {
    var meta = (profile.meta && typeof profile.meta === 'object') ? profile.meta : {};
    var header = el('header', { className: 'rp-header' });

    var title = el('h1', { className: 'rp-title' });
    if (meta.method !== undefined) append(title, el('span', { className: 'rp-method', text: metaValue(meta.method) }));
    var what = meta.path !== undefined ? metaValue(meta.path) : (meta.name !== undefined ? metaValue(meta.name) : 'Profile');
    append(title, el('span', { className: 'rp-path', text: what }));
    if (meta.query) append(title, el('span', { className: 'rp-query', text: '?' + metaValue(meta.query) }));
    if (meta.status !== undefined && meta.status !== null) {
      var st = Number(meta.status);
      var cls = st >= 500 ? 'rp-status s5' : st >= 400 ? 'rp-status s4' : st >= 300 ? 'rp-status s3' : 'rp-status s2';
      append(title, el('span', { className: cls, text: metaValue(meta.status) }));
    }
    header.appendChild(title);

    var facts = el('dl', { className: 'rp-facts' });
    function fact(label, value, titleText) {
      if (value === '' || value === undefined) return;
      append(facts, el('div', { className: 'rp-fact', title: titleText }, [el('dt', { text: label }), el('dd', { text: value })]));
    }
    if (meta.route !== undefined) fact('route', metaValue(meta.route));
    fact('duration', M.formatTime(profile.duration_s), 'Start to stop of the profiling session');
    var cpuShare = M.percent(profile.cpu_s, profile.wall_s);
    fact('wall', M.formatTime(profile.wall_s), 'Wall time the samples cover');
    fact('CPU', M.formatTime(profile.cpu_s) + (profile.wall_s ? ' (' + M.formatPercent(cpuShare) + ' of wall)' : ''), 'CPU time the samples cover');
    var lengthened = M.intervalNote(profile);
    var every = lengthened ? profile.effective_interval_s : profile.interval_s;
    fact('samples', profile.samples !== undefined ? String(profile.samples) + (every ? ' every ' + M.formatTime(every) : '') : '',
         lengthened ? 'Mean interval of the ticks; ' + M.formatTime(profile.interval_s) + ' asked' : undefined);
    fact('sampler CPU', M.samplerCpu(profile), 'CPU the profiler\'s own threads used while this profile ran (shared with profiles running beside it)');
    if (typeof profile.response_s === 'number' && profile.response_s > 0) {
      fact('response sent', M.formatTime(profile.response_s), 'Start to the last byte of the response; the rest of the duration is work after it');
    }
    if (typeof profile.gc_s === 'number' && profile.gc_s > 0) {
      fact('GC', M.formatTime(profile.gc_s) + (profile.wall_s ? ' (' + M.formatPercent(M.percent(profile.gc_s, profile.wall_s)) + ')' : ''), 'Garbage collections run by the request\'s threads ([gc] frames)');
    }
    if (profile.async_mode) fact('async', String(profile.async_mode));
    if (meta.content_type !== undefined) fact('type', metaValue(meta.content_type));
    if (typeof meta.response_bytes === 'number') fact('response', M.formatBytes(meta.response_bytes));
    fact('started', M.formatDate(profile.started_at));
    if (profile.reqprof_version) fact('reqprof', String(profile.reqprof_version));
    header.appendChild(facts);

    if (meta.exception !== undefined && meta.exception !== null && meta.exception !== '') {
      header.appendChild(el('div', { className: 'rp-banner rp-exception', role: 'alert' }, [
        el('strong', { text: 'Exception: ' }), el('span', { className: 'rp-exception-text', text: metaValue(meta.exception) })
      ]));
    }
    if (profile.undersampled) {
      var why = profile.undersampled_reason;
      header.appendChild(el('div', { className: 'rp-banner rp-undersampled', role: 'status' }, [
        el('strong', { text: 'Few samples: ' }),
        (profile.samples || 0) + ' for ' + M.formatTime(profile.duration_s) +
        (why ? ' (' + (UNDERSAMPLED_HINTS[why] || why) + ')' : '') +
        '. Read the tree with care: time no sample saw is [unsampled].'
      ]));
    }
    if (lengthened) {
      header.appendChild(el('div', { className: 'rp-banner rp-lengthened', role: 'status' }, [
        el('strong', { text: 'Sampling interval ' }),
        lengthened + '. Fewer samples; the times are not affected.'
      ]));
    }
    if (profile.truncated) {
      var reasons = (profile.truncated_reasons || []).map(function (r) { return TRUNCATION_REASONS[r] || String(r); });
      header.appendChild(el('div', { className: 'rp-banner rp-truncated', role: 'status' }, [
        el('strong', { text: 'Truncated profile: ' }),
        reasons.length ? reasons.join('; ') + '.' : 'a cap cut the profile short.'
      ]));
    }

    if (meta.ended !== undefined && meta.ended !== null && meta.ended !== '') {
      var why = ENDED_REASONS[meta.ended] || String(meta.ended);
      header.appendChild(el('div', { className: 'rp-banner rp-ended', role: 'status' }, [
        el('strong', { text: 'Profile ended early: ' }),
        why + (meta.response_cut ? '; the response was still streaming and was cut there.' : '.')
      ]));
    }

    var shown = { method: 1, path: 1, query: 1, status: 1, route: 1, content_type: 1, response_bytes: 1, exception: 1, ended: 1, response_cut: 1 };
    var extra = Object.keys(meta).filter(function (k) { return !shown[k]; });
    if (extra.length) {
      var list = el('dl', { className: 'rp-meta-extra' });
      extra.forEach(function (k) {
        append(list, el('div', null, [el('dt', { text: k }), el('dd', { text: metaValue(meta[k]) })]));
      });
      header.appendChild(el('details', { className: 'rp-meta' }, [el('summary', { text: 'More about this request (' + extra.length + ')' }), list]));
    }
    return header;
  }

  /**
   * The breakdown bar: one segment per part of the request's time
   * (M.breakdownParts), each a button (data-part, data-kind) a click can
   * filter the tree by, and a legend naming the blockers. Null when the
   * profile has no breakdown.
   */
  function renderBreakdown(profile) {
    var parts = M.breakdownParts(profile);
    if (!parts.length) return null;
    var bar = el('div', { className: 'rp-bd-bar', role: 'group', 'aria-label': 'Where the time went' });
    var legend = el('ul', { className: 'rp-bd-legend' });
    parts.forEach(function (p) {
      var colour = p.kind ? PART_COLOURS[p.kind] || M.colourFor({ kind: p.kind }) : PART_COLOURS.running;
      var text = p.label + ' ' + M.formatTime(p.wall_s) + ' (' + M.formatPercent(p.share) + ')';
      var who = p.blockers.map(function (b) {
        return String(b.name) + ' ' + M.formatPercent(b.share);
      }).join(', ');
      var seg = el('button', {
        type: 'button', className: 'rp-part rp-part-' + p.key, 'data-part': p.key,
        'data-kind': p.kind || '', 'aria-pressed': 'false',
        title: text + (who ? ': blocked by ' + who : '') + (p.kind ? ' (click: show these in the tree)' : ' (click: show everything)'),
        'aria-label': text
      });
      seg.style.width = (p.share * 100).toFixed(2) + '%';
      seg.style.background = colour;
      bar.appendChild(seg);
      var sw = el('span', { className: 'rp-swatch' });
      sw.style.background = colour;
      legend.appendChild(el('li', { 'data-part': p.key }, [sw, text, who ? el('span', { className: 'rp-blockers', text: ' blocked by ' + who }) : null]));
    });
    var block = profile.loop_block;
    var banner = null;
    if (block && typeof block.wall_s === 'number') {
      var at = block.short_file || block.file ? ' at ' + (block.short_file || block.file) + ':' + block.line
        + (block.function ? ' (' + block.function + ')' : '') : '';
      banner = el('div', { className: 'rp-banner rp-loop-block', role: 'status' }, [
        el('strong', { text: 'Blocked the event loop ' }),
        'for ' + M.formatTime(block.wall_s) + at + ': every other request on its loop waited meanwhile.'
      ]);
    }
    return el('div', { className: 'rp-breakdown' }, [bar, legend, banner]);
  }

  var PART_COLOURS = {
    running: 'hsl(140, 45%, 62%)',
    'await': 'hsl(210, 40%, 72%)',
    'loop-busy': 'hsl(0, 65%, 66%)',
    'thread': 'hsl(275, 40%, 72%)',
    'gc': 'hsl(30, 75%, 65%)',
    'unsampled': 'hsl(0, 0%, 80%)',
    'out-of-context': 'hsl(0, 0%, 65%)'
  };

  /** Document title for the browser tab. */
  function pageTitle(profile) {
    var meta = profile.meta || {};
    var parts = [];
    if (meta.method) parts.push(String(meta.method));
    if (meta.path) parts.push(String(meta.path));
    parts.push(M.formatTime(profile.duration_s));
    return parts.join(' ') + ' · reqprof';
  }

  // ------------------------------------------------------------- detail panel

  function statRow(label, value) {
    return el('div', { className: 'rp-stat' }, [el('dt', { text: label }), el('dd', { text: value })]);
  }

  /**
   * Fill the detail panel for a display node (or a profile node id) of the
   * index. actions: {showInTree, showInFlame} callbacks (optional).
   */
  function renderDetails(panel, index, id, group, actions) {
    panel.replaceChildren();
    if (id === null || id === undefined || id < 0) {
      panel.appendChild(el('p', { className: 'rp-muted', text: 'Select a frame to see its details.' }));
      return;
    }
    var node = index.nodes[id];
    var total = index.nodes[0].wall_s || 0;
    var totalCpu = index.nodes[0].cpu_s || 0;
    if (group) {
      panel.appendChild(el('h2', { className: 'rp-detail-title', text: M.groupLabel(group) }));
      panel.appendChild(el('p', { className: 'rp-muted', text: 'Library and standard-library frames folded together. Their own time is the group\'s self time; the frames they call are listed under the group.' }));
      var dl = el('dl', { className: 'rp-stats' }, [
        statRow('wall', M.formatTime(group.wall_s) + ' (' + M.formatPercent(M.percent(group.wall_s, total)) + ')'),
        statRow('CPU', M.formatTime(group.cpu_s)),
        statRow('self wall', M.formatTime(group.self_wall_s)),
        statRow('self CPU', M.formatTime(group.self_cpu_s))
      ]);
      panel.appendChild(dl);
      var ul = el('ol', { className: 'rp-members' });
      group.members.slice(0, 200).forEach(function (m) {
        var mn = index.nodes[m];
        append(ul, el('li', null, [
          el('span', { className: 'rp-fn', text: frameLabel(mn) }), ' ',
          el('span', { className: 'rp-where', text: frameWhere(mn) }),
          mn.self_wall_s ? el('span', { className: 'rp-self', text: ' self ' + M.formatTime(mn.self_wall_s) }) : null
        ]));
      });
      panel.appendChild(ul);
      if (group.members.length > 200) panel.appendChild(el('p', { className: 'rp-muted', text: (group.members.length - 200) + ' more frames' }));
      return;
    }
    var kindClass = node.kind && node.kind !== 'frame' ? ' kind-' + node.kind : '';
    panel.appendChild(el('h2', { className: 'rp-detail-title' + kindClass, text: frameLabel(node) }));
    var where = frameWhere(node);
    if (where) panel.appendChild(el('p', { className: 'rp-where', text: where }));
    if (node.file && node.file !== node.short_file) panel.appendChild(el('p', { className: 'rp-file', title: 'co_filename', text: node.file }));
    if (KIND_TITLES[node.kind]) panel.appendChild(el('p', { className: 'rp-muted', text: KIND_TITLES[node.kind] }));
    var cat = M.nodeCategory(node);
    if (cat === 'library' || cat === 'stdlib') panel.appendChild(el('p', { className: 'rp-muted', text: cat === 'library' ? 'Library code (site-packages).' : 'Standard library.' }));
    panel.appendChild(el('dl', { className: 'rp-stats' }, [
      statRow('wall', M.formatTime(node.wall_s) + ' (' + M.formatPercent(M.percent(node.wall_s, total)) + ')'),
      statRow('CPU', M.formatTime(node.cpu_s) + (totalCpu ? ' (' + M.formatPercent(M.percent(node.cpu_s, totalCpu)) + ')' : '')),
      statRow('self wall', M.formatTime(node.self_wall_s)),
      statRow('self CPU', M.formatTime(node.self_cpu_s)),
      statRow('samples', String(node.samples || 0)),
      statRow('depth', String(index.depth[id]))
    ]));
    var lines = M.hotLines(node);
    if (lines.length) {
      panel.appendChild(el('h3', { text: node.kind === 'await' ? 'Waiting at' : 'Hot lines (self time)' }));
      var max = lines[0][1] || 1;
      var table = el('table', { className: 'rp-lines' });
      lines.slice(0, 50).forEach(function (l) {
        var bar = el('span', { className: 'rp-linebar' });
        bar.style.width = Math.max(1, Math.round(100 * l[1] / max)) + '%';
        append(table, el('tr', null, [
          el('td', { className: 'rp-lineno', text: 'line ' + l[0] }),
          el('td', { className: 'rp-num', text: M.formatTime(l[1]) }),
          el('td', { className: 'rp-barcell' }, bar)
        ]));
      });
      panel.appendChild(table);
    }
    if (actions) {
      var btns = el('div', { className: 'rp-detail-actions' });
      if (actions.showInTree) {
        var b1 = el('button', { type: 'button', text: 'Show in call tree' });
        b1.addEventListener('click', function () { actions.showInTree(id); });
        btns.appendChild(b1);
      }
      if (actions.showInFlame) {
        var b2 = el('button', { type: 'button', text: 'Zoom flame graph here' });
        b2.addEventListener('click', function () { actions.showInFlame(id); });
        btns.appendChild(b2);
      }
      panel.appendChild(btns);
    }
  }

  global.ReqprofViews = {
    el: el,
    append: append,
    highlighted: highlighted,
    frameLabel: frameLabel,
    frameWhere: frameWhere,
    KIND_TITLES: KIND_TITLES,
    renderHeader: renderHeader,
    renderBreakdown: renderBreakdown,
    pageTitle: pageTitle,
    renderDetails: renderDetails
  };
})(globalThis);
