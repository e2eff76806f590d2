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
"""
from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources

__all__ = ["load_template", "render_page", "script_safe_json", "dashboard_page", "JS_FILES",
           "CSS_FILES"]

#: The viewer's scripts, in the order they run (each one uses the ones before).
JS_FILES = ("model.js", "views.js", "tree.js", "flame.js", "table.js", "app.js")
CSS_FILES = ("viewer.css",)

_CSP = "__REQPROF_CSP__"
_CSS = "__REQPROF_CSS__"
_JS = "__REQPROF_JS__"
_DATA = "__REQPROF_PROFILE_JSON__"


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


@functools.lru_cache(maxsize=None)
def load_template() -> tuple[str, str]:
    """The report page before and after the profile JSON, with the viewer's
    CSS and JS inlined and a CSP pinning them by hash. Cached."""
    css = "\n".join(_read(name) for name in CSS_FILES)
    js = "\n".join(_read(name) for name in JS_FILES)
    _check_inline(css, "style")
    _check_inline(js, "script")
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src " + _sha256(js),
            "style-src " + _sha256(css),
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )
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


def dashboard_page() -> tuple[str, str]:
    """The dashboard's page (self-contained HTML) and its
    Content-Security-Policy. A plain route table until the full dashboard
    page is built."""
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<title>reqprof dashboard</title></head><body><h1>reqprof dashboard</h1>"
            "<p>The route table is at <a href=/api/routes>/api/routes</a>.</p></body></html>")
    return page, "default-src 'none'; base-uri 'none'; form-action 'none'"
