"""HTML: the text a browser would show, with the stdlib's streaming `HTMLParser`.

No tree is built, so deeply nested markup cannot exhaust the stack; each tag costs O(1) here.
Content that is never shown (script, style, template, noscript, svg, iframe, object, the head
except its title, elements marked `hidden` or `aria-hidden="true"`) is skipped; block elements
start new paragraphs or lines; entities are unescaped.

The whole document is fed at once. An unterminated tag or comment at the end (``<a href='…``
with no closing quote) is dropped instead of handed to `close()`: a browser drops it too, and
`close()` re-scans the rest of the input at every ``<`` in it, which is quadratic (CPython
3.11.7 here; python/cpython#135462, CVE-2025-6069): 60 KB of ``<a `` took 30 s.
"""

import re
from html.parser import HTMLParser

from search.documents.encoding import decode
from search.documents.extracted import Deadline, ExtractedDocument, clean_title
from search.documents.text import normalise
from search.media.rejections import CorruptMedia

# Never shown: their content is skipped up to the matching end tag.
SKIPPED = frozenset({
    "script", "style", "template", "noscript", "svg", "iframe", "object", "canvas", "audio", "video",
    "select", "datalist",
})
VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param", "source", "track",
    "wbr",
})
PARAGRAPH = frozenset({
    "p", "div", "section", "article", "aside", "header", "footer", "main", "nav", "h1", "h2", "h3", "h4", "h5", "h6",
    "hgroup", "blockquote", "pre", "table", "ul", "ol", "dl", "menu", "figure", "form", "fieldset", "address",
    "details", "center", "hr", "body",
})
LINE = frozenset({"li", "tr", "br", "dt", "dd", "figcaption", "caption", "summary", "legend", "option"})
CELL = frozenset({"td", "th"})
HEAD_CONTENT = frozenset({"html", "head", "title", "meta", "link", "style", "script", "base", "noscript", "template"})
# Elements whose end tag may be left out: `hidden` on them is ignored, since their end cannot be
# tracked without a tree (a hidden unclosed <p> would hide the rest of the page).
OPTIONAL_END = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot",
                          "colgroup", "rb", "rt", "rp", "rtc", "html", "head", "body"})
PRESERVED = frozenset({"pre", "textarea", "listing", "plaintext", "xmp"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_SPACES = re.compile(r"\s+")
_RANK = {"": 0, " ": 1, "\n": 2, "\n\n": 3}  # a paragraph break wins over a line break over a space
# <meta charset="x"> or <meta http-equiv="Content-Type" content="text/html; charset=x">, in the first bytes.
_META_CHARSET = re.compile(rb"<meta[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]{1,40})", re.I)
META_SCAN_BYTES = 4096


def extract_html(data: bytes, *, timeout: float) -> ExtractedDocument:
    text, title = html_to_text(decode_html(data), deadline=Deadline(timeout, "HTML document"))
    return ExtractedDocument("text/html", text, title)


def decode_html(data: bytes) -> str:
    """A byte order mark, then <meta charset>, then UTF-8, then a guess."""
    match = _META_CHARSET.search(data[:META_SCAN_BYTES])
    return decode(data, declared=match and match.group(1).decode("ascii"), what="HTML file")


def html_to_text(markup: str, *, keep_newlines: bool = False, deadline: Deadline | None = None) -> tuple[str, str]:
    """(visible text, normalised; title: <title>, else the first <h1>). `keep_newlines`: the
    markup's own line breaks are kept (HTML inside Markdown, where they mean something).
    Raises MediaTooLarge when `deadline` passes (the cost is linear, but 50 MB of tiny tags is
    still many seconds of Python)."""
    parser = _VisibleText(keep_newlines=keep_newlines, deadline=deadline or Deadline(float("inf"), "HTML"))
    try:
        parser.feed(markup)
        if parser.rawdata.startswith("<") or parser.cdata_elem:
            parser.rawdata = ""  # an unterminated tag, comment or script runs to the end: nothing shown (see above)
        parser.close()
    except AssertionError as exc:  # the stdlib parser's way of saying it is lost; none is known left (see below)
        raise CorruptMedia(f"the HTML cannot be read ({str(exc)[:200]})") from None
    return parser.text(), parser.title()


class _VisibleText(HTMLParser):
    def __init__(self, *, keep_newlines: bool, deadline: Deadline):
        super().__init__(convert_charrefs=True)
        self.keep_newlines = keep_newlines
        self.deadline = deadline
        self.parts: list[str] = []
        self.pending = ""  # the break owed before the next text: "", " ", "\n" or "\n\n"
        self.skip_tag: str | None = None  # the outermost element being skipped, and how deep in it we are
        self.skip_depth = 0
        self.in_head = False
        self.in_title = False
        self.title_parts: list[str] = []
        self.h1_depth = 0
        self.h1_parts: list[str] = []
        self.preserve = 0

    def text(self) -> str:
        return normalise("".join(self.parts))

    def title(self) -> str:
        return clean_title("".join(self.title_parts)) or clean_title("".join(self.h1_parts))

    def parse_marked_section(self, i, report=1):
        # `<![foo[` makes the stdlib raise AssertionError (Python 3.11); a browser reads any `<![`
        # outside SVG/MathML as a bogus comment up to the next ">".
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i + 3)
            return -1 if end < 0 else end + 1

    def handle_starttag(self, tag, attrs):
        self.deadline.step()
        if self.skip_tag:
            if tag == self.skip_tag:
                self.skip_depth += 1
            return
        if tag not in HEAD_CONTENT:
            self.in_head = self.in_title = False  # body content closes the head (and an unclosed title)
        if tag == "head":
            self.in_head = True
        elif tag == "title":
            self.in_title = not self.title_parts
        elif tag in SKIPPED or (tag not in VOID and tag not in OPTIONAL_END and _hidden(attrs)):
            if tag not in VOID:
                self.skip_tag, self.skip_depth = tag, 1
        else:
            self._block(tag)
            if tag in PRESERVED:
                self.preserve += 1
            elif tag == "h1" and not self.h1_parts:
                self.h1_depth += 1

    def handle_endtag(self, tag):
        if self.skip_tag:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if not self.skip_depth:
                    self.skip_tag = None
            return
        if tag == "head":
            self.in_head = False
        elif tag == "title":
            self.in_title = False
        else:
            self._block(tag)
            if tag in PRESERVED:
                self.preserve = max(0, self.preserve - 1)
            elif tag == "h1" and self.h1_depth:
                self.h1_depth -= 1

    def handle_data(self, data):
        self.deadline.step()
        if self.skip_tag:
            return
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.in_head:
            if not data.strip():
                return
            self.in_head = False  # text closes the head, as in a browser
        if not (self.preserve or self.keep_newlines):
            data = _SPACES.sub(" ", data)
        if self.h1_depth:
            self.h1_parts.append(data)
        if self.pending:
            self.parts.append(self.pending)
            self.pending = ""
        self.parts.append(data)

    def _block(self, tag: str) -> None:
        if tag in PARAGRAPH:
            brk = "\n\n"
        elif tag in LINE:
            brk = "\n"
        elif tag in CELL:
            brk = " "
        else:
            return
        if _RANK[brk] > _RANK[self.pending]:
            self.pending = brk


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden" or (name == "aria-hidden" and (value or "").strip().lower() == "true"):
            return True
        if name == "style" and value and _HIDDEN_STYLE.search(value):
            return True
    return False
