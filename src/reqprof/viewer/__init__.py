"""The HTML report's viewer: hand-written JS and CSS, inlined into one page.

The sources live next to this file (``template.html``, ``viewer.css`` and
the ``*.js`` files, in load order below) and are read once with
importlib.resources. ``load_template()`` returns the page split at the
place where the profile JSON goes; a writer emits ``head + json + tail``.

The JSON goes inside ``<script type="application/json">``. It must be
script-safe: ``<``, ``>``, ``&``, U+2028 and U+2029 written as ``\\u``
escapes (the JSON writer does this for every string), so the data can never
close the element. The viewer reads it with ``JSON.parse`` and inserts every
string as text.

The Content-Security-Policy allows nothing but the page's own inline script
and style, pinned by their SHA-256 hashes: no network, no other script.

Two more pages are built from the same sources: the dashboard's
(``dashboard_page()``: ``dashboard.html``, the viewer's model and views, the
differential view and ``dashboard.js``; its CSP also lets it read its own
origin's JSON API, and nothing else) and the differential page of
``reqprof diff`` (``diff_page()``: ``diff.html`` with both profiles
embedded as the report embeds one).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
from importlib import resources

__all__ = ["load_template", "render_page", "script_safe_json", "dashboard_page", "diff_page",
           "JS_FILES", "CSS_FILES", "DASHBOARD_JS_FILES", "DIFF_JS_FILES", "DASHBOARD_CSS_FILES"]

#: The viewer's scripts, in the order they run (each one uses the ones before).
JS_FILES = ("model.js", "views.js", "tree.js", "flame.js", "table.js", "app.js")
CSS_FILES = ("viewer.css",)
#: The dashboard's: the report's model and views without its page (app.js),
#: the differential model and view, the dashboard's model and page.
DASHBOARD_JS_FILES = ("model.js", "views.js", "tree.js", "flame.js", "table.js", "diff.js",
                      "diffview.js", "routes.js", "dashboard.js")
#: The page of ``reqprof diff``.
DIFF_JS_FILES = ("model.js", "views.js", "flame.js", "diff.js", "diffview.js", "diffpage.js")
DASHBOARD_CSS_FILES = ("viewer.css", "dashboard.css")

_CSP = "__REQPROF_CSP__"
_CSS = "__REQPROF_CSS__"
_JS = "__REQPROF_JS__"
_DATA = "__REQPROF_PROFILE_JSON__"
_DIFF_DATA = "__REQPROF_DIFF_JSON__"


def _read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _check_inline(text: str, element: str) -> None:
    lowered = text.lower()
    for bad in ("</" + element, "<!--"):
        if bad in lowered:
            raise ValueError(f"viewer source contains {bad!r}, which would end its <{element}> element")


def _csp(js: str, css: str, *extra: str) -> str:
    """A page's Content-Security-Policy: its inline script and style by
    hash, nothing else unless ``extra`` directives allow it."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + _sha256(js),
            "style-src " + _sha256(css),
            "img-src data:",
            *extra,
            "base-uri 'none'",
            "form-action 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


@functools.lru_cache(maxsize=None)
def load_template() -> tuple[str, str]:
    """The report page before and after the profile JSON, with the viewer's
    CSS and JS inlined and a CSP pinning them by hash. Cached."""
    css = "\n".join(_read(name) for name in CSS_FILES)
    js = "\n".join(_read(name) for name in JS_FILES)
    _check_inline(css, "style")
    _check_inline(js, "script")
    csp = _csp(js, css)
    page = _read("template.html")
    for placeholder in (_CSP, _CSS, _JS, _DATA):
        if page.count(placeholder) != 1:
            raise ValueError(f"viewer template must contain {placeholder} exactly once")
    # Fill the data placeholder last, and split on it, so that nothing in the
    # CSS or JS can be mistaken for it.
    head, tail = page.split(_DATA)
    head = head.replace(_CSP, csp).replace(_CSS, css)
    tail = tail.replace(_JS, js)
    return head, tail


_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_safe_json(json_text: str) -> str:
    """A JSON document made safe to embed in a <script> element: ``<``,
    ``>``, ``&``, U+2028 and U+2029 as ``\\u`` escapes. Outside strings a
    JSON document has none of these characters, so the value is unchanged."""
    return json_text.translate(_SCRIPT_SAFE)


def render_page(json_text: str) -> str:
    """The HTML report for a profile JSON document (docs/json-schema.md), in
    Python; ``Report.to_html()`` writes the same page in C."""
    head, tail = load_template()
    return head + script_safe_json(json_text) + tail


def _inline_page(template: str, js_files: tuple[str, ...], css_files: tuple[str, ...],
                 *extra_csp: str) -> tuple[str, str]:
    """A page template with its scripts and styles inlined and its CSP
    filled in (the data placeholder, if any, left in place), and the CSP."""
    css = "\n".join(_read(name) for name in css_files)
    js = "\n".join(_read(name) for name in js_files)
    _check_inline(css, "style")
    _check_inline(js, "script")
    csp = _csp(js, css, *extra_csp)
    page = _read(template)
    for placeholder in (_CSP, _CSS, _JS):
        if page.count(placeholder) != 1:
            raise ValueError(f"{template} must contain {placeholder} exactly once")
    # The JS last: nothing in the CSS or the JS can be mistaken for a placeholder.
    head, sep, tail = page.partition(_JS)
    head = head.replace(_CSP, csp).replace(_CSS, css)
    return head + js + tail, csp


@functools.lru_cache(maxsize=None)
def dashboard_page() -> tuple[str, str]:
    """The dashboard's page (self-contained HTML: the viewer's model and
    views, the differential view, the dashboard) and its
    Content-Security-Policy, which also allows requests to the page's own
    origin (its JSON API) and nothing else. Cached."""
    return _inline_page("dashboard.html", DASHBOARD_JS_FILES, DASHBOARD_CSS_FILES,
                        "connect-src 'self'")


@functools.lru_cache(maxsize=None)
def _diff_template() -> tuple[str, str]:
    page, _csp_text = _inline_page("diff.html", DIFF_JS_FILES, DASHBOARD_CSS_FILES)
    if page.count(_DIFF_DATA) != 1:
        raise ValueError(f"diff.html must contain {_DIFF_DATA} exactly once")
    head, tail = page.split(_DIFF_DATA)
    return head, tail


def diff_page(before_json: str, after_json: str, before_label: str = "before",
              after_label: str = "after") -> str:
    """The self-contained page of ``reqprof diff``: the differential view
    of the profile ``after_json`` against ``before_json`` (two profile JSON
    documents, docs/json-schema.md). Its CSP allows no request."""
    head, tail = _diff_template()
    labels = json.dumps({"before": before_label, "after": after_label}, ensure_ascii=False)
    data = ('{"version":1,"labels":' + labels + ',"before":' + before_json.strip() +
            ',"after":' + after_json.strip() + "}")
    return head + script_safe_json(data) + tail
