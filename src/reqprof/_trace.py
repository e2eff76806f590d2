"""Links to OpenTelemetry traces: the span active when a request starts
gives its report ``trace_id`` and ``span_id`` (hex, as OpenTelemetry
writes them), which the log line, the store and the pushed samples carry;
the span gets the attribute ``pyroscope.profile.id`` (its span id, as
Pyroscope's span profiles expect).

OpenTelemetry is never imported here: an app that has a span active has
imported ``opentelemetry.trace`` already, so looking it up in sys.modules
costs nothing when it is not installed or not used.
"""
from __future__ import annotations

import sys
from typing import Callable, Optional

#: The span attribute Pyroscope's trace-to-profile links read.
PROFILE_ID_ATTRIBUTE = "pyroscope.profile.id"


def active_span() -> Optional[tuple[str, str]]:
    """(trace_id, span_id) of the span active now, or None; sets the
    span's ``pyroscope.profile.id``. Never raises."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        span = trace.get_current_span()
        context = span.get_span_context()
        if not context.is_valid:
            return None
        trace_id = format(context.trace_id, "032x")
        span_id = format(context.span_id, "016x")
        if span.is_recording():
            span.set_attribute(PROFILE_ID_ATTRIBUTE, span_id)
        return trace_id, span_id
    except Exception:   # a broken or foreign tracer: no link, the request goes on
        return None


def describing(describe: Callable[[], dict], ids: tuple[str, str]) -> Callable[[], dict]:
    """``describe`` with the trace and span ids added."""
    def with_ids() -> dict:
        meta = describe()
        meta["trace_id"], meta["span_id"] = ids
        return meta
    return with_ids
