"""reqprof: a per-request sampling profiler for Python web apps.

The engine is the C extension ``reqprof._core``; everything that needs it is
imported lazily so that ``reqprof.config`` works (and a middleware can stay
a passthrough) when the extension cannot load.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .asgi import ProfilingMiddleware
    from .config import ConfigError, Settings
    from .profiler import Profiler
    from .report import Report

__all__ = [
    "ConfigError",
    "Profiler",
    "ProfilingMiddleware",
    "Report",
    "Settings",
    "__version__",
]

_LAZY = {
    "Profiler": "profiler",
    "Report": "report",
    "ProfilingMiddleware": "asgi",
    "Settings": "config",
    "ConfigError": "config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reqprof' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
