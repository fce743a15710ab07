"""Load an HTML file in headless Chromium: what the DOM says after load, and a screenshot.

The page is copied with a small probe script appended that, on the window's load event (which waits for
every image), records how many images there are, which did not decode (naturalWidth 0), and how many
tables and rows were laid out; `--dump-dom` then prints the DOM with the probe's JSON in it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const probe = {
    images: images.length,
    broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 40)),
    tables: document.querySelectorAll("table").length,
    rows: document.querySelectorAll("tbody tr").length,
    smallest_rendered: Math.min(...images.map(i => i.getBoundingClientRect().width)),
  };
  const out = document.createElement("pre");
  out.id = "bench-probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _flags(profile: Path) -> list[str]:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--user-data-dir={profile}"]


def probe_page(browser: str, html: Path, workdir: Path, timeout: int = 180) -> dict:
    text = html.read_text(encoding="utf-8")
    if "</body>" not in text:
        raise AssertionError(f"{html} has no </body>")
    probed = workdir / "probed.html"
    probed.write_text(text.replace("</body>", PROBE + "\n</body>", 1), encoding="utf-8")
    out = subprocess.run(
        [browser, *_flags(workdir / "profile"), "--virtual-time-budget=15000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    match = re.search(r'<pre id="bench-probe">(.*?)</pre>', out.stdout, re.S)
    if match is None:
        raise AssertionError(f"the probe did not run (exit {out.returncode}): {out.stderr[-2000:]}")
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(browser: str, html: Path, png: Path, workdir: Path, size=(1280, 2400), timeout: int = 180) -> Path:
    subprocess.run(
        [browser, *_flags(workdir / "profile-shot"), f"--window-size={size[0]},{size[1]}",
         f"--screenshot={png}", html.as_uri()],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if not png.is_file():
        raise AssertionError(f"{browser} wrote no screenshot of {html}")
    return png


class PageParser(HTMLParser):
    """Tables (rows of cell texts), image sources and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        for name in ("src", "href", "srcset", "data", "action"):
            if name in attrs:
                self.urls.append((tag, name, attrs[name] or ""))
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser
