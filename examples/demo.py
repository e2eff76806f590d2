"""`make demo`: serve the bookshop example (examples/fastapi_app.py) under
uvicorn with profiling on, write demo-report.html (and .json, .txt) from one
profiled request, then keep serving so you can try ``?profile=1`` yourself.

    python examples/demo.py [--port 8000] [--report demo-report.html] [--no-serve]

The port is --port, else the PORT environment variable, else 8000 (`make demo
PORT=8001` passes --port).

The environment and a `.env` file still apply (ENABLE_PROFILING,
PROFILING_SAMPLE_RATE and PROFILING_STORE default to on, 0.2 and
demo-store.sqlite3 here).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("ENABLE_PROFILING", "true")
os.environ.setdefault("PROFILING_SAMPLE_RATE", "0.2")
# The production view: aggregates and kept reports in a store the dashboard
# reads (`python -m reqprof dashboard --store demo-store.sqlite3`).
os.environ.setdefault("PROFILING_STORE", "demo-store.sqlite3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from reqprof import Report, Settings  # noqa: E402

ENDPOINTS = [
    ("/books/7", "async def: two awaits in parallel, then CPU work"),
    ("/search?q=silent+garden", "def: CPU work in a worker thread"),
    ("/stats", "JSON endpoint"),
    ("/export.csv", "streaming response"),
    ("/checkout", "fails: the report shows the exception"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000),
                        help="port to serve on (default: $PORT, else 8000)")
    parser.add_argument("--report", default="demo-report.html")
    parser.add_argument("--no-serve", action="store_true",
                        help="write the report and stop instead of serving")
    args = parser.parse_args()

    from fastapi_app import app

    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            other = args.port + 1
            print(f"demo: could not start the server on {args.host}:{args.port} (see the "
                  f"error above); if the port is in use, choose another: make demo PORT={other} "
                  f"(or python examples/demo.py --port {other})", file=sys.stderr)
            return 1
        time.sleep(0.02)

    settings = Settings.from_env()
    # With PROFILING_TOKEN set, reports need it in the X-Profiling-Token header.
    headers = {"X-Profiling-Token": settings.token} if settings.token else {}
    curl_token = ' -H "X-Profiling-Token: $PROFILING_TOKEN"' if settings.token else ""
    base = f"http://{args.host}:{args.port}"
    try:
        if not settings.manual:
            raise RuntimeError("PROFILING_MANUAL is off: unset it to run the demo")
        with httpx.Client(base_url=base, timeout=60) as client:
            client.get("/books/1")          # warm up: imports, first-call caches
            response = client.get("/books/7?profile=1&profile_format=json", headers=headers)
        response.raise_for_status()
        if not response.headers.get("content-type", "").startswith("application/json"):
            raise RuntimeError("no report came back: is ENABLE_PROFILING off, is "
                               "PROFILING_TOKEN wrong, or did reqprof._core fail to "
                               "load? (see the log above)")
        # One profile, three files: the JSON as served, the HTML and text
        # reports rendered from it.
        report = Report.from_json(response.text)
        html = Path(args.report)
        written = [html.with_suffix(".json"), html, html.with_suffix(".txt")]
        written[0].write_bytes(response.content)
        html.write_text(report.to_html(), encoding="utf-8")
        written[2].write_text(report.to_text(), encoding="utf-8")
    except Exception as exc:
        print(f"demo: {exc}", file=sys.stderr)
        server.should_exit = True
        thread.join()
        return 1

    rate = settings.sample_rate
    print(f"\nreqprof demo: the bookshop example is on {base} with profiling on.")
    print(f"Wrote {', '.join(str(p) for p in written)} from GET /books/7?profile=1: "
          f"open {args.report} in a browser.\n")
    print("Add ?profile=1 to any request for its report instead of the response"
          + (" (with the X-Profiling-Token header):" if settings.token else ":"))
    width = max(len(base + path) for path, _ in ENDPOINTS) + len("?profile=1") + 2
    for path, what in ENDPOINTS:
        url = f"{base}{path}{'&' if '?' in path else '?'}profile=1"
        print(f"  {url:<{width}} {what}")
    print(f"\n  curl{curl_token} '{base}/books/7?profile=1&profile_format=text'")
    print(f"  curl{curl_token} -o report.html '{base}/search?q=garden&profile=1'\n")
    print(f"Requests without it are sampled ({rate:.0%} of them) and their profiles logged "
          "below.")
    if settings.store:
        print(f"Every sampled request also goes to the store {settings.store}: browse it with\n"
              f"  python -m reqprof dashboard --store {settings.store}    (http://127.0.0.1:8050)")
    print("Ctrl-C to stop.\n")
    if args.no_serve:
        server.should_exit = True
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
