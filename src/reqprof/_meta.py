"""What reports and log lines say about a request, whatever the framework:
scalars only, text valid UTF-8 and bounded whatever the client or the
server sent, and a query string whose values are hidden except those of
reqprof's own parameters (no app secret reaches a report or a log)."""
from __future__ import annotations

from typing import Any, Optional, Union
from urllib.parse import parse_qsl

#: Query parameters that belong to reqprof: the only ones whose values a
#: report or a log line shows.
OWN_PARAMS = frozenset({"profile", "profile_format"})
#: Longest path (and route) kept in a report's metadata, in characters.
MAX_PATH = 2000


def clean(value: Any, limit: int) -> Optional[str]:
    """``value`` as valid UTF-8 text (lone surrogates, which some servers use
    for undecodable bytes, spelled ``\\udcxx``) of at most ``limit``
    characters (cut ones end with ``…``)."""
    if value is None:
        return None
    if type(value) is str and len(value) <= limit and value.isascii():
        return value    # (what the rest would return, without the copies)
    if not isinstance(value, str):
        value = str(value)
    value = value[:limit + 1]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(value) > limit:
        value = value[:limit - 1] + "…"
    return value


def redact_query(query: Union[bytes, str]) -> str:
    """The query string with every value replaced by ``*`` except those of
    reqprof's own parameters (``profile``, ``profile_format``), so reports
    and logs never hold the app's query values (tokens, emails, ...)."""
    text = bytes(query).decode("latin-1") if not isinstance(query, str) else query
    if "%" in text or "+" in text or ";" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
    else:   # parse_qsl's result, with nothing to decode (and no ";" for old 3.9s to split on)
        pairs = [field.partition("=")[::2] for field in text.split("&") if field]
    parts = []
    size = 0
    for key, value in pairs:
        part = f"{key}={value}" if key in OWN_PARAMS else f"{key}=*"
        parts.append(part)
        size += len(part) + 1
        if size > 500:
            break
    return clean("&".join(parts)[:500], 500) or ""


def request_label(method: Any, path: Any) -> Optional[str]:
    """What a profiled request is called while it runs (``GET /export``):
    its method and path as the report's metadata gives them; None when they
    cannot be read."""
    try:
        return f"{clean(method, 40) or ''} {clean(path, MAX_PATH) or ''}".strip() or "request"
    except Exception:
        return None


def describe_exception(exc: BaseException) -> str:
    """``"Type: message"``: how reports name an exception."""
    return f"{type(exc).__name__}: {exc}"


def request_meta(trigger: str, method: Any, path: Any, route: Any, query: Union[bytes, str],
                 status: Optional[int], content_type: Any, response_bytes: int,
                 http_version: Any, exception: Union[BaseException, str, None]) -> dict:
    """The report's ``meta`` for a request (``exception`` already described
    as ``"Type: message"``, or the exception)."""
    meta: dict = {
        "trigger": trigger,
        "method": clean(method, 40),
        "path": clean(path, MAX_PATH),
        "route": clean(route, MAX_PATH),
        "query": redact_query(query),
        "status": status,
        "content_type": clean(content_type, 200),
        "response_bytes": response_bytes,
        "http_version": clean(http_version, 10),
    }
    if exception is not None:
        meta["exception"] = clean(exception if isinstance(exception, str)
                                  else describe_exception(exception), 1000)
    return meta
