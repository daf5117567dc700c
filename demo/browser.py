"""Headless Chromium (Debian's package) driven by Playwright: log into Home Assistant, look.

Playwright comes from PyPI; the browser is Debian's `chromium`, never one Playwright downloads
(`playwright install` is not used). `ensure_chromium` installs the Debian packages when they are
missing and this is a root shell with apt-get.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
APT_PACKAGES = ("chromium", "chromium-driver")


def find_chromium() -> str | None:
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def ensure_chromium(timeout: float = 900.0) -> tuple[str | None, str]:
    """Chromium's path, installing Debian's packages if needed; or None and why not."""
    found = find_chromium()
    if found:
        return found, f"found {found}"
    apt = shutil.which("apt-get")
    if apt is None:
        return None, "no chromium, and no apt-get to install Debian's chromium package"
    if os.geteuid() != 0:
        return None, "no chromium, and not root: run `apt-get install chromium chromium-driver`"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log: list[str] = []
    for argv in (
        [apt, "update", "-qq"],
        [apt, "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
    ):
        print(f"$ {' '.join(argv)}", flush=True)
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv
                argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None, f"{' '.join(argv)} took longer than {timeout:.0f} s"
        log.append(done.stdout[-2000:] + done.stderr[-2000:])
        if done.returncode != 0:
            return None, f"{' '.join(argv)} failed ({done.returncode}): {log[-1].strip()}"
    found = find_chromium()
    if found:
        return found, f"installed Debian's {' and '.join(APT_PACKAGES)}"
    return None, "apt-get installed chromium but no chromium binary was found"


@contextmanager
def chromium_page(executable: str, *, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A page in a fresh headless Chromium with a fresh profile, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="joulegate-chromium-") as profile,
        sync_playwright() as p,
    ):
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
            locale="en-US",
        )
        try:
            context.set_default_timeout(30_000)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def log_in(page: Page, base_url: str, path: str, username: str, password: str) -> None:
    """Open `path`, log in on Home Assistant's login page, and wait for `path` to load."""
    page.goto(f"{base_url}{path}")
    page.wait_for_url("**/auth/authorize**")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{path}*", timeout=60_000)


# Collects every dashboard card, looking through shadow roots, with the text it shows.
_CARDS_JS = """
() => {
  const cards = [];
  const textOf = (node) => {
    let out = "";
    const walk = (n) => {
      if (n.nodeType === Node.TEXT_NODE) { out += n.textContent + " "; return; }
      if (n.nodeType !== Node.ELEMENT_NODE && n.nodeType !== Node.DOCUMENT_FRAGMENT_NODE) return;
      if (n.nodeName === "STYLE" || n.nodeName === "SCRIPT") return;
      if (n.shadowRoot) walk(n.shadowRoot);
      for (const c of n.childNodes) walk(c);
    };
    walk(node);
    return out.replace(/\\s+/g, " ").trim();
  };
  const visit = (root) => {
    for (const el of root.querySelectorAll("*")) {
      const tag = el.tagName.toLowerCase();
      if (tag.startsWith("hui-") && tag.endsWith("-card") && tag !== "hui-card") {
        const config = el._config || el.config || {};
        cards.push({
          type: tag,
          entity: config.entity || null,
          title: config.title || config.heading || config.name || null,
          text: textOf(el),
          canvas: !!(el.shadowRoot && el.shadowRoot.querySelector("ha-chart-base, canvas")),
        });
      }
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return cards;
}
"""


@dataclass(frozen=True, slots=True)
class Card:
    type: str
    entity: str | None
    title: str | None
    text: str


def dashboard_cards(page: Page) -> list[Card]:
    raw: list[dict[str, Any]] = page.evaluate(_CARDS_JS)
    return [Card(c["type"], c["entity"], c["title"], c["text"]) for c in raw]


# Every tile's texts that are cut off: an element that clips its text (ellipsis, or hidden
# overflow without wrapping) whose content is wider than its box. Looks through shadow roots and
# into slots, where the tile puts its name and state.
_CLIPPED_JS = """
() => {
  const textOf = (node) => {
    let out = "";
    const walk = (n) => {
      if (n.nodeType === Node.TEXT_NODE) { out += n.textContent + " "; return; }
      if (n.nodeType !== Node.ELEMENT_NODE && n.nodeType !== Node.DOCUMENT_FRAGMENT_NODE) return;
      if (n.nodeName === "STYLE" || n.nodeName === "SCRIPT") return;
      if (n.nodeName === "SLOT") { for (const a of n.assignedNodes({flatten: true})) walk(a); }
      if (n.shadowRoot) walk(n.shadowRoot);
      for (const c of n.childNodes) walk(c);
    };
    walk(node);
    return out.replace(/\\s+/g, " ").trim();
  };
  const clips = (el) => {
    const style = getComputedStyle(el);
    if (style.textOverflow === "ellipsis") return true;
    const hidden = ["hidden", "clip"].includes(style.overflowX);
    return hidden && style.whiteSpace.startsWith("nowrap");
  };
  const found = [];
  const inTile = (tile, root) => {
    for (const el of root.querySelectorAll("*")) {
      if (clips(el) && el.scrollWidth > el.clientWidth + 1) {
        const text = textOf(el);
        if (text) found.push({entity: (tile._config || {}).entity || null, text,
                              scroll: el.scrollWidth, client: el.clientWidth});
      }
      if (el.shadowRoot) inTile(tile, el.shadowRoot);
    }
  };
  const visit = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.tagName.toLowerCase() === "hui-tile-card" && el.shadowRoot) inTile(el, el.shadowRoot);
      else if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return found;
}
"""


@dataclass(frozen=True, slots=True)
class Clipped:
    entity: str | None
    text: str
    scroll_width: int
    client_width: int


def clipped_tile_texts(page: Page) -> list[Clipped]:
    """The tiles' names and states that do not fit their box (shown cut off, with an ellipsis)."""
    raw: list[dict[str, Any]] = page.evaluate(_CLIPPED_JS)
    return [Clipped(c["entity"], c["text"], c["scroll"], c["client"]) for c in raw]
