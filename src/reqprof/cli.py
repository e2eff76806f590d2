"""The ``reqprof`` command (also ``python -m reqprof``).

    reqprof render PROFILE.json --format html|text|speedscope|pprof|collapsed|json [-o OUT]

``render`` converts a saved profile (the JSON of ``Report.to_json()``, or
what the middleware writes to its output directory) into another format.
Without ``--format`` the format follows OUT's suffix (``.html``, ``.txt``,
``.pb.gz``/``.pprof``, ``.speedscope.json``, ``.folded``/``.collapsed``,
``.json``), else it is ``text``. OUT ``-`` or none is standard output;
PROFILE ``-`` is standard input.

Exit status: 0 on success, 2 on any error (usage, unreadable or invalid
profile, output not writable), with one line on standard error.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Sequence

from ._version import __version__

FORMATS = ("html", "text", "speedscope", "pprof", "collapsed", "json")

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
        choices=FORMATS,
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
    if output is not None and output != "-":
        name = output.lower()
        for suffix, fmt in SUFFIXES:
            if name.endswith(suffix):
                return fmt
    return "text"


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


def _render(args: argparse.Namespace, to_stdout: bool) -> bytes:
    try:
        from .report import Report

        report = Report.from_json(_read_profile(args.profile))
    except ValueError as e:
        raise CliError(f"{_display(args.profile)}: {e}") from None
    except ImportError as e:
        raise CliError(f"the reqprof C extension is not available: {e}") from None
    fmt = args.format or _format_for(args.output)
    if fmt == "pprof":
        if to_stdout and sys.stdout.isatty():
            raise CliError("pprof output is binary (gzip); write it to a file with -o OUT")
        return report.to_pprof()
    if fmt == "text":
        if args.color == "auto":
            color = to_stdout and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        else:
            color = args.color == "always"
        ascii = args.ascii or (to_stdout and not _supports_box_drawing(sys.stdout))
        out = report.to_text(ascii=ascii, color=color, min_percent=args.min_percent, max_lines=args.max_lines)
    elif fmt == "html":
        out = report.to_html()
    elif fmt == "speedscope":
        out = report.to_speedscope()
    elif fmt == "collapsed":
        out = report.to_collapsed()
    else:
        out = report.to_json()
    # Writers replace what is not valid UTF-8 (names from odd code objects
    # included), so this never fails.
    return out.encode("utf-8", "replace")


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
    except CliError as e:
        print(f"reqprof: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print("reqprof: error: out of memory", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
