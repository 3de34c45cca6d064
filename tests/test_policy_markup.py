"""Policy texts are Markdown written by school staff: formatting only, never anything a browser runs.

Each attack is published through the staff form and then read where people read policies: the
parent's agree page, the emailed re-agree link, /me/, the moderator notice, and the staff pages
(the version itself, its diff and the publishing form). On each, whole page and policy alike:
no script, frame or other active element, no event-handler attribute, and no link or source
that runs code (javascript:, vbscript:, data:), however it is spelt. Inside the policy itself
only Markdown's own elements and attributes appear, and links go to web pages, email addresses
or phone numbers. Hypothesis then tries the renderer with mixtures of the same tricks.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membership import journey, policies
from membership.db import session_scope
from membership.models import Membership, Role

from .conftest import Browser, text_of
from .test_hostile_input import HOSTILE, World

ATTACKS = (
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    "<svg onload=alert(1)>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click]( javascript:alert(1) )",
    "[click](<javascript:alert(1)>)",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;avascript&#x3A;alert(1))",
    "[click](javascript&colon;alert(1))",
    "[click](java&#x09;script:alert(1))",
    "[click](&#x20;javascript:alert(1))",
    "[click](%6Aavascript:alert(1))",
    "[click][evil]\n\n[evil]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](data:image/png;base64,iVBORw0KGgo=)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](javascript:alert(1))",
    '![x" onerror="alert(1)](https://example.com/a.png)',
    '[click](https://example.com "a\\" onmouseover=\\"alert(1)")',
    "[click](file:///etc/passwd)",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "    <script>alert(1)</script>",
    "<!-- <script>alert(1)</script> -->",
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
    "<base href=javascript:alert(1)//>",
    "<form action=javascript:alert(1)><button>go</button></form>",
    "| rule | note |\n|:-:|--:|\n| <script>alert(1)</script> | [x](javascript:alert(1)) |",
    "<details open ontoggle=alert(1)>",
    "[<img src=x onerror=alert(1)>](https://example.com)",
)

# What Markdown itself makes, and the attributes it gives each element.
PROSE = {
    "p": set(), "em": set(), "strong": set(), "code": {"class"}, "pre": set(), "ul": set(), "ol": {"start"},
    "li": set(), "h1": set(), "h2": set(), "h3": set(), "h4": set(), "h5": set(), "h6": set(),
    "blockquote": set(), "hr": set(), "br": set(), "table": set(), "thead": set(), "tbody": set(), "tr": set(),
    "th": {"style"}, "td": {"style"}, "a": {"href", "title"}, "img": {"src", "alt", "title"}, "s": set(),
}
ACTIVE = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "base", "style",
          "template", "portal", "noscript", "details"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "srcdoc", "data", "poster", "background", "xlink:href"}
SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):", re.IGNORECASE)
C0_AND_SPACE = "".join(chr(n) for n in range(0x21))


def scheme(url: str) -> str | None:
    """A URL's scheme as a browser reads it: leading controls and spaces dropped, tabs and line breaks ignored."""
    cleaned = re.sub(r"[\t\n\r]", "", url).lstrip(C0_AND_SPACE)
    match = SCHEME.match(cleaned)
    return match.group(1).lower() if match else None


class Elements(HTMLParser):
    """Every element with its attributes, entities decoded as a browser decodes them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note an element and its attributes."""
        self.found.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def assert_nothing_runs(html: str) -> None:
    """No active element, no event handler and no link or source that runs code, anywhere on the page."""
    for tag, attributes in Elements(html).found:
        assert tag not in ACTIVE, f"<{tag}> on the page"
        for name, value in attributes.items():
            assert not name.startswith("on"), f"<{tag} {name}=…> on the page"
            if name in URL_ATTRIBUTES:
                assert scheme(value) not in ("javascript", "vbscript", "data", "file"), f"<{tag} {name}={value!r}>"
        if tag == "meta":
            assert "http-equiv" not in attributes, f"<meta http-equiv> on the page: {attributes}"


def assert_only_markdown(prose: str) -> None:
    """A rendered policy holds Markdown's own elements only, with links to web pages, email or phone numbers."""
    assert_nothing_runs(prose)
    for tag, attributes in Elements(prose).found:
        assert tag in PROSE, f"<{tag}> in a policy"
        assert set(attributes) <= PROSE[tag], f"<{tag} {attributes}> in a policy"
        for name in ("href", "src"):
            if name in attributes:
                assert scheme(attributes[name]) in (None, "http", "https", "mailto", "tel"), attributes
        if "style" in attributes:
            assert re.fullmatch(r"text-align:(left|right|center)", attributes["style"]), attributes
        if tag == "code" and "class" in attributes:
            # A fenced block's language, whatever was typed after the ```: text inside the attribute, no markup.
            assert attributes["class"].startswith("language-"), attributes


def policies_on(page) -> list[str]:
    """The rendered policy texts on a page."""
    return re.findall(r'<div class="prose">(.*?)</div>', page.get_data(as_text=True), re.S)


def publish(staff: Browser, kind: str, text: str) -> int:
    """Publish a material version through the staff form; return its number."""
    response = staff.submit(f"/school/policies/{kind}/new",
                            {"text": text, "material": "material", "change_note": "A test of the renderer."})
    assert response.status_code == 303, text_of(response)[:400]
    return int(response.headers["Location"].rsplit("/", 1)[1])


@pytest.fixture
def readers(school, db, make_account, make_browser) -> dict[str, Browser]:
    """Everyone who reads a policy, each where they read it, and the member of staff who publishes it."""
    world = World(db, make_account, make_browser)
    member = world.membership()
    world.must_reagree(member)
    with session_scope() as session:
        reagree_link = Browser.path(journey.reagree_link(session.get(Membership, member)))
    staff, joining, emailed, me = world.staff, world.at_agree(), world.make_browser(), world.signed_in_parent(member)
    moderator = world.account("new.rep@elm.example", Role.MODERATOR, accept_notice=False)
    return {
        "the version": (staff, "/school/policies/code_of_conduct/{number}"),
        "its diff": (staff, "/school/policies/code_of_conduct/{number}/diff"),
        "the publishing form": (staff, "/school/policies/code_of_conduct/new"),
        "the agree page": (joining, "/join/year-2-ash/agree"),
        "the emailed re-agree link": (emailed, reagree_link),
        "agreeing again at /me/": (me, f"/me/groups/{member}/reagree"),
        "the moderator notice": (moderator, "/moderate/notice"),
    }


SHOWING_THE_POLICY = {"the version", "the agree page", "the emailed re-agree link", "agreeing again at /me/",
                      "the moderator notice"}


def test_a_hostile_policy_is_shown_as_text_wherever_it_is_read(readers: dict) -> None:
    """Each attack, published as the code of conduct and the moderator notice, runs on no page that shows it.

    One test for all of them: every attack needs the same five readers, and making them is most of the time.
    """
    staff = readers["the version"][0]
    for attack in ATTACKS:
        text = f"# Our rules\n\nBe kind.\n\n{attack}\n\nThe end.\n"
        number = publish(staff, "code_of_conduct", text)
        publish(staff, "moderator_notice", text)
        for where, (browser, path) in readers.items():
            page = browser.get(path.format(number=number))
            assert page.status_code == 200, f"{attack!r} on {where}: {page.status_code}"
            try:
                assert_nothing_runs(page.get_data(as_text=True))
                shown = policies_on(page)
                if where in SHOWING_THE_POLICY:
                    assert shown, "the policy is not on the page"
                    assert "Be kind." in text_of(page) and "The end." in text_of(page), "the text was cut short"
                for prose in shown:
                    assert_only_markdown(prose)
            except AssertionError as failure:
                raise AssertionError(f"{attack!r} on {where}: {failure}") from failure


def test_markdown_still_formats_and_links_to_web_pages() -> None:
    """Headings, lists, emphasis, tables and ordinary links survive: only what runs is taken out."""
    html = str(policies.render(
        "## Rules\n\n- Be **kind**\n- See [the policy](https://elm.example/policy), "
        "[email us](mailto:office@elm.example) or [call](tel:+441234567890)\n\n"
        "| rule | why |\n|:--|--:|\n| kind | always |\n"
    ))
    assert "<h2>Rules</h2>" in html
    assert "<strong>kind</strong>" in html
    assert '<a href="https://elm.example/policy">the policy</a>' in html
    assert '<a href="mailto:office@elm.example">email us</a>' in html
    assert '<a href="tel:+441234567890">call</a>' in html
    assert '<th style="text-align:left">rule</th>' in html


PIECES = st.sampled_from([
    *ATTACKS, "<", ">", "&", "&#", "&#x", ";", "[", "]", "(", ")", "!", "`", "\n", "\n\n", " ", "\t", "\"", "'",
    "javascript:", "JAVASCRIPT:", "java\tscript:", "vbscript:", "data:", "data:image/png;base64,", "&colon;",
    "&#58;", "&#x3a;", "%3A", "<a ", "<img ", "onerror=", "onload=", "href=", "src=", "https://example.com",
    "mailto:a@example.com", "*", "_", "#", "|", "-", ":", "\u202e", "\u200d", "e\u0301",
])


@settings(HOSTILE, max_examples=300)
@given(st.lists(PIECES, max_size=30).map("".join))
def test_any_mixture_of_the_tricks_renders_to_markdown_only(text: str) -> None:
    """However the pieces of an attack are put together, the renderer makes only Markdown's own elements."""
    assert_only_markdown(str(policies.render(text)))
