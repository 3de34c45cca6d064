"""A browser tab that photographs and audits every page it lands on: axe-core at WCAG 2.2 AA and reflow."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..live_server import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Response

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright every browser test is skipped, with the reason (see conftest.py)
    expect = None

# Debian's chromium package; E2E_CHROMIUM points elsewhere (a missing path shows how the tests skip).
CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}
# Every focusable thing on the longest page (the agreement) is well within this many presses of Tab.
MAX_TABS = 80


def missing() -> str | None:
    """Why the browser tests cannot run on this machine, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -r requirements-dev.txt)"
    if importlib.util.find_spec("axe_playwright_python") is None:
        return "axe-playwright-python is not installed (pip install -r requirements-dev.txt)"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install chromium)"
    return None


def axe_source() -> str:
    """The axe-core script bundled with axe-playwright-python."""
    spec = importlib.util.find_spec("axe_playwright_python")
    return (Path(spec.origin).parent / "axe.min.js").read_text(encoding="utf-8")


def describe(violations: list[dict], where: str) -> str:
    """One line per offending node: rule id, impact, page and the node's CSS target, then axe's advice."""
    lines = [f"axe-core found {len(violations)} WCAG 2.2 AA rule(s) broken on {where}:"]
    for violation in violations:
        for node in violation["nodes"]:
            target = " ".join(" >> ".join(part) if isinstance(part, list) else part for part in node["target"])
            summary = " ".join((node.get("failureSummary") or "").split())
            lines.append(
                f"- {violation['id']} (impact: {violation['impact']}) on {where}\n"
                f"    target: {target}\n    html: {node['html'][:200]}\n"
                f"    {violation['help']}: {summary}\n    {violation['helpUrl']}"
            )
    return "\n".join(lines)


def slug(text: str) -> str:
    """A file-name-safe form of a test or page name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


class Screen:
    """One person's browser tab on Classgate.

    Every page it lands on is saved as a screenshot under test-artifacts/ and checked: axe-core finds no
    WCAG 2.2 AA violation, and nothing makes the page scroll sideways at this width (WCAG 1.4.10, reflow).
    With JavaScript disabled axe-core cannot run in the tab itself (it needs timers), so the page as the
    browser holds it is audited in a separate tab of the same size that has JavaScript.
    """

    def __init__(self, page: Page, base_url: str, folder: Path, auditor: Callable[[], Page] | None,
                 touch: bool = False) -> None:
        self.page = page
        self.touch = touch
        self.base_url = base_url
        self.folder = folder
        self.auditor = auditor
        self.visited: list[str] = []
        self.response: Response | None = None

    def url(self, path: str) -> str:
        """An absolute URL on the server for a path (emailed links are already absolute)."""
        return path if path.startswith("http") else self.base_url + path

    def visit(self, path: str, name: str, status: int = 200) -> Response:
        """Open a URL as if typed or followed from an email, and check the page."""
        response = self.page.goto(self.url(path))
        return self.landed(response, name, status)

    def follow(self, target: Locator | Callable[[], object], name: str, status: int = 200) -> Response:
        """Press a button or link (or do something else that loads a new page), then check that page."""
        with self.page.expect_navigation() as navigation:
            if callable(target):
                target()
            else:
                self.activate(target)
        return self.landed(navigation.value, name, status)

    def activate(self, target: Locator) -> None:
        """Tap it on a touch screen, click it with a mouse."""
        (target.tap if self.touch else target.click)()

    def landed(self, response: Response | None, name: str, status: int) -> Response:
        """Check the page a navigation ended on, and that it answered with the expected status."""
        assert response is not None, f"{name}: no page was loaded"
        self.response = response
        self.check(name)
        assert response.status == status, (
            f"{name}: {response.url} answered {response.status}, expected {status}\n{self.text()[:1500]}"
        )
        return response

    def check(self, name: str) -> None:
        """Screenshot the page, then audit it if it is one of Classgate's."""
        self.visited.append(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=self.folder / f"{len(self.visited):02d}-{slug(name)}.png", full_page=True)
        if not self.page.url.startswith(self.base_url):
            return  # the chat platform's page is not ours to audit
        where = f"{name} ({self.page.url.removeprefix(self.base_url)})"
        widths = self.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{where} scrolls sideways: {widths[0]} px of content in a {widths[1]} px window"
        violations = self.axe(self.page if self.auditor is None else self.copy())
        assert not violations, describe(violations, where)

    def copy(self) -> Page:
        """The page as this tab holds it, loaded at its address in the auditor's tab (styles from the server).

        The copy keeps the page's Content-Security-Policy, so what the policy blocks (inline styles) is
        left out of the audit just as the browser left it out of the page.
        """
        html, url = self.page.content(), self.page.url.split("#")[0]
        policy = self.response.headers.get("content-security-policy") if self.response else None
        headers = {"Content-Security-Policy": policy} if policy else {}
        auditor = self.auditor()
        auditor.unroute_all()
        auditor.route(url, lambda route: route.fulfill(
            status=200, content_type="text/html; charset=utf-8", headers=headers, body=html,
        ))
        auditor.goto(url)
        return auditor

    @staticmethod
    def axe(page: Page) -> list[dict]:
        """The WCAG 2.0, 2.1 and 2.2 A and AA rules axe-core finds broken on a page."""
        page.evaluate(AXE_SOURCE)
        return page.evaluate(
            "options => axe.run(document, options).then(results => results.violations)",
            {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]},
        )

    def text(self) -> str:
        """The page's visible text, whitespace collapsed."""
        return " ".join(self.page.locator("body").inner_text().split())

    # --- The keyboard alone ----------------------------------------------------------------------

    def tab_to(self, target: Locator) -> None:
        """Press Tab until the target has the focus; fail, saying where the focus went, if it never gets it."""
        trail = []
        for _ in range(MAX_TABS):
            self.page.keyboard.press("Tab")
            if target.evaluate("element => element === document.activeElement"):
                return
            trail.append(self.page.evaluate(FOCUSED))
        raise AssertionError(f"{target} never took the focus after {MAX_TABS} presses of Tab; the focus went to: "
                             + " | ".join(dict.fromkeys(trail)))

    def press(self, target: Locator, key: str = "Enter") -> None:
        """Tab to the target, then press a key on it."""
        self.tab_to(target)
        self.page.keyboard.press(key)

    def type_into(self, target: Locator, text: str) -> None:
        """Tab to a field and type into it, as a person would."""
        self.tab_to(target)
        self.page.keyboard.type(text)


# Describes the focused element, for a message when Tab never reaches a target.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el) return 'nothing';
  const text = (el.getAttribute('aria-label') || el.innerText || el.value || el.id || '').trim().slice(0, 40);
  return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${text}"`;
}"""

AXE_SOURCE = axe_source() if missing() is None else ""
