"""Screenshots of the newest quality and monitoring reports in headless Chromium (docs/images).

python -m scripts.report_screenshots --suffix first-run
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / ".local" / "reports"
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"

log = logging.getLogger("report-screenshots")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suffix", required=True, help="e.g. first-run, several-runs")
    parser.add_argument("--reports", type=Path, default=REPORTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from playwright.sync_api import sync_playwright

    pages = {
        "quality": args.reports / "quality" / "latest.html",
        "monitoring": args.reports / "monitoring" / "monitoring_latest.html",
    }
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            for kind, path in pages.items():
                if not path.exists():
                    log.warning("no %s report at %s", kind, path)
                    continue
                page.goto(path.as_uri())
                out = IMAGES / f"report-{kind}-trends-{args.suffix}.png"
                # The trends section: from its heading down (at most 2,400 px).
                box = page.locator("h2", has_text="Trends").bounding_box()
                height = page.evaluate("document.documentElement.scrollHeight")
                top = box["y"] if box else 0
                clip = {"x": 0, "y": top, "width": 1100, "height": min(2400, height - top)}
                page.screenshot(path=str(out), full_page=True, clip=clip)
                log.info("wrote %s", out.relative_to(ROOT))
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
