"""The Python API of the engine: ``Profiler`` profiles any block of code.

    with Profiler() as prof:
        work()
    print(prof.report.to_text())

Also ``async with Profiler()``, ``@Profiler()`` on a function or coroutine
function, and explicit ``start()`` / ``stop()``. Sampling, attribution and
the call tree are the C engine's (``reqprof._core``); this module only
binds a session to the caller's frame and task.
"""
from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401  (its worker frames are registered below)
import functools
import logging
import os
import sys
import threading
from types import CodeType, FrameType, TracebackType
from typing import Any, Callable, Iterator, TypeVar

from . import _core
from .report import LIBRARY_DIRS, Report

# Child tasks that run app code get the time their parent waits for them
# before those that run only library code: the engine tells them apart by
# the same rule as the writers.
_core.set_library_dirs(LIBRARY_DIRS)

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("reqprof")

ASYNC_MODES = ("enabled", "disabled", "strict")
DEFAULT_MAX_NODES = 100_000
DEFAULT_MAX_BYTES = 32 << 20
DEFAULT_MAX_DURATION = 300.0
#: Seconds holding the event loop in one stretch that a report flags.
DEFAULT_LOOP_BLOCK = 0.05


def hide(func_or_code: Any) -> None:
    """Leave the frames of this function (or code object) out of every call
    tree: for profiler plumbing such as a middleware's send wrapper."""
    code = getattr(func_or_code, "__code__", func_or_code)
    if not isinstance(code, CodeType):
        raise TypeError(f"hide() needs a function or code object, not {type(func_or_code).__name__}")
    _core.hide_code(code)


def _codes_of(obj: Any, seen: set[int], depth: int = 0) -> Iterator[CodeType]:
    """The code objects of a function or class, nested ones (inner
    functions, comprehensions, lambdas) included."""
    if id(obj) in seen or depth > 8:
        return
    seen.add(id(obj))
    if isinstance(obj, CodeType):
        yield obj
        for const in obj.co_consts:
            if isinstance(const, CodeType):
                yield from _codes_of(const, seen, depth + 1)
    elif isinstance(obj, (staticmethod, classmethod)):
        yield from _codes_of(obj.__func__, seen, depth + 1)
    elif isinstance(obj, property):
        for f in (obj.fget, obj.fset, obj.fdel):
            if f is not None:
                yield from _codes_of(f, seen, depth + 1)
    elif isinstance(obj, type):
        for value in vars(obj).values():
            yield from _codes_of(value, seen, depth + 1)
    else:
        code = getattr(obj, "__code__", None)
        if isinstance(code, CodeType):
            yield from _codes_of(code, seen, depth + 1)


_hidden_modules: set[str] = set()
_modules_seen = [0]     # len(sys.modules) at the last look


def _hide_own_modules() -> None:
    """reqprof's own frames never appear in a report: every function of
    every reqprof module imported so far is hidden (the middleware's send
    wrappers, the profiler's start and stop, their comprehensions)."""
    for name, module in list(sys.modules.items()):
        if module is None or name in _hidden_modules:
            continue
        if name != "reqprof" and not name.startswith("reqprof."):
            continue
        _hidden_modules.add(name)
        seen: set[int] = set()
        for value in list(vars(module).values()):
            if getattr(value, "__module__", None) != name:
                continue
            for code in _codes_of(value, seen):
                _core.hide_code(code)


# Thread-pool plumbing and the event loop's callback runner: a stack that
# does not hold the request's root is shown from the frame below the
# innermost of these (the work given), not from the thread's bootstrap.
_dispatch_modules_done: set[str] = set()


def _register_dispatch_frames() -> None:
    def add(*funcs: Any) -> None:
        for f in funcs:
            code = getattr(f, "__code__", None)
            if isinstance(code, CodeType):
                _core.add_dispatch_code(code)

    if "asyncio" not in _dispatch_modules_done:
        # The event loop running a callback (not a task) in the request's
        # context: the callback is what matters, not the loop below it.
        _dispatch_modules_done.add("asyncio")
        add(asyncio.events.Handle._run)
    if "threading" not in _dispatch_modules_done:
        _dispatch_modules_done.add("threading")
        t = threading.Thread
        add(t._bootstrap, t._bootstrap_inner, t.run)  # type: ignore[attr-defined]
    if "concurrent.futures.thread" not in _dispatch_modules_done:
        cft = sys.modules.get("concurrent.futures.thread")
        if cft is not None:
            _dispatch_modules_done.add("concurrent.futures.thread")
            add(getattr(cft, "_worker", None), getattr(getattr(cft, "_WorkItem", None), "run", None))
    if "anyio._backends._asyncio" not in _dispatch_modules_done:
        anyio_asyncio = sys.modules.get("anyio._backends._asyncio")
        if anyio_asyncio is not None:
            _dispatch_modules_done.add("anyio._backends._asyncio")
            add(getattr(getattr(anyio_asyncio, "WorkerThread", None), "run", None))


_mode_logged = False


def _log_mode_once() -> None:
    """Say once when the engine runs on public APIs only (a CPython the
    fast path does not know, or REQPROF_PORTABLE=1): coarser and slower."""
    global _mode_logged
    if not _mode_logged:
        _mode_logged = True
        if not _core.MODE.startswith("fast"):
            forced = os.environ.get("REQPROF_PORTABLE") == "1"
            logger.log(
                logging.INFO if forced else logging.WARNING,
                "reqprof engine in %s mode%s: samples wait for the GIL switch interval",
                _core.MODE,
                " (REQPROF_PORTABLE=1)" if forced else f" on Python {sys.version.split()[0]}",
            )


_prefix_cache: tuple[list[Any], list[str]] = ([], [])


def _path_prefixes() -> list[str]:
    """sys.path entries as absolute directory prefixes, longest first, so
    that reports can show `pkg/module.py` instead of the full path. Built
    again only when sys.path changed (a copy of it is compared, in C)."""
    global _prefix_cache
    path = sys.path[:]
    if path != _prefix_cache[0]:
        prefixes = {os.path.join(os.path.abspath(p), "") for p in path if isinstance(p, str)}
        _prefix_cache = (path, sorted(prefixes, key=len, reverse=True))
    return _prefix_cache[1]


def _prepare_start() -> None:
    """What every session start needs first: the dispatch frames of the
    modules imported so far registered, reqprof's own functions hidden, the
    engine's mode said once. Looks again only when modules were imported
    since (every profile starts here: a walk of sys.modules each time would
    cost each request)."""
    if len(sys.modules) != _modules_seen[0]:
        _modules_seen[0] = len(sys.modules)
        _register_dispatch_frames()
        _hide_own_modules()
    if not _mode_logged:
        _log_mode_once()


def session_options(
    interval: float = 0.001,
    max_depth: int = 50,
    async_mode: str = "enabled",
    *,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_duration: float = DEFAULT_MAX_DURATION,
    loop_block: float = DEFAULT_LOOP_BLOCK,
    overhead_budget: float | None = None,
) -> dict[str, Any]:
    """:class:`Profiler`'s options as ``_core.Session`` takes them (not
    validated: the Session does that)."""
    return dict(
        interval=float(interval),
        max_depth=int(max_depth),
        async_mode=async_mode,
        max_nodes=int(max_nodes),
        max_bytes=int(max_bytes),
        max_duration=float(max_duration),
        loop_block=float(loop_block),
        overhead_budget=float(overhead_budget or 0.0),
    )


def start_session(options: dict[str, Any], root_frame: FrameType, label: str | None = None,
                  fold: CodeType | None = None) -> Any:
    """A started ``_core.Session`` (``options`` from :func:`session_options`)
    rooted at ``root_frame``, named ``label``: what :meth:`Profiler.start`
    does, for callers that hold the session themselves (the middleware)."""
    _prepare_start()
    coro = _current_coro() if options["async_mode"] != "disabled" else None
    session = _core.Session(**options)
    if label is not None:
        session.set_label(label)
    if fold is None:
        session.start(root_frame, coro)
    else:
        session.start(root_frame, coro, fold_code=fold)
    return session


def stop_session(session: Any) -> Report:
    """Stops a session from :func:`start_session`; its report."""
    session.stop(_path_prefixes())
    return Report(session)


def _current_coro() -> Any:
    """The coroutine of the task running this code (asyncio's, or trio's
    when trio runs it), or None."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        task = asyncio.current_task(loop)
        get_coro = getattr(task, "get_coro", None)
        return get_coro() if get_coro is not None else None
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_task().coro
        except RuntimeError:    # not inside trio.run
            return None
    return None


class Profiler:
    """Profiles a block of code with the sampling engine.

    interval: seconds between samples (default 1 ms).
    max_depth: frames kept below the root frame; deeper ones fold into
        ``[truncated]``.
    async_mode: ``enabled`` (follow the context: tasks, worker threads,
        await stacks), ``disabled`` (only the starting thread), ``strict``
        (only the starting context; time elsewhere is ``[out-of-context]``).
    max_nodes, max_bytes: caps on the call tree; reaching one marks the
        report truncated. max_duration: seconds after which sampling stops
        (0 = no limit). loop_block: a stretch of at least this many seconds
        in which the profiled code held its event loop (ran without
        awaiting) is reported (``Report.breakdown["loop_block"]``; 0 =
        never). overhead_budget: a percent of one core (``2``, ``0.5``) the
        engine's own threads may use; past it the sampling interval is
        lengthened (up to 64 times, and 1 s) and the report's
        ``effective_interval_s`` says so (None or 0 = no budget).
    """

    def __init__(
        self,
        interval: float = 0.001,
        max_depth: int = 50,
        async_mode: str = "enabled",
        *,
        max_nodes: int = DEFAULT_MAX_NODES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_duration: float = DEFAULT_MAX_DURATION,
        loop_block: float = DEFAULT_LOOP_BLOCK,
        overhead_budget: float | None = None,
    ) -> None:
        if async_mode not in ASYNC_MODES:
            raise ValueError(f"async_mode must be one of {', '.join(ASYNC_MODES)}, not {async_mode!r}")
        self._options = session_options(
            interval, max_depth, async_mode, max_nodes=max_nodes, max_bytes=max_bytes,
            max_duration=max_duration, loop_block=loop_block, overhead_budget=overhead_budget)
        # Validates the options now rather than at start().
        _core.Session(**self._options)
        self._session: Any = None
        self._label: str | None = None
        self.report: Report | None = None

    @property
    def is_running(self) -> bool:
        return self._session is not None

    def start(self, root_frame: FrameType | None = None, *, root_function: Any = None) -> Profiler:
        """Start sampling. The call tree's root is `root_frame` (default: the
        caller's frame); only frames below it are recorded. With
        `root_function` (a function that `root_frame` calls, as a
        decorator's wrapper does), the root is that function instead."""
        if self._session is not None:
            raise RuntimeError("this Profiler is already running")
        if root_frame is None:
            root_frame = sys._getframe(1)
        fold = getattr(root_function, "__code__", None)
        self._session = start_session(self._options, root_frame, self._label,
                                      fold if isinstance(fold, CodeType) else None)
        return self

    def set_label(self, label: str) -> None:
        """What is profiled (``GET /export``): the name other profiles give
        it when it keeps their task waiting for a busy event loop (by
        default, the name of the root function). Before ``start()`` or
        while running."""
        self._label = str(label)
        session = self._session
        if session is not None:
            session.set_label(self._label)

    def mark_response_end(self) -> None:
        """The response has been sent (its last byte): the report gives the
        time until now as ``response_s``, and what runs from now on (a
        background task, cleanup) goes under an ``[after response]`` node.
        Only the first call counts; a no-op when not running."""
        session = self._session
        if session is not None:
            session.mark_response_end()

    def stop(self) -> Report:
        """Stop sampling and return the report (also kept as ``.report``)."""
        session = self._session
        if session is None:
            raise RuntimeError("this Profiler is not running")
        self._session = None
        self.report = stop_session(session)
        return self.report

    def __enter__(self) -> Profiler:
        return self.start(sys._getframe(1))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Profiler:
        return self.start(sys._getframe(1))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __call__(self, func: F) -> F:
        """As a decorator: each call runs in a session of its own (so calls
        may overlap); the latest report is kept as ``.report``."""
        options = self._options
        owner = self

        if asyncio.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                prof = Profiler(**options)  # type: ignore[arg-type]
                prof.start(sys._getframe(0), root_function=func)
                try:
                    return await func(*args, **kwargs)
                finally:
                    owner.report = prof.stop()

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prof = Profiler(**options)  # type: ignore[arg-type]
            prof.start(sys._getframe(0), root_function=func)
            try:
                return func(*args, **kwargs)
            finally:
                owner.report = prof.stop()

        return wrapper  # type: ignore[return-value]


for _f in (Profiler.start, Profiler.stop, Profiler.mark_response_end, Profiler.__enter__,
           Profiler.__exit__,
           Profiler.__aenter__, Profiler.__aexit__, _current_coro,
           _register_dispatch_frames, _path_prefixes, _log_mode_once, _prepare_start,
           start_session, stop_session):
    hide(_f)
del _f
