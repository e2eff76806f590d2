"""How long the HTML report takes to show a 50,000-node profile.

Builds the page the way the report writer does (tests/viewer_fixtures.py),
opens it in headless Chromium (Debian's ``chromium``, driven by Playwright)
several times and prints, per run and as the median:

- first view: from the start of the viewer's script to the call tree on
  screen (JSON.parse, index, hot path, first rows), the page's own
  ``data-render-ms``;
- since navigation: the same moment measured from the start of navigation
  (includes reading and parsing the ~18 MB page);
- flame graph: switching to the flame graph (layout + first draw);
- top functions: switching to the table (aggregation + first rows).

    python bench/viewer_render.py [--nodes 50000] [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import viewer_fixtures as fx  # noqa: E402

CHROMIUM = os.environ.get("REQPROF_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

SWITCH = """(view) => {
    const t = performance.now();
    document.getElementById('rp-tab-' + view).click();
    return new Promise((resolve) => requestAnimationFrame(() => resolve(performance.now() - t)));
}"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()

    from playwright.sync_api import sync_playwright

    profile = fx.large_profile(opts.nodes)
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "large.html"
        page_path.write_text(fx.page_html(profile), encoding="utf-8")
        size_mb = page_path.stat().st_size / 1e6
        print(f"{opts.nodes} nodes, page {size_mb:.1f} MB, {opts.runs} runs")
        results: dict[str, list[float]] = {"first view": [], "since navigation": [], "flame graph": [], "top functions": []}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for run in range(opts.runs):
                page = browser.new_page(viewport={"width": 1400, "height": 860})
                page.goto(page_path.as_uri())
                page.wait_for_selector("html[data-render-ms]")
                row = {
                    "first view": float(page.evaluate("document.documentElement.dataset.renderMs")),
                    "since navigation": float(page.evaluate("document.documentElement.dataset.loadMs")),
                    "flame graph": page.evaluate(SWITCH, "flame"),
                    "top functions": page.evaluate(SWITCH, "top"),
                }
                for k, v in row.items():
                    results[k].append(v)
                print(f"  run {run + 1}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in row.items()))
                page.close()
            browser.close()
    print("median: " + ", ".join(f"{k} {statistics.median(v):.0f} ms" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
