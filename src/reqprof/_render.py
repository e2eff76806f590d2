"""Reports as bytes to send or store: the formats a request may ask for
(``?profile_format=``) and the HTML page, with a plain fallback page when
the viewer cannot be used."""
from __future__ import annotations

import html
import logging
from typing import Any, NamedTuple, Optional

from ._logging import RateLimited


class Format(NamedTuple):
    method: str                 #: the Report method that writes it
    content_type: str
    disposition: Optional[str]  #: Content-Disposition, for downloads


#: ``profile_format`` -> how it is written and served. A format is served
#: only when the installed Report has its method.
FORMATS: dict[str, Format] = {
    "html": Format("to_html", "text/html; charset=utf-8", None),
    "json": Format("to_json", "application/json", None),
    "text": Format("to_text", "text/plain; charset=utf-8", None),
    "collapsed": Format("to_collapsed", "text/plain; charset=utf-8", None),
    "speedscope": Format("to_speedscope", "application/json",
                         'attachment; filename="profile.speedscope.json"'),
    "pprof": Format("to_pprof", "application/octet-stream",
                    'attachment; filename="profile.pb.gz"'),
}


#: The app's response headers a report does not keep: they describe the
#: replaced body, or would stop a browser from showing the report
#: (redirects, downloads, scripts blocked by a CSP). Lower case.
REPLACED_HEADERS = frozenset({
    "content-type", "content-length", "content-encoding", "transfer-encoding",
    "etag", "last-modified", "location", "refresh", "content-disposition",
    "content-range", "accept-ranges", "content-security-policy",
    "content-security-policy-report-only", "cache-control", "expires",
    "x-content-type-options", "trailer", "content-md5", "digest",
})


def report_headers(spec: Format, length: int) -> list[tuple[str, str]]:
    """The headers a report is served with (after the app's own headers
    that :data:`REPLACED_HEADERS` does not name)."""
    headers = [("content-type", spec.content_type), ("content-length", str(length)),
               ("cache-control", "no-store"), ("x-content-type-options", "nosniff")]
    if spec.disposition:
        headers.append(("content-disposition", spec.disposition))
    return headers


def render(report: Any, fmt: str, failures: Optional[RateLimited] = None) -> bytes:
    """The report in format ``fmt`` (a key of :data:`FORMATS`), written as
    bytes by C (the HTML falls back to a plain page when the viewer fails).
    Raises what the writer raises."""
    if fmt != "html":
        return report.to_bytes(fmt)
    try:
        return report.to_bytes("html")
    except NotImplementedError:
        pass
    except Exception as exc:
        if failures is not None:
            failures.log("html", logging.ERROR,
                         "reqprof: the HTML viewer failed (%s: %s); sending the text report "
                         "as HTML", type(exc).__name__, exc)
    return _plain_page(report).encode("utf-8", "replace")


def _plain_page(report: Any) -> str:
    """A plain HTML page around the text tree, for when the viewer fails."""
    meta = dict(getattr(report, "meta", {}) or {})
    title = f"reqprof: {meta.get('method', '')} {meta.get('path', '')}".strip()
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in meta.items())
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font:14px sans-serif;margin:1.5em}th{text-align:left;padding-right:1em}"
            "pre{font:13px monospace}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table>{rows}</table>"
            f"<pre>{html.escape(report.to_text())}</pre></body></html>\n")
