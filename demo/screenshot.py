"""`python -m demo.screenshot [--out PATH] [--energy]`: a picture of the running demo.

Logs into the demo's Home Assistant (started by `./scripts/demo`, credentials from its data
folder) in headless Chromium and saves the Joulegate dashboard, or with `--energy` the Energy
dashboard that the demo sets up (its *Energy* tab, /energy/electricity: the house's sources and
the rigs as individual devices; the *Summary* tab has no devices), as a PNG.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from demo.browser import chromium_page, dashboard_cards, ensure_chromium, log_in
from demo.ha_config import DASHBOARD_URL_PATH
from demo.procs import REPO_ROOT
from demo.stack import Credentials

if TYPE_CHECKING:
    from playwright.sync_api import Page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.screenshot")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".demo-data")
    parser.add_argument("--ha-port", type=int, default=8123)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshot.png")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument(
        "--energy",
        action="store_true",
        help="the Energy dashboard's Energy tab (/energy/electricity) instead",
    )
    args = parser.parse_args(argv)

    creds = Credentials.load(args.data_dir / "credentials.json")
    if creds is None:
        print(
            f"no demo credentials in {args.data_dir}: start ./scripts/demo first", file=sys.stderr
        )
        return 1
    chromium, how = ensure_chromium()
    if chromium is None:
        print(f"no Chromium: {how}", file=sys.stderr)
        return 1
    with chromium_page(chromium, width=args.width, height=args.height) as page:
        path = "/energy/electricity" if args.energy else f"/{DASHBOARD_URL_PATH}/joulegate"
        log_in(page, f"http://127.0.0.1:{args.ha_port}", path, creds.username, creds.password)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _drawn(page, energy=args.energy):
            page.wait_for_timeout(1000)
        page.wait_for_timeout(4000)  # the graphs
        # A viewport as tall as the page: the Energy panel's date bar sticks to the viewport's
        # bottom, and would otherwise sit across the cards in the middle of a full-page picture.
        height = page.evaluate("document.documentElement.scrollHeight")
        if height > args.height:
            page.set_viewport_size({"width": args.width, "height": height})
            page.wait_for_timeout(3000)  # the cards lay out again
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
    print(f"saved {args.out}")
    return 0


def _drawn(page: Page, *, energy: bool) -> bool:
    """Whether the page's cards are there: the Energy panel's cards, or the dashboard's tiles
    with a state each."""
    cards = dashboard_cards(page)
    if energy:
        return any(c.type.startswith("hui-energy-") for c in cards)
    tiles = [c for c in cards if c.type == "hui-tile-card"]
    return bool(tiles) and all(c.text != (c.title or "") for c in tiles)


if __name__ == "__main__":
    sys.exit(main())
