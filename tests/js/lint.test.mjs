// Invariants of the viewer's sources: profile strings never go through an
// HTML parser, nothing is fetched, and every file can be inlined.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const dir = fileURLToPath(new URL('../../src/reqprof/viewer/', import.meta.url));
const js = readdirSync(dir).filter((f) => f.endsWith('.js'));
const read = (f) => readFileSync(join(dir, f), 'utf8');
// The code without its comments (block comments, and // comments that start a line).
const code = (f) => read(f).replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

test('the viewer has its sources', () => {
  for (const f of ['model.js', 'views.js', 'tree.js', 'flame.js', 'table.js', 'app.js', 'viewer.css', 'template.html']) {
    assert.ok(read(f).length > 0, f);
  }
  for (const f of ['diff.js', 'diffview.js', 'diffpage.js', 'routes.js', 'dashboard.js', 'dashboard.css', 'dashboard.html', 'diff.html']) {
    assert.ok(read(f).length > 0, f);
  }
});

test('no HTML parsing sinks, no eval', () => {
  const sinks = [/\.innerHTML\b/, /\.outerHTML\b/, /insertAdjacentHTML/, /document\.write/, /\beval\s*\(/,
    /new\s+Function\b/, /setAttribute\(\s*['"](style|on\w+|href|src)['"]/, /\.srcdoc\b/, /createContextualFragment/,
    /DOMParser/];
  for (const f of js) {
    const src = code(f);
    for (const re of sinks) assert.doesNotMatch(src, re, `${f}: ${re}`);
  }
});

// The dashboard's page reads its own origin's JSON API (its CSP allows that
// and nothing else); every other file makes no request at all.
const FETCHES = new Set(['dashboard.js']);

test('no network: no URL, fetch, XHR, WebSocket, import or font load', () => {
  const bad = [/https?:\/\//, /\bfetch\s*\(/, /XMLHttpRequest/, /WebSocket/, /EventSource/, /sendBeacon/,
    /\bimport\s*\(/, /@import/, /@font-face/, /url\(/];
  for (const f of [...js, 'viewer.css', 'template.html', 'dashboard.css', 'dashboard.html', 'diff.html']) {
    const src = read(f);
    for (const re of bad) {
      if (FETCHES.has(f) && String(re) === String(/\bfetch\s*\(/)) continue;
      assert.doesNotMatch(src, re, `${f}: ${re}`);
    }
  }
});

test('the dashboard fetches in one place, only URLs of its own API', () => {
  const src = code('dashboard.js');
  const fetches = src.match(/\bfetch\s*\(/g) || [];
  assert.equal(fetches.length, 1, 'one fetch call');
  assert.match(src, /global\.fetch\(url, \{ credentials: 'same-origin'/);
  const calls = [...src.matchAll(/getJSON\(([^)]{0,40})/g)].map((m) => m[1]);
  assert.ok(calls.length >= 4, calls.join(' | '));
  for (const arg of calls) {
    if (arg === 'url') continue;    // the definition
    assert.match(arg, /^R\.apiUrl\(/, `getJSON(${arg}...): build API URLs with ReqprofRoutes.apiUrl`);
  }
  // Links go to the dashboard's own pages only.
  for (const m of src.matchAll(/\.href = ([^;]+);/g)) {
    assert.match(m[1], /^(hashOf\(|routeHash\(|R\.reportUrl\()/, m[1]);
  }
});

test('sources can be inlined: nothing closes their element', () => {
  for (const f of js) assert.doesNotMatch(read(f), /<\/script|<!--/i, f);
  assert.doesNotMatch(read('viewer.css'), /<\/style|<!--/i);
  assert.doesNotMatch(read('dashboard.css'), /<\/style|<!--/i);
});

test('the models need no DOM', () => {
  assert.doesNotMatch(code('model.js'), /\bdocument\b|\bwindow\b/);
  assert.doesNotMatch(code('diff.js'), /\bdocument\b|\bwindow\b/);
  assert.doesNotMatch(code('routes.js'), /\bdocument\b|\bwindow\b|\blocation\b/);
});
