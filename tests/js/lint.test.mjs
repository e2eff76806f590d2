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

test('no network: no URL, fetch, XHR, WebSocket, import or font load', () => {
  const bad = [/https?:\/\//, /\bfetch\s*\(/, /XMLHttpRequest/, /WebSocket/, /EventSource/, /sendBeacon/,
    /\bimport\s*\(/, /@import/, /@font-face/, /url\(/];
  for (const f of [...js, 'viewer.css', 'template.html']) {
    const src = read(f);
    for (const re of bad) assert.doesNotMatch(src, re, `${f}: ${re}`);
  }
});

test('sources can be inlined: nothing closes their element', () => {
  for (const f of js) assert.doesNotMatch(read(f), /<\/script|<!--/i, f);
  assert.doesNotMatch(read('viewer.css'), /<\/style|<!--/i);
});

test('model.js needs no DOM', () => {
  assert.doesNotMatch(code('model.js'), /\bdocument\b|\bwindow\b/);
});
