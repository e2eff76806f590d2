"""Settings: the environment variables, a `.env` file, keyword arguments.

Precedence, highest first: keyword arguments (``None`` means "not given"),
the real environment, the `.env` file, the defaults. Every value is checked
when the settings are built; a bad one raises :class:`ConfigError` naming the
variable, the value and what is accepted. Nothing here imports the C
extension, so ``import reqprof.config`` always works.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Optional, Union

__all__ = ["ConfigError", "Settings", "Loaded", "load", "MAX_DEPTH_LIMIT", "INTERVAL_RANGE",
           "ASYNC_MODES", "MAX_CONCURRENT_LIMIT", "TOKEN_LENGTH", "MANUAL_TIMEOUT_RANGE",
           "OUTPUT_MAX_MB_LIMIT", "OVERHEAD_BUDGET_LIMIT"]

#: The largest accepted ``PROFILING_LOOP_BLOCK_MS``.
LOOP_BLOCK_MS_LIMIT = 600000
#: The largest accepted ``PROFILING_MAX_DEPTH``.
MAX_DEPTH_LIMIT = 1000
#: The largest accepted ``PROFILING_MAX_CONCURRENT``.
MAX_CONCURRENT_LIMIT = 1000
#: Accepted ``PROFILING_TOKEN`` length, in characters.
TOKEN_LENGTH = (16, 256)
#: Accepted ``PROFILING_INTERVAL`` range, in seconds (100 µs to 1 s).
INTERVAL_RANGE = (0.0001, 1.0)
#: The largest accepted ``PROFILING_OVERHEAD_BUDGET``, in percent of one
#: core (any number above 0 up to it).
OVERHEAD_BUDGET_LIMIT = 100.0
#: Accepted ``PROFILING_MANUAL_TIMEOUT`` range, in seconds.
MANUAL_TIMEOUT_RANGE = (0.1, 3600.0)
#: The largest accepted ``PROFILING_OUTPUT_MAX_MB``.
OUTPUT_MAX_MB_LIMIT = 1 << 20
#: The largest accepted ``PROFILING_SLOW_MS`` (a day) and
#: ``PROFILING_MAX_ROUTES``, and the accepted ``PROFILING_STORE_DAYS``.
SLOW_MS_LIMIT = 86_400_000.0
MAX_ROUTES_LIMIT = 100_000
STORE_DAYS_RANGE = (0.01, 3650.0)
#: Accepted ``PROFILING_PUSH_INTERVAL`` range (seconds) and the largest
#: ``PROFILING_PUSH_MAX_MB``.
PUSH_INTERVAL_RANGE = (1.0, 3600.0)
PUSH_MAX_MB_LIMIT = 1024
#: ``PROFILING_LABELS``: at most this many (Pyroscope takes 30 labels per
#: series; reqprof sets up to 8 of its own), names as Prometheus has them,
#: values of at most LABEL_VALUE_MAX characters.
MAX_LABELS = 20
LABEL_VALUE_MAX = 200
#: Label names reqprof sets itself.
RESERVED_LABELS = frozenset({"service_name", "route", "method", "status_class", "request_id",
                             "trace_id", "span_id", "pyroscope_spy"})
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: What a label value or service name may not hold: Pyroscope's ``name``
#: query parameter uses these characters as syntax.
_LABEL_VALUE_BAD = re.compile(r'[{}=,"\\\x00-\x20\x7f]')
#: Accepted ``PROFILING_ASYNC_MODE`` values.
ASYNC_MODES = ("enabled", "disabled", "strict")

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"\+?[0-9]+")


class ConfigError(ValueError):
    """A setting has a value reqprof does not accept.

    ``variable`` is the environment variable (or keyword argument) name,
    ``value`` the value as given, ``accepted`` what would have been accepted
    and ``source`` where the value came from.
    """

    def __init__(self, variable: str, value: object, accepted: str, source: str = "",
                 secret: bool = False) -> None:
        if secret:      # never repeat a secret in a message (or a log line)
            size = len(value) if isinstance(value, (str, bytes)) else 0
            value = f"<hidden, {size} characters>"
        self.variable = variable
        self.value = value
        self.accepted = accepted
        self.source = source
        where = f" (from {source})" if source else ""
        shown = value if secret else repr(value)
        if len(shown) > 200:    # a huge value: enough of it to recognise
            shown = f"{shown[:160]}... ({len(value) if isinstance(value, str) else '?'} characters)"
        super().__init__(f"{variable}={shown}{where} is not valid: expected {accepted}")


# -- converters: str (from the environment) or a typed value (keyword) ------
# Each raises ValueError when the value is not accepted.

def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError


def _to_switch(value: object) -> bool:
    """The master switch: a boolean, and an empty value means off (a
    template's ``ENABLE_PROFILING=`` line)."""
    if isinstance(value, str) and not value.strip():
        return False
    return _to_bool(value)


def _to_number(value: object) -> float:
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise ValueError
        number = float(text)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError
    if not math.isfinite(number):
        raise ValueError
    return number


def _to_rate(value: object) -> float:
    rate = _to_number(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError
    return rate


def _to_interval(value: object) -> float:
    interval = _to_number(value)
    low, high = INTERVAL_RANGE
    if not low <= interval <= high:
        raise ValueError
    return interval


def _to_budget(value: object) -> Optional[float]:
    """Unset (None, or empty) means no budget."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    percent = _to_number(value)
    if not 0.0 < percent <= OVERHEAD_BUDGET_LIMIT:
        raise ValueError
    return percent


def _to_timeout(value: object) -> float:
    timeout = _to_number(value)
    low, high = MANUAL_TIMEOUT_RANGE
    if not low <= timeout <= high:
        raise ValueError
    return timeout


def _to_int(value: object, low: int, high: int) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not _INTEGER.fullmatch(text) or len(text) > 20:
            raise ValueError
        number = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ValueError
    if not low <= number <= high:
        raise ValueError
    return number


def _to_depth(value: object) -> int:
    return _to_int(value, 1, MAX_DEPTH_LIMIT)


def _to_concurrent(value: object) -> int:
    return _to_int(value, 1, MAX_CONCURRENT_LIMIT)


def _to_output_mb(value: object) -> int:
    return _to_int(value, 1, OUTPUT_MAX_MB_LIMIT)


def _to_slow_ms(value: object) -> Optional[float]:
    """Unset (None, or empty) means every sampled report is kept."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    ms = _to_number(value)
    if not 0.0 <= ms <= SLOW_MS_LIMIT:
        raise ValueError
    return ms


def _to_loop_block_ms(value: object) -> int:
    return _to_int(value, 0, LOOP_BLOCK_MS_LIMIT)


def _to_routes(value: object) -> int:
    return _to_int(value, 1, MAX_ROUTES_LIMIT)


def _to_days(value: object) -> float:
    days = _to_number(value)
    if not STORE_DAYS_RANGE[0] <= days <= STORE_DAYS_RANGE[1]:
        raise ValueError
    return days


def _to_file(value: object) -> Optional[str]:
    """A file path; empty means not set."""
    return _to_dir(value)


def _to_token(value: object) -> Optional[str]:
    """A shared secret sent in a header: visible ASCII only (no spaces or
    control characters, which headers cannot carry reliably)."""
    if value is None:
        return None
    if isinstance(value, str):
        token = value.strip()
        if not token:
            return None     # PROFILING_TOKEN= means "not set"
        low, high = TOKEN_LENGTH
        if low <= len(token) <= high and all("!" <= c <= "~" for c in token):
            return token
    raise ValueError


def _to_mode(value: object) -> str:
    if isinstance(value, str):
        mode = value.strip().lower()
        if mode in ASYNC_MODES:
            return mode
    raise ValueError


def _to_dir(value: object) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str):
            path = path.strip()
            if not path:
                return None     # PROFILING_OUTPUT_DIR= means "not set"
            if "\0" not in path:
                return os.path.expanduser(path)
    raise ValueError


def _to_url(value: object) -> Optional[str]:
    """An http(s) URL with a host (empty means not set)."""
    if value is None:
        return None
    if isinstance(value, str):
        url = value.strip()
        if not url:
            return None
        from urllib.parse import urlsplit
        try:
            parts = urlsplit(url)
            parts.port     # a bad port raises here
        except ValueError:
            raise ValueError from None
        if parts.scheme in ("http", "https") and parts.hostname and not parts.query \
                and not parts.fragment and not parts.username and len(url) <= 2000 \
                and not any(c.isspace() or ord(c) < 0x20 for c in url):
            return url.rstrip("/")
    raise ValueError


def _label_value(text: str) -> str:
    if not text or len(text) > LABEL_VALUE_MAX or _LABEL_VALUE_BAD.search(text):
        raise ValueError
    return text


def _to_service(value: object) -> Optional[str]:
    """Empty means the default (the app's module name, else ``reqprof``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return _label_value(value.strip())
    raise ValueError


def _to_labels(value: object) -> tuple:
    """``name=value,name=value`` (or a mapping): sorted (name, value) pairs."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = []
        for part in value.split(","):
            if not part.strip():
                continue
            name, eq, text = part.partition("=")
            if not eq:
                raise ValueError
            items.append((name.strip(), text.strip()))
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (tuple, list)):
        items = [tuple(pair) for pair in value]
    else:
        raise ValueError
    seen = {}
    for item in items:
        if len(item) != 2 or not all(isinstance(x, str) for x in item):
            raise ValueError
        name, text = item
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__") or len(name) > 100 \
                or name in RESERVED_LABELS or name in seen:
            raise ValueError
        seen[name] = _label_value(text)
    if len(seen) > MAX_LABELS:
        raise ValueError
    return tuple(sorted(seen.items()))


def _to_push_interval(value: object) -> float:
    seconds = _to_number(value)
    if not PUSH_INTERVAL_RANGE[0] <= seconds <= PUSH_INTERVAL_RANGE[1]:
        raise ValueError
    return seconds


def _to_push_mb(value: object) -> int:
    return _to_int(value, 1, PUSH_MAX_MB_LIMIT)


def _to_auth(value: object) -> Optional[str]:
    """``user:password`` (basic) or a bearer token: visible ASCII (empty
    means not set)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        auth = value.strip()
        if len(auth) <= 4096 and all("!" <= c <= "~" for c in auth):
            return auth
    raise ValueError


def _to_tenant(value: object) -> Optional[str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        tenant = value.strip()
        if len(tenant) <= 150 and all("!" <= c <= "~" for c in tenant):
            return tenant
    raise ValueError


@dataclass(frozen=True)
class _Var:
    field: str
    env: str
    accepted: str
    convert: Callable[[object], Any]
    secret: bool = False


_BOOLEAN = "a boolean: 1/true/t/yes/y/on or 0/false/f/no/n/off (any case)"
_VARS = (
    _Var("enabled", "ENABLE_PROFILING", _BOOLEAN + " (empty means off)", _to_switch),
    _Var("sample_rate", "PROFILING_SAMPLE_RATE", "a number from 0.0 to 1.0", _to_rate),
    _Var("max_depth", "PROFILING_MAX_DEPTH", f"an integer from 1 to {MAX_DEPTH_LIMIT}", _to_depth),
    _Var("async_mode", "PROFILING_ASYNC_MODE", "one of enabled, disabled, strict", _to_mode),
    _Var("interval", "PROFILING_INTERVAL",
         f"a number of seconds from {INTERVAL_RANGE[0]} to {INTERVAL_RANGE[1]}", _to_interval),
    _Var("overhead_budget", "PROFILING_OVERHEAD_BUDGET",
         f"a percent of one core, a number > 0 and <= {OVERHEAD_BUDGET_LIMIT:g} "
         "(empty means no budget)", _to_budget),
    _Var("output_dir", "PROFILING_OUTPUT_DIR", "a directory path (empty means not set)", _to_dir),
    _Var("output_max_mb", "PROFILING_OUTPUT_MAX_MB",
         f"an integer number of megabytes from 1 to {OUTPUT_MAX_MB_LIMIT}", _to_output_mb),
    _Var("manual", "PROFILING_MANUAL", _BOOLEAN, _to_bool),
    _Var("token", "PROFILING_TOKEN",
         f"{TOKEN_LENGTH[0]} to {TOKEN_LENGTH[1]} visible ASCII characters, no spaces "
         "(empty means not set)", _to_token, secret=True),
    _Var("max_concurrent", "PROFILING_MAX_CONCURRENT",
         f"an integer from 1 to {MAX_CONCURRENT_LIMIT}", _to_concurrent),
    _Var("manual_timeout", "PROFILING_MANUAL_TIMEOUT",
         f"a number of seconds from {MANUAL_TIMEOUT_RANGE[0]:g} to {MANUAL_TIMEOUT_RANGE[1]:g}",
         _to_timeout),
    _Var("slow_ms", "PROFILING_SLOW_MS",
         f"a number of milliseconds from 0 to {SLOW_MS_LIMIT:g} (empty means not set)",
         _to_slow_ms),
    _Var("loop_block_ms", "PROFILING_LOOP_BLOCK_MS",
         f"an integer number of milliseconds from 0 to {LOOP_BLOCK_MS_LIMIT} (0 means off)",
         _to_loop_block_ms),
    _Var("max_routes", "PROFILING_MAX_ROUTES", f"an integer from 1 to {MAX_ROUTES_LIMIT}",
         _to_routes),
    _Var("store", "PROFILING_STORE", "a file path (empty means not set)", _to_file),
    _Var("store_max_mb", "PROFILING_STORE_MAX_MB",
         f"an integer number of megabytes from 1 to {OUTPUT_MAX_MB_LIMIT}", _to_output_mb),
    _Var("store_days", "PROFILING_STORE_DAYS",
         f"a number of days from {STORE_DAYS_RANGE[0]:g} to {STORE_DAYS_RANGE[1]:g}", _to_days),
    _Var("pyroscope_url", "PROFILING_PYROSCOPE_URL",
         "an http:// or https:// URL with a host and no query (empty means not set)", _to_url),
    _Var("service_name", "PROFILING_SERVICE_NAME",
         f"1 to {LABEL_VALUE_MAX} characters without spaces or any of {{}}=,\"\\ "
         "(empty means the default)", _to_service),
    _Var("labels", "PROFILING_LABELS",
         f"up to {MAX_LABELS} name=value pairs separated by commas: names "
         "[A-Za-z_][A-Za-z0-9_]* not starting with __ nor one reqprof sets (route, method, "
         f"status_class, ...), values of 1 to {LABEL_VALUE_MAX} characters without spaces or "
         "any of {}=,\"\\", _to_labels),
    _Var("push_interval", "PROFILING_PUSH_INTERVAL",
         f"a number of seconds from {PUSH_INTERVAL_RANGE[0]:g} to {PUSH_INTERVAL_RANGE[1]:g}",
         _to_push_interval),
    _Var("pyroscope_auth", "PROFILING_PYROSCOPE_AUTH",
         "user:password (basic auth) or a bearer token: visible ASCII characters, no spaces "
         "(empty means not set)", _to_auth, secret=True),
    _Var("pyroscope_tenant", "PROFILING_PYROSCOPE_TENANT",
         "1 to 150 visible ASCII characters, no spaces (empty means not set)", _to_tenant),
    _Var("push_max_mb", "PROFILING_PUSH_MAX_MB",
         f"an integer number of megabytes from 1 to {PUSH_MAX_MB_LIMIT}", _to_push_mb),
)
_BY_FIELD = {v.field: v for v in _VARS}
_BY_ENV = {v.env: v for v in _VARS}


def _convert(var: _Var, value: object, label: str, source: str) -> Any:
    try:
        return var.convert(value)
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(label, value, var.accepted, source, secret=var.secret) from None


@dataclass(frozen=True)
class Settings:
    """Effective profiling settings. Built with :meth:`from_env` (or directly,
    with the same checks: ``Settings(sample_rate=2)`` raises ConfigError)."""

    enabled: bool = False
    """``ENABLE_PROFILING``: master switch; off means a pure passthrough."""
    sample_rate: float = 0.1
    """``PROFILING_SAMPLE_RATE``: fraction of requests profiled automatically."""
    max_depth: int = 50
    """``PROFILING_MAX_DEPTH``: call-tree depth cap, counted from the app's entry."""
    async_mode: str = "enabled"
    """``PROFILING_ASYNC_MODE``: ``enabled``, ``disabled`` or ``strict``."""
    interval: float = 0.001
    """``PROFILING_INTERVAL``: seconds between samples."""
    overhead_budget: Optional[float] = None
    """``PROFILING_OVERHEAD_BUDGET``: when set, the percent of one core the
    engine's own threads may use; past it the sampling interval is
    lengthened (up to 64 times, and 1 s), and reports say so."""
    output_dir: Optional[str] = None
    """``PROFILING_OUTPUT_DIR``: where auto-sampled reports are also written."""
    output_max_mb: int = 256
    """``PROFILING_OUTPUT_MAX_MB``: the reports in ``output_dir`` take at most
    this many megabytes."""
    manual: bool = True
    """``PROFILING_MANUAL``: whether ``?profile=1`` may ask for a report."""
    token: Optional[str] = field(default=None, repr=False)
    """``PROFILING_TOKEN``: when set, ``?profile=1`` also needs the header
    ``X-Profiling-Token`` with this value (never shown in logs or reprs)."""
    max_concurrent: int = 4
    """``PROFILING_MAX_CONCURRENT``: profiling sessions at once, at most."""
    manual_timeout: float = 30.0
    """``PROFILING_MANUAL_TIMEOUT``: seconds after which a ``?profile=1``
    request's profile ends and its report is sent, whatever the app still
    does (a stream is cut)."""
    slow_ms: Optional[float] = None
    """``PROFILING_SLOW_MS``: when set, a sampled request keeps its report
    (logged, stored) only if it took at least this long, answered 5xx or
    raised; the others only feed the per-route aggregates."""
    loop_block_ms: int = 50
    """``PROFILING_LOOP_BLOCK_MS``: a request that held its event loop this
    long in one stretch (ran without awaiting, keeping every other request
    waiting) says so in its report and log line; 0 turns it off."""
    max_routes: int = 500
    """``PROFILING_MAX_ROUTES``: routes aggregated apart, per process; the
    others share ``[other routes]``."""
    store: Optional[str] = None
    """``PROFILING_STORE``: the SQLite file of aggregates and kept reports."""
    store_max_mb: int = 512
    """``PROFILING_STORE_MAX_MB``: the store's size, at most."""
    store_days: float = 7.0
    """``PROFILING_STORE_DAYS``: what the store keeps, at most (days)."""
    pyroscope_url: Optional[str] = None
    """``PROFILING_PYROSCOPE_URL``: the Pyroscope server profiles are pushed
    to (unset: no push)."""
    service_name: Optional[str] = None
    """``PROFILING_SERVICE_NAME``: the ``service_name`` label (default: the
    app's module name, else ``reqprof``)."""
    labels: tuple = ()
    """``PROFILING_LABELS``: ``name=value,...`` put on every pushed profile."""
    push_interval: float = 15.0
    """``PROFILING_PUSH_INTERVAL``: seconds merged into one pushed profile."""
    pyroscope_auth: Optional[str] = field(default=None, repr=False)
    """``PROFILING_PYROSCOPE_AUTH``: ``user:password`` (basic) or a bearer
    token (never shown in logs or reprs)."""
    pyroscope_tenant: Optional[str] = None
    """``PROFILING_PYROSCOPE_TENANT``: the ``X-Scope-OrgID`` header."""
    push_max_mb: int = 16
    """``PROFILING_PUSH_MAX_MB``: profiles waiting to be pushed take at most
    this many megabytes (the oldest are dropped)."""

    def __post_init__(self) -> None:
        for var in _VARS:
            value = getattr(self, var.field)
            object.__setattr__(self, var.field, _convert(var, value, var.field, ""))

    @classmethod
    def from_env(
        cls,
        environ: Optional[Mapping[str, str]] = None,
        env_file: Union[str, "os.PathLike[str]", None] = ".env",
        **overrides: Any,
    ) -> "Settings":
        """Read the settings from ``environ`` (default ``os.environ``) and
        ``env_file`` (default ``.env`` in the working directory, skipped when
        missing or ``None``). Keyword arguments named like the fields
        (``sample_rate=1.0``) win over both; ``None`` means not given.

        Raises :class:`ConfigError` for a bad value and ``TypeError`` for an
        unknown keyword.
        """
        unknown = sorted(set(overrides) - set(_BY_FIELD))
        if unknown:
            raise TypeError(
                f"unknown setting(s): {', '.join(unknown)}; "
                f"known: {', '.join(v.field for v in _VARS)}")
        loaded = load(environ, env_file, **overrides)
        for error in loaded.errors.values():
            raise error
        return loaded.settings

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (checked like the constructor);
        ``None`` means "keep"."""
        unknown = sorted(set(changes) - set(_BY_FIELD))
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in changes.items():
            if value is not None:
                current[name] = _convert(_BY_FIELD[name], value, name, "keyword argument")
        return type(self)(**current)

    def describe(self) -> str:
        """One line with every setting, as the startup log shows it."""
        out = self.output_dir if self.output_dir is not None else "-"
        if not self.manual:
            manual = "off"
        else:
            manual = "token" if self.token is not None else "open"
        if self.output_dir is not None:
            out += f" output_max_mb={self.output_max_mb}"
        line = (f"sample_rate={self.sample_rate:g} max_depth={self.max_depth} "
                f"async_mode={self.async_mode} interval={self.interval:g}s output_dir={out} "
                f"manual={manual} max_concurrent={self.max_concurrent} "
                f"manual_timeout={self.manual_timeout:g}s")
        if self.overhead_budget is not None:
            line += f" overhead_budget={self.overhead_budget:g}%"
        if self.loop_block_ms != 50:
            line += f" loop_block_ms={self.loop_block_ms}"
        if self.slow_ms is not None:
            line += f" slow_ms={self.slow_ms:g}"
        if self.store is not None:
            line += (f" store={self.store} store_max_mb={self.store_max_mb} "
                     f"store_days={self.store_days:g} max_routes={self.max_routes}")
        if self.pyroscope_url is not None:
            line += (f" pyroscope_url={self.pyroscope_url} push_interval={self.push_interval:g}s"
                     f" push_max_mb={self.push_max_mb}")
            if self.service_name is not None:
                line += f" service_name={self.service_name}"
            if self.labels:
                line += " labels=" + ",".join(f"{k}={v}" for k, v in self.labels)
            if self.pyroscope_tenant is not None:
                line += f" tenant={self.pyroscope_tenant}"
        return line

    def public(self) -> dict[str, Any]:
        """Field name -> value, with the token replaced by whether it is set
        (what logs may show)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["token"] = self.token is not None
        values["pyroscope_auth"] = self.pyroscope_auth is not None
        return values

    @staticmethod
    def variables() -> dict[str, str]:
        """Field name -> environment variable name."""
        return {v.field: v.env for v in _VARS}


@dataclass(frozen=True)
class Unknown:
    """A variable named like reqprof's that reqprof does not know."""

    name: str
    source: str
    suggestion: Optional[str]
    """The known variable it is most likely a misspelling of, if any."""

    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{self.name} (from {self.source}) is not a reqprof setting{hint}"


@dataclass(frozen=True)
class Loaded:
    """What :func:`load` found. ``settings`` holds every valid value, a bad
    one being left at its default; ``errors`` maps a field name (``""`` for
    the `.env` file itself, or an unknown keyword's name) to what was wrong
    with it; ``unknown`` lists the variables that look like reqprof's but
    are not."""

    settings: Settings
    errors: dict[str, ConfigError]
    unknown: tuple[Unknown, ...]


#: Names that say "this variable is meant for reqprof".
_OWN_PREFIXES = ("PROFILING_", "ENABLE_PROF")


def load(
    environ: Optional[Mapping[str, str]] = None,
    env_file: Union[str, "os.PathLike[str]", None] = ".env",
    **overrides: Any,
) -> Loaded:
    """Read the settings like :meth:`Settings.from_env`, but never raise:
    each bad value (and each unknown keyword) is an entry of
    ``Loaded.errors``, so a caller can report all of them at once and tell
    a bad master switch from a bad setting that profiling-off ignores."""
    errors: dict[str, ConfigError] = {}
    for name in sorted(set(overrides) - set(_BY_FIELD)):
        errors[name] = ConfigError(name, overrides.pop(name),
                                   "one of the keyword arguments "
                                   + ", ".join(v.field for v in _VARS), "keyword argument")
    env = os.environ if environ is None else environ
    known = {v.env for v in _VARS}
    from_file: dict[str, tuple[str, str]] = {}
    if env_file is not None:
        try:
            from_file = read_env_file(
                env_file, lambda name: name in known or name.startswith(_OWN_PREFIXES), env)
        except ConfigError as exc:
            errors[_BY_ENV[exc.variable].field if exc.variable in _BY_ENV else ""] = exc

    values: dict[str, Any] = {}
    for var in _VARS:
        given = overrides.get(var.field)
        if given is not None:
            raw, label, source = given, var.field, "keyword argument"
        elif var.env in env:
            raw, label, source = env[var.env], var.env, "the environment"
        elif var.env in from_file:
            raw, source = from_file[var.env]
            label = var.env
        else:
            continue
        try:
            values[var.field] = _convert(var, raw, label, source)
        except ConfigError as exc:
            errors.setdefault(var.field, exc)

    unknown = [Unknown(name, "the environment", _closest(name, known))
               for name in sorted(env) if name.startswith(_OWN_PREFIXES) and name not in known]
    unknown += [Unknown(name, where, _closest(name, known))
                for name, (_, where) in sorted(from_file.items()) if name not in known]
    return Loaded(Settings(**values), errors, tuple(unknown))


def _closest(name: str, known: set) -> Optional[str]:
    """The known variable ``name`` most likely misspells: compared as
    written, without underscores, and with its words in any order
    (``PROFILING_ENABLED`` -> ``ENABLE_PROFILING``)."""
    def forms(text: str) -> tuple[str, ...]:
        words = text.upper().split("_")
        return text.upper(), "".join(words), "_".join(sorted(words))

    best, best_score = None, 0.0
    for candidate in sorted(known):
        score = max(difflib.SequenceMatcher(None, a, b).ratio()
                    for a, b in zip(forms(name), forms(candidate)))
        if score > best_score:
            best, best_score = candidate, score
    return best if best_score >= 0.75 else None


# -- .env files --------------------------------------------------------------

_ASSIGN = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*")
_EXPAND = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_VARS = frozenset({"PROFILING_TOKEN", "PROFILING_PYROSCOPE_AUTH"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "$": "$"}


def read_env_file(
    path: Union[str, "os.PathLike[str]"],
    wanted: Union[set, Callable[[str], bool], None] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> dict[str, tuple[str, str]]:
    """Parse a `.env` file the way python-dotenv does (``KEY=value``,
    ``export KEY=value``, ``#`` comments, single quotes literal, double
    quotes with backslash escapes, values may span lines inside quotes,
    ``${VAR}`` and ``${VAR:-default}`` expanded in unquoted and double-quoted
    values from ``environ`` first, then earlier lines).

    Returns ``{name: (value, "FILE line N")}`` for the names in ``wanted``
    (a set, or a predicate on the name; all names when ``None``). A missing file gives ``{}``; an unreadable one,
    or an unterminated quote on a wanted name, raises ConfigError.
    """
    env = os.environ if environ is None else environ
    fspath = os.fspath(path)
    try:
        with open(fspath, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError("env_file", fspath, f"a readable file ({exc.strerror or exc})") from None
    text = data.decode("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")

    found: dict[str, tuple[str, str]] = {}
    seen: dict[str, str] = {}
    if wanted is None:
        def is_wanted(name: str) -> bool:
            return True
    elif callable(wanted):
        is_wanted = wanted
    else:
        is_wanted = wanted.__contains__

    def expand(value: str) -> str:
        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            got = env.get(name, seen.get(name))
            return got if got else (default or "")
        return _EXPAND.sub(sub, value)

    pos, n = 0, len(text)
    while pos < n:
        eol = text.find("\n", pos)
        if eol < 0:
            eol = n
        m = _ASSIGN.match(text, pos, eol)
        if m is None:       # blank, comment or not an assignment: skip the line
            pos = eol + 1
            continue
        key, start = m.group(1), m.end()
        line = text.count("\n", 0, pos) + 1
        quote = text[start] if start < n and text[start] in "'\"" else ""
        if quote:
            value, end = _read_quoted(text, start)
            if end < 0:
                if is_wanted(key):
                    raise ConfigError(key, text[start:eol], f"a closing {quote} quote",
                                      f"{fspath} line {line}", secret=key in _SECRET_VARS)
                pos = eol + 1   # unterminated quote on another tool's variable
                continue
            if quote == '"':
                value = expand(value)
            nxt = text.find("\n", end)
            pos = n if nxt < 0 else nxt + 1
        else:
            raw = text[start:eol]
            hash_at = re.search(r"(^|[ \t])#", raw)
            if hash_at:
                raw = raw[:hash_at.start()]
            value = expand(raw.strip())
            pos = eol + 1
        seen[key] = value
        if is_wanted(key):
            found[key] = (value, f"{fspath} line {line}")
    return found


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted string at ``text[start]`` and the index after
    its closing quote, or ``("", -1)`` when it is not closed."""
    quote = text[start]
    if quote == "'":
        end = text.find("'", start + 1)
        return ("", -1) if end < 0 else (text[start + 1:end], end + 1)
    out = []
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    return "", -1
