"""The request core: what every middleware (ASGI, WSGI, Django, Flask) asks
of reqprof, and the state they share in a process.

There is one :class:`Profiling` per configuration in a process, however
many middleware instances a framework builds (Litestar builds one per
route): the settings, the slots, the rate-limited failure log, the output
directory, the engine, the startup line (logged once). Per request, an
adapter asks it:

- :meth:`Profiling.decide`: serve normally (None), profile in the
  background (:data:`AUTO`), or answer with a report in some format;
- :meth:`Profiling.begin`: a started :class:`~reqprof._request.RequestProfile`
  holding a slot, :data:`~reqprof._request.BUSY`, or None;
- :meth:`Profiling.render`: the report as bytes to send.

Configuration problems never raise here: a bad setting makes the
configuration's :attr:`Profiling.config_error` (logged once at ERROR);
profiling stays off and the adapters serve every request unprofiled.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import random
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterable, Mapping, Optional, Union
from urllib.parse import parse_qsl

from . import _logging, _misuse, _request, _trace
from ._logging import RateLimited, logger
from ._logging import printable
from ._output import OutputDir
from ._render import FORMATS, Format, render
from ._reporter import reporter
from ._request import BUSY, CountedRequest, RequestProfile, Slots, reserved_slots
from .config import ConfigError, Settings, load

#: decide(): profile this request in the background.
AUTO = "auto"
assert AUTO not in FORMATS

_YES = frozenset({"1", "true", "yes"})
# Variables that look like reqprof's and are not: warned about once a process.
_warned_unknown: set = set()
_shared_lock = threading.Lock()
_shared: dict = {}


def configure(settings: Optional[Settings] = None,
              env_file: Union[str, "os.PathLike[str]", None] = ".env",
              overrides: Optional[Mapping[str, Any]] = None) -> "Profiling":
    """The process's Profiling for this configuration: from ``settings``
    (keyword ``overrides`` applied), else from the environment, ``env_file``
    and the overrides. Logs what is wrong with it the first time only."""
    overrides = dict(overrides or {})
    if settings is None:
        loaded = load(env_file=env_file, **overrides)
        settings, errors, unknown = loaded.settings, loaded.errors, loaded.unknown
    else:
        errors, unknown = {}, ()
        try:
            settings = settings.replace(**overrides)
        except ConfigError as exc:
            errors = {"": exc}
        except TypeError as exc:
            errors = {"": ConfigError("keyword argument", ", ".join(sorted(overrides)),
                                      f"names of Settings fields ({exc})")}
    if errors or unknown or settings.enabled:
        _logging.ensure_handler()
    for item in unknown:
        if item.name not in _warned_unknown:
            _warned_unknown.add(item.name)
            logger.warning("reqprof: %s", item.message())
    key = (settings, tuple(sorted((k, str(e)) for k, e in errors.items())))
    with _shared_lock:
        profiling = _shared.get(key)
        if profiling is None:
            profiling = _shared[key] = Profiling(settings, errors)
    return profiling


class Profiling:
    """Everything a middleware needs, shared by the middlewares of one
    configuration in a process. Built by :func:`configure`."""

    def __init__(self, settings: Settings, errors: Mapping[str, ConfigError]) -> None:
        self.settings = settings
        #: Why the configuration cannot be used (ERROR), or None.
        self.config_error: Optional[str] = None
        #: True when requests pass through unprofiled (disabled, a bad
        #: setting, no engine).
        self.off = True
        self.failures = RateLimited(60.0)
        self.output: Optional[OutputDir] = None
        self.formats: dict[str, Format] = {}
        self.slots = Slots(settings.max_concurrent,
                           reserved_slots(settings.max_concurrent, settings.manual))
        # A token given, even a bad one: its header is never passed on.
        self.token_set = settings.token is not None or "token" in errors
        self._token_digest = (hashlib.sha256(settings.token.encode("ascii")).digest()
                              if settings.token is not None else None)
        # Manual profiling open to anyone: warn once it is reachable from
        # outside (the first request that came in on a non-loopback address).
        self.watch_bind = settings.manual and settings.token is None
        self._local_hosts: set = set()
        #: The engine (the reqprof.profiler module), and the Profiler class
        #: that profiles a request: the engine's own, whose session the
        #: request holds directly, unless a test puts another in its place.
        self._engine: Any = None
        self._profiler_class: Any = None
        #: The Profiler's options ("profiler") and its session's ("session").
        self._options: dict = {}
        #: Per-route aggregates and the store, when a store is set.
        self.production: Any = None
        #: Profiles pushed to Pyroscope, when PROFILING_PYROSCOPE_URL is set.
        self.pusher: Any = None
        if "enabled" in errors or (settings.enabled and errors):
            self._refuse(errors.values())
            return
        if not settings.enabled:
            for exc in errors.values():
                logger.warning("reqprof: %s (ignored while ENABLE_PROFILING is off)", exc)
            logger.debug("reqprof: profiling disabled (ENABLE_PROFILING is false); "
                         "requests pass through")
            return
        try:
            self.output = _prepare_output_dir(settings)
        except ConfigError as exc:
            self._refuse([exc])
            return
        engine = _load_engine()
        if engine is None:
            return
        if settings.store is not None:
            from ._production import Production
            self.production = Production(settings, self.failures)
        if settings.pyroscope_url is not None:
            from ._push import Pusher
            self.pusher = Pusher(settings, self.failures)
        self._engine, report_class = engine
        self._profiler_class = self._engine.Profiler
        options = dict(interval=settings.interval, max_depth=settings.max_depth,
                       async_mode=settings.async_mode,
                       loop_block=settings.loop_block_ms / 1000.0,
                       overhead_budget=settings.overhead_budget)
        self._options = {"profiler": options,
                         "session": self._engine.session_options(**options)}
        self.formats = {name: spec for name, spec in FORMATS.items()
                        if hasattr(report_class, spec.method)}
        self.off = False
        if not settings.manual:
            hint = "manual profiling is off"
        elif settings.token is not None:
            hint = "add ?profile=1 and the X-Profiling-Token header to a request for its report"
        else:
            hint = "add ?profile=1 to a request for its report"
        logger.info(
            "reqprof: profiling enabled (%s); %s", settings.describe(), hint,
            extra={"reqprof_" + name: value for name, value in settings.public().items()},
        )
        if settings.sample_rate > 0.0 and self.slots.auto_limit == 0:
            logger.warning(
                "reqprof: PROFILING_MAX_CONCURRENT=%d keeps its only slot for ?profile=1, so "
                "automatic sampling (PROFILING_SAMPLE_RATE=%g) never runs; set it to 2 or more",
                settings.max_concurrent, settings.sample_rate)

    def _refuse(self, errors: Iterable[ConfigError]) -> None:
        """Profiling stays off for a bad configuration, said once at ERROR."""
        self.config_error = ("reqprof: invalid configuration: "
                             + "; ".join(str(e) for e in errors))
        logger.error("%s. Profiling is off: an ASGI server is asked not to start (the "
                     "lifespan startup fails); otherwise requests are served unprofiled.",
                     self.config_error)

    def unprofiled(self) -> None:
        """A request is served unprofiled because of the configuration: said
        again at ERROR, once a minute at most."""
        if self.config_error is not None:
            self.failures.log("config", logging.ERROR,
                              "%s; this request is served unprofiled", self.config_error)

    # -- per request ----------------------------------------------------------

    def decide(self, query: Union[bytes, str], tokens: Optional[list]) -> Optional[str]:
        """None (serve the request normally), :data:`AUTO`, or the format of
        the report to send instead of the response.

        ``profile`` and ``profile_format`` are read from the query string as
        Starlette reads them (percent-decoded, the last one wins). With a
        token set, the request must have carried exactly one
        ``X-Profiling-Token`` header (``tokens``) with that value."""
        if self.settings.manual:
            fmt = self._manual_format(query, tokens)
            if fmt is not None:
                return fmt
        rate = self.settings.sample_rate
        if rate > 0.0 and random.random() < rate:
            return AUTO
        return None

    def _manual_format(self, query: Union[bytes, str], tokens: Optional[list]) -> Optional[str]:
        if isinstance(query, str):
            if "profile" not in query and "%" not in query:
                return None
            text = query
        else:
            if b"profile" not in query and b"%" not in query:
                return None
            text = bytes(query).decode("latin-1")
        profile = fmt = None
        for key, value in parse_qsl(text, keep_blank_values=True):
            if key == "profile":
                profile = value          # the last one wins, as in Starlette
            elif key == "profile_format":
                fmt = value
        if profile is None or profile.lower() not in _YES:
            return None
        if self._token_digest is not None and not self._authorised(tokens or []):
            self.failures.log(
                "token", logging.WARNING,
                "reqprof: a ?profile= request without a valid X-Profiling-Token header "
                "was served as a normal request")
            return None
        fmt = (fmt or "html").lower()
        if fmt not in self.formats:
            self.failures.log(
                "format", logging.WARNING,
                "reqprof: profile_format=%r is not available (use one of: %s); "
                "serving the normal response", fmt[:40], ", ".join(self.formats))
            return None
        return fmt

    def _authorised(self, tokens: list) -> bool:
        """Whether exactly one token header came, with the token (compared in
        constant time)."""
        if len(tokens) != 1:
            return False
        token = tokens[0] if isinstance(tokens[0], bytes) else str(tokens[0]).encode("latin-1")
        digest = hashlib.sha256(token.strip()).digest()
        return hmac.compare_digest(digest, self._token_digest or b"")

    def begin(self, root: FrameType, manual: bool, describe: Callable[[], dict],
              label: Optional[str] = None) -> Any:
        """A started RequestProfile (rooted at ``root``, its report described
        by ``describe()`` when it ends, named ``label`` while it runs:
        :func:`~reqprof._meta.request_label`, else from ``describe()``), BUSY
        when no slot is free, or None when the profiler could not start
        (logged)."""
        ids = _trace.active_span()
        if ids is not None:
            describe = _trace.describing(describe, ids)
        run = RequestProfile.begin(
            self._engine, self._profiler_class, self._options, root, self.slots, manual,
            self.failures, describe, label,
            self.settings.manual_timeout if manual else _request.AUTO_MAX_DURATION,
            self._finished)
        if run is BUSY and not manual and self.production is not None:
            return CountedRequest(describe, self.production.record_unprofiled)
        if run is BUSY:
            self.failures.log(
                "busy", logging.INFO,
                "reqprof: %d requests are being profiled (PROFILING_MAX_CONCURRENT; %d of the "
                "slots are kept for ?profile=1); more are served unprofiled until one ends",
                self.settings.max_concurrent, self.slots.total - self.slots.auto_limit)
        return run

    def _finished(self, report: Any, manual: bool) -> bool:
        """Every report, when its profile ends (on the request's thread, or
        the reporter's at a deadline): merged into its route's aggregate;
        kept (stored; an automatic one also logged and written to the
        output directory) when it is asked for, or, with PROFILING_SLOW_MS,
        slow or failed. Returns True when the reporter takes it over."""
        production = self.production
        if production is not None:
            production.record(report)
        because = None if manual else self._kept_because(report)
        if self.pusher is not None:
            try:
                self.pusher.record(report, because in ("slow", "error"))
            except Exception as exc:
                self.failures.log("push-record", logging.ERROR,
                                  "reqprof: a request could not be added to the profiles to "
                                  "push (%s: %s)", type(exc).__name__, exc)
        if manual:
            if production is not None and production.store is not None:
                reporter.submit(report, None, self.failures, production, log=False)
            return False
        if because is None:
            return True     # aggregated only: nobody holds it any more
        report.meta["kept_because"] = because
        reporter.submit(report, self.output, self.failures, production)
        return True

    def close(self) -> None:
        """At the ASGI lifespan's shutdown: what waits is written to the
        store and pushed, each within its time limit."""
        for part in (self.production, self.pusher):
            if part is not None:
                part.close()

    def _kept_because(self, report: Any) -> Optional[str]:
        """Why a sampled report is kept (``sampled``, ``slow``, ``error``),
        or None when only its aggregate keeps it."""
        slow_ms = self.settings.slow_ms
        if slow_ms is None:
            return "sampled"
        meta = report.meta
        status = meta.get("status")
        if meta.get("exception") or (isinstance(status, int) and status >= 500):
            return "error"
        if report.duration_s * 1000.0 >= slow_ms:
            return "slow"
        return None

    def render(self, report: Any, fmt: str) -> Optional[tuple[bytes, Format]]:
        """The report's bytes and how to serve them, or None (logged): then
        the app's own response is sent."""
        try:
            return render(report, fmt, self.failures), self.formats[fmt]
        except Exception as exc:
            self.failures.log("render", logging.ERROR,
                              "reqprof: the %s report could not be written (%s: %s); "
                              "the normal response was sent", fmt, type(exc).__name__, exc)
            return None

    # -- manual profiling open to anyone ----------------------------------------

    def check_bind(self, host: Any, port: Any) -> None:
        """Warns once when manual profiling is open (no token) and a request
        came in on an address other than loopback: the server is reachable
        from elsewhere. Cheap once a host is known to be local."""
        if host in self._local_hosts:
            return
        if _is_local(host, port):
            if len(self._local_hosts) < 64:
                self._local_hosts.add(host)
            return
        self._warn_open(f"requests reach this app on {printable(str(host))}:{port}, "
                        "not a loopback address")

    def check_proxy(self, proxy_header: Optional[str]) -> None:
        """A ?profile= request came with ``proxy_header`` (Forwarded,
        X-Forwarded-For, X-Real-IP), or None."""
        if proxy_header is not None:
            self._warn_open(f"a ?profile= request came through a proxy ({proxy_header} header)")

    def _warn_open(self, why: str) -> None:
        if not self.watch_bind:
            return
        self.watch_bind = False
        logger.warning(
            "reqprof: manual profiling is open to anyone: %s, and PROFILING_TOKEN is not set, "
            "so any client can ask for a report with ?profile=1. Set PROFILING_TOKEN (or "
            "PROFILING_MANUAL=false) for any deployment that is not local.", why)


class Middleware:
    """What the ASGI and WSGI middleware classes share: the wrapped app
    (checked to be of the ``kind`` the class wraps: ``_misuse``), and the
    process's Profiling for the configuration given as keyword arguments,
    ``settings=``, or the environment and ``env_file``."""

    kind = ""

    def __init__(
        self,
        app: Any,
        *,
        settings: Optional[Settings] = None,
        env_file: Union[str, "os.PathLike[str]", None] = ".env",
        **overrides: Any,
    ) -> None:
        _misuse.expect(app, self.kind)
        self.app = app
        self.profiling: Profiling = configure(settings, env_file, overrides)
        self.settings = self.profiling.settings

    @property
    def config_error(self) -> Optional[str]:
        """Why the configuration cannot be used, or None."""
        return self.profiling.config_error


#: Request headers that say a proxy forwarded the request (lower case).
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def _is_local(host: Any, port: Any) -> bool:
    """Whether a request's server address is a loopback address (or a Unix
    socket: ``(path, None)``)."""
    if port is None:
        return True
    if not isinstance(host, str):
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _load_engine() -> Optional[tuple[Any, Any]]:
    """(the reqprof.profiler module, Report) from the C engine, or None
    (logged at ERROR) when it cannot be imported."""
    try:
        from . import profiler as engine
        from .report import Report
        for func in _PLUMBING:
            engine.hide(func)
        return engine, Report
    except Exception as exc:
        logger.error(
            "reqprof: the C extension reqprof._core could not be loaded (%s: %s); profiling "
            "is off and requests pass through. Reinstall reqprof for this Python (%s).",
            type(exc).__name__, exc, sys.version.split()[0])
        return None


#: Functions of reqprof that run on a request's stack while it is profiled:
#: left out of every call tree. Adapters add theirs (:func:`hide`).
_PLUMBING: list = [RequestProfile.begin, RequestProfile.end, RequestProfile._end,
                   RequestProfile._stop, Slots.take, Slots.give, Profiling.begin]


def hide(*funcs: Any) -> None:
    """Leaves these functions (a middleware's plumbing) out of every call
    tree, once the engine is loaded."""
    _PLUMBING.extend(funcs)
    if "reqprof.profiler" in sys.modules:
        for func in funcs:
            sys.modules["reqprof.profiler"].hide(func)


def _prepare_output_dir(settings: Settings) -> Optional[OutputDir]:
    if settings.output_dir is None:
        return None
    path = os.path.abspath(settings.output_dir)
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        raise ConfigError("PROFILING_OUTPUT_DIR", settings.output_dir,
                          f"a writable directory ({exc.strerror or exc})") from None
    return OutputDir(path, settings.output_max_mb << 20)


def _after_fork() -> None:
    """A forked child runs no profile: every slot is free there."""
    for profiling in list(_shared.values()):
        profiling.slots.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
