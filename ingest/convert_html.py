"""HTML conversion with BeautifulSoup (lxml): the main content only, as headings and blocks.

Site chrome (navigation, sidebars, footers, permalink markers) repeats on every page of a site
and would swamp retrieval with near-duplicate chunks, so it is removed before the walk.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

if TYPE_CHECKING:
    from ingest.builder import DocumentBuilder

__all__ = ["convert_html"]

_DROP = (
    "script, style, noscript, template, svg, nav, aside, form, iframe, object, embed, canvas, "
    "button, select, textarea, input, "
    "[role=navigation], [role=banner], [role=contentinfo], [role=search], [hidden], "
    "[aria-hidden=true], div.sphinxsidebar, div.related, div.footer, a.headerlink"
)
_MAIN = ("main", "[role=main]", "article", "div.body", "div.document", "body")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_BLOCKS = {
    "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "header", "hr", "html", "li",
    "main", "ol", "p", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul",
}  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_SKIP_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def convert_html(text: str, b: DocumentBuilder) -> None:
    """Fill ``b`` from decoded HTML: title, headings as sections, block elements as paragraphs."""
    soup = BeautifulSoup(text, "lxml")
    title_tag = soup.find("title")
    if title_tag is not None:
        b.title = title_tag.get_text(" ", strip=True) or None
    for tag in soup.select(_DROP):
        tag.decompose()
    for tag in soup.find_all(["header", "footer"]):
        # An article's own header/footer is content; the page's is chrome.
        if tag.find_parent(["article", "main", "section"]) is None:
            tag.decompose()
    for tag in soup.find_all(style=_HIDDEN_STYLE):
        tag.decompose()
    root = next((t for sel in _MAIN if (t := soup.select_one(sel)) is not None), soup)
    if b.title is None and (h1 := root.find("h1")) is not None:
        b.title = h1.get_text(" ", strip=True) or None
    walker = _Walker(b)
    walker.walk(root)
    walker.flush()


class _Walker:
    """Depth-first walk that buffers inline text and flushes it at block boundaries."""

    def __init__(self, b: DocumentBuilder) -> None:
        self.b = b
        self.buffer: list[str] = []
        self.prefix = ""  # list marker waiting for the first text of its item

    def flush(self) -> None:
        text = "".join(self.buffer)
        self.buffer.clear()
        if text.strip():
            self.b.paragraph(self.prefix + text.strip(" "))
            self.prefix = ""

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, _SKIP_STRINGS):
                    self.buffer.append(_HTML_SPACE.sub(" ", str(child)))
            elif isinstance(child, Tag):
                self.element(child)

    def element(self, tag: Tag) -> None:
        name = tag.name
        if name in _HEADINGS:
            self.flush()
            self.b.heading(_HEADINGS[name], tag.get_text(" "))
        elif name == "pre":
            self.flush()
            self.b.paragraph(tag.get_text(), preserve_indent=True)
        elif name == "br":
            self.buffer.append("\n")
        elif name == "tr" and tag.find(["table", "pre", "p", "ul", "ol", "div"]) is None:
            self.flush()
            cells = [c.get_text(" ", strip=True) for c in tag.find_all(["td", "th"])]
            self.b.paragraph(" | ".join(c for c in cells if c))
        elif name == "li":
            self.flush()
            self.prefix = "- "
            self.walk(tag)
            self.flush()
            self.prefix = ""
        elif name in _BLOCKS:
            self.flush()
            self.walk(tag)
            self.flush()
        else:
            self.walk(tag)
