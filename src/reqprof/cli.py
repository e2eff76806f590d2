"""The ``reqprof`` command (also ``python -m reqprof``).

    reqprof render PROFILE [--format FORMAT] [-o OUT]
    reqprof diff BEFORE AFTER [-o OUT.html]
    reqprof routes --store PATH [--since 1h]
    reqprof dashboard --store PATH [--host 127.0.0.1] [--port 8050] [--token T]

``render`` converts a saved profile (the JSON of ``Report.to_json()``, an
HTML report, which carries its profile, or what the middleware writes to
its output directory) into another format. Without ``--format`` the format
follows OUT's suffix (``.html``, ``.txt``, ``.pb.gz``/``.pprof``,
``.speedscope.json``, ``.folded``/``.collapsed``, ``.json``; another suffix
is an error); with no OUT (or ``-``: standard output) it is ``text``.
PROFILE ``-`` is standard input.

``diff`` writes one self-contained HTML page with the differential view of
AFTER against BEFORE (two saved profiles, JSON or HTML reports): a flame
graph and a call tree of both, frames coloured by the change in their share
of the time, largest changes first.

``routes`` prints the store's route table; ``dashboard`` serves the local
dashboard over it (see reqprof.dashboard).

Exit status: 0 on success, 2 on any error (usage, unreadable or invalid
profile or store, output not writable), with one line on standard error.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import IO, Sequence

from ._logging import printable
from ._render import FORMATS
from ._version import __version__

#: Output suffix -> format, longest first (".speedscope.json" before ".json").
SUFFIXES = (
    (".speedscope.json", "speedscope"),
    (".pb.gz", "pprof"),
    (".pprof", "pprof"),
    (".html", "html"),
    (".htm", "html"),
    (".txt", "text"),
    (".folded", "collapsed"),
    (".collapsed", "collapsed"),
    (".json", "json"),
)

EXIT_OK = 0
EXIT_ERROR = 2


class CliError(Exception):
    """A failure to report as ``reqprof: error: <message>`` (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reqprof",
        description="reqprof: per-request sampling profiler for Python web apps.",
        epilog="Profile requests with reqprof.ProfilingMiddleware or reqprof.Profiler; "
        "save a report with Report.to_json() and convert it with 'reqprof render'.",
    )
    parser.add_argument("--version", action="version", version=f"reqprof {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    render = commands.add_parser(
        "render",
        help="convert a saved profile (JSON) to another format",
        description="Convert a saved profile (the JSON of Report.to_json()) to another format.",
    )
    render.add_argument("profile", metavar="PROFILE", help="the profile's JSON file ('-': standard input)")
    render.add_argument(
        "-f",
        "--format",
        choices=tuple(FORMATS),
        help="output format (default: from OUT's suffix, else text)",
    )
    render.add_argument("-o", "--output", metavar="OUT", help="output file (default or '-': standard output)")
    text = render.add_argument_group("text format")
    text.add_argument("--ascii", action="store_true", help="draw the tree with ASCII characters")
    text.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="ANSI colours (auto: when writing to a terminal and NO_COLOR is unset)",
    )
    text.add_argument(
        "--min-percent",
        type=_percent,
        default=1.0,
        metavar="PCT",
        help="hide frames under PCT%% of the wall time (default 1; 0 shows all)",
    )
    text.add_argument(
        "--max-lines", type=_count, default=0, metavar="N", help="stop after N tree lines (default 0: all)"
    )
    diff = commands.add_parser(
        "diff", help="compare two saved profiles in one HTML page",
        description="Write one self-contained HTML page with the differential view of AFTER "
                    "against BEFORE (saved profiles: JSON or HTML reports): frames coloured by "
                    "the change in their share of the time, largest changes first.")
    diff.add_argument("before", metavar="BEFORE", help="the profile to compare against ('-': standard input)")
    diff.add_argument("after", metavar="AFTER", help="the profile to compare ('-': standard input)")
    diff.add_argument("-o", "--output", metavar="OUT",
                      help="the HTML file to write (.html or .htm; default or '-': standard output)")
    routes = commands.add_parser(
        "routes", help="print a store's route table",
        description="Print the route table of a store (PROFILING_STORE): requests, errors, "
                    "latency percentiles, wall and CPU time per route.")
    routes.add_argument("--store", required=True, metavar="PATH", help="the store's file")
    routes.add_argument("--since", type=_since, default="1h", metavar="DURATION",
                        help="the last 15m, 1h (default), 24h, 7d..., or all")
    dashboard = commands.add_parser(
        "dashboard", help="serve the local dashboard over a store",
        description="Serve a local, offline dashboard over a store: route table, merged "
                    "profiles, kept requests, compare.")
    dashboard.add_argument("--store", required=True, metavar="PATH", help="the store's file")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to bind (default 127.0.0.1; any other needs --token)")
    dashboard.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    dashboard.add_argument("--token", default=None,
                           help="a token every request must carry (default: "
                                "$REQPROF_DASHBOARD_TOKEN)")
    return parser


def _percent(value: str) -> float:
    try:
        pct = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= pct <= 100.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {value}")
    return pct


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if not 0 <= n < 2**32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 4294967295, not {value}")
    return n


def _format_for(output: str | None) -> str:
    """The format OUT's suffix names; text for standard output. Raises
    CliError for a suffix that names none."""
    if output is None or output == "-":
        return "text"
    name = output.lower()
    for suffix, fmt in SUFFIXES:
        if name.endswith(suffix):
            return fmt
    known = ", ".join(suffix for suffix, _ in SUFFIXES)
    raise CliError(f"cannot tell the format from {output!r}: name it with one of {known}, "
                   "or give --format")


def _display(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _read_profile(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliError(f"cannot read {_display(path)}: {e.strerror or e}") from None


def _supports_box_drawing(stream: IO[str]) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "\u2502\u251c\u2500\u2514\u2026".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


_EMBEDDED = re.compile(rb'<script type="application/json" id="profile-data">(.*?)</script>',
                       re.DOTALL)


def profile_json(data: bytes) -> bytes:
    """The profile JSON of a saved profile: the document itself, or the one
    an HTML report carries. Raises ValueError for an HTML page without one."""
    head = data.lstrip()[:64].lower()
    if head.startswith((b"<!doctype", b"<html")):
        found = _EMBEDDED.search(data)
        if found is None:
            raise ValueError("an HTML page that is not a reqprof report (no profile in it)")
        return found.group(1)
    return data


def _render(args: argparse.Namespace, to_stdout: bool) -> bytes:
    fmt = args.format or _format_for(args.output)
    try:
        from .report import Report

        report = Report.from_json(profile_json(_read_profile(args.profile)))
    except ValueError as e:
        raise CliError(f"{_display(args.profile)}: {e}") from None
    except ImportError as e:
        raise CliError(f"the reqprof C extension is not available: {e}") from None
    if fmt == "pprof" and to_stdout and sys.stdout.isatty():
        raise CliError("pprof output is binary (gzip); write it to a file with -o OUT")
    if fmt != "text":
        return report.to_bytes(fmt)
    if args.color == "auto":
        color = to_stdout and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    else:
        color = args.color == "always"
    ascii = args.ascii or (to_stdout and not _supports_box_drawing(sys.stdout))
    out = report.to_text(ascii=ascii, color=color, min_percent=args.min_percent,
                         max_lines=args.max_lines)
    # Writers replace what is not valid UTF-8 (names from odd code objects
    # included), so this never fails.
    return out.encode("utf-8", "replace")


def _load_profile(path: str) -> tuple[str, str]:
    """A saved profile's JSON text, checked against the schema, and a label
    for it: the file's name, and the request it profiled. Raises CliError
    naming the file."""
    try:
        from .report import Report

        text = profile_json(_read_profile(path))
        meta = Report.from_json(text).meta
        json_text = text.decode("utf-8")
    except (ValueError, UnicodeDecodeError) as e:
        raise CliError(f"{_display(path)}: {e}") from None
    except ImportError as e:
        raise CliError(f"the reqprof C extension is not available: {e}") from None
    label = os.path.basename(_display(path))
    what = " ".join(str(meta[k]) for k in ("method", "path") if meta.get(k) not in (None, ""))
    if meta.get("status") is not None:
        what += f" -> {meta['status']}"
    return json_text, f"{label}: {what}" if what else label


def _diff(args: argparse.Namespace) -> bytes:
    html = tuple(suffix for suffix, fmt in SUFFIXES if fmt == "html")
    if args.output not in (None, "-") and not args.output.lower().endswith(html):
        raise CliError(f"diff writes an HTML page: name OUT with {' or '.join(html)}, "
                       f"not {args.output!r}")
    if args.before == "-" and args.after == "-":
        raise CliError("only one of BEFORE and AFTER can be standard input")
    from .viewer import diff_page

    (before, before_label), (after, after_label) = (_load_profile(args.before),
                                                     _load_profile(args.after))
    return diff_page(before, after, before_label, after_label).encode("utf-8")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(value: str) -> float:
    """``1h``, ``15m``, ``2d``, ``90s`` ago (or ``all``), as a Unix time."""
    if value == "all":
        return 0.0
    try:
        amount, unit = float(value[:-1]), _UNITS[value[-1:]]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"a duration like 15m, 1h, 2d or 'all', not {value!r}") from None
    return time.time() - amount * unit


def _routes(args: argparse.Namespace) -> bytes:
    from .dashboard import DashboardData
    from .store import Store, StoreError

    try:
        rows = DashboardData(Store(args.store, readonly=True)).routes(since=args.since)
    except StoreError as e:
        raise CliError(str(e)) from None
    header = ("METHOD", "ROUTE", "COUNT", "ERRORS", "P50 MS", "P95 MS", "P99 MS", "MAX MS",
              "WALL S", "CPU S")
    table = [header] + [
        (r["method"], r["route"], str(r["count"]), str(r["errors"]), f"{r['p50_ms']:.1f}",
         f"{r['p95_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['max_ms']:.1f}", f"{r['wall_s']:.2f}",
         f"{r['cpu_s']:.2f}") for r in rows]
    widths = [max(len(printable(row[i])) for row in table) for i in range(len(header))]
    lines = ["  ".join(printable(cell).ljust(w) if i < 2 else printable(cell).rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
             for row in table]
    if len(table) == 1:
        lines.append("(no requests in this time range)")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _write(output: str | None, data: bytes) -> None:
    if output is None or output == "-":
        try:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): not an error of ours. Point
            # stdout at devnull so the interpreter's final flush is quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return
    try:
        with open(output, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CliError(f"cannot write {output}: {e.strerror or e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)  # usage errors exit 2 with argparse's message
    try:
        if args.command == "render":
            to_stdout = args.output is None or args.output == "-"
            _write(args.output, _render(args, to_stdout))
        elif args.command == "diff":
            _write(args.output, _diff(args))
        elif args.command == "routes":
            _write(None, _routes(args))
        elif args.command == "dashboard":
            from .dashboard import serve
            from .store import StoreError

            try:
                return serve(args.store, args.host, args.port, args.token)
            except (StoreError, ValueError) as e:
                raise CliError(str(e)) from None
            except OSError as e:
                raise CliError(f"cannot listen on {args.host}:{args.port}: "
                               f"{e.strerror or e}") from None
    except CliError as e:
        print(f"reqprof: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print("reqprof: error: out of memory", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
