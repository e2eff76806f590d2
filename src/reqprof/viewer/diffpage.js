/*
 * reqprof diff: the page `reqprof diff A B -o diff.html` writes. Reads the
 * two profiles embedded in it (<script type="application/json"
 * id="diff-data">: {"before": profile, "after": profile, "labels":
 * {"before", "after"}}) and shows the differential view of after against
 * before (ReqprofDiffView). Leaves the time it took on <html> as
 * data-diff-ms.
 */
(function (global) {
  'use strict';
  var M = global.ReqprofModel;
  var V = global.ReqprofViews;
  var el = V.el;

  function fail(root, message) {
    root.replaceChildren(el('div', { className: 'rp-error', role: 'alert' }, [
      el('h1', { text: 'This comparison cannot be shown' }),
      el('p', { text: message })
    ]));
  }

  function main() {
    var t0 = global.performance.now();
    var root = document.getElementById('app');
    var dataEl = document.getElementById('diff-data');
    var data;
    try {
      data = JSON.parse(dataEl ? dataEl.textContent : '');
    } catch (e) {
      fail(root, 'The data in this file is not valid JSON (' + e.message + ').');
      return;
    }
    if (!data || typeof data !== 'object') { fail(root, 'The data in this file is not a JSON object.'); return; }
    var problems = [];
    ['before', 'after'].forEach(function (side) {
      M.validateProfile(data[side]).forEach(function (p) { problems.push(side + ': ' + p); });
    });
    if (problems.length) { fail(root, problems.join('; ') + '.'); return; }
    var labels = data.labels && typeof data.labels === 'object' ? data.labels : {};
    var before = String(labels.before || 'before');
    var after = String(labels.after || 'after');
    document.title = 'reqprof diff: ' + after + ' against ' + before;
    var host = el('div', { className: 'rd-cmp-result' });
    root.replaceChildren(
      el('header', { className: 'rd-top' }, [
        el('span', { className: 'rd-brand' }, [el('span', { className: 'rd-logo', 'aria-hidden': 'true', text: '◢' }), 'reqprof']),
        el('h1', { className: 'rd-top-title', text: 'diff' })
      ]),
      host);
    global.ReqprofDiffView.create(host, data.before, data.after, { labels: { before: before, after: after } });
    document.documentElement.setAttribute('data-diff-ms', (global.performance.now() - t0).toFixed(1));
  }

  if (typeof document !== 'undefined') {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
    else main();
  }
})(globalThis);
