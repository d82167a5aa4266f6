"""Documents as text items (issue 17): what a user sees extracted from .txt, .md, .html and .pdf,
and how hostile files end: a named MediaRejected with a stable code, quickly, never a hang."""

import gzip
import io
import json
import random
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from search.documents import (
    DOCUMENT_TYPES,
    EncryptedDocument,
    ExtractedDocument,
    InvalidEncoding,
    NoTextLayer,
    extract_document,
    sniff_document,
)
from search.documents.pdf import WORKER, join_pages
from search.media.rejections import CorruptMedia, EmptyContent, MediaRejected, MediaTooLarge, UnsupportedMediaType
from tests.search import documents_gen as gen
from tests.search.helpers import png_bytes, wav_bytes

FRENCH = ("Le café de la gare était fermé ; nous avons marché jusqu'à l'hôtel où l'on servait "
          "des crêpes à 5 € — « c'était délicieux », dit-elle. Où est le garçon ? Déjà parti.")


def extract(data: bytes, mime: str, **kwargs) -> ExtractedDocument:
    document = extract_document(data, mime, **kwargs)
    assert document.mime_type == mime
    assert "\x00" not in document.text and document.text == document.text.strip()
    json.dumps(document.metadata)  # stored as JSON
    assert len(document.title) <= 300
    return document


def rejected(data: bytes, mime: str, error: type[MediaRejected], code: str) -> MediaRejected:
    with pytest.raises(error) as caught:
        extract_document(data, mime)
    assert caught.value.code == code
    return caught.value


def children() -> set[int]:
    """This process's live child processes (Linux)."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").glob("*/children"):
        pids.update(int(pid) for pid in task.read_text().split())
    return pids


# -- sniffing ------------------------------------------------------------------------------------

def test_document_types_are_the_four_accepted_kinds():
    assert DOCUMENT_TYPES == {"text/plain": "txt", "text/markdown": "md", "text/html": "html", "application/pdf": "pdf"}


@pytest.mark.parametrize("head, filename, expected", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "", "application/pdf"),
    (b"\x00junk from a mail gateway\r\n" * 30 + b"%PDF-1.4\n", "x.txt", "application/pdf"),  # within 1024 bytes
    (b"<!DOCTYPE html><html><body>hi", "", "text/html"),
    (b"\xef\xbb\xbf  <!-- saved from url -->\n<!-- two -->\n<HTML lang=en>", "", "text/html"),
    ("\ufeff<html><p>é</p>".encode("utf-16-le"), "", "text/html"),
    (b'<?xml version="1.0"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN">\n<html xmlns="x">', "",
     "text/html"),
    (b"\n\n<div class=post><p>Hello</p></div>", "post.txt", "text/html"),
    (b'<p align="center"><img src="logo.png"></p>\n\n# Project', "README.md", "text/markdown"),
    (b"<!doctype html><title>x</title>", "page.md", "text/html"),
    (b"# Title\n\nSome *markdown*.", "notes.md", "text/markdown"),
    (b"# Title", "NOTES.MARKDOWN", "text/markdown"),
    (b"# Title\n\nSome *markdown*.", "notes.txt", "text/plain"),
    (b"Just a line of text.\n", "", "text/plain"),
    (FRENCH.encode("cp1252"), "", "text/plain"),
    ("\ufeffUTF-16 text, ünïcödé".encode("utf-16-le"), "", "text/plain"),
    ("\ufeffUTF-16 text, ünïcödé".encode("utf-16-be"), "", "text/plain"),
    (("日本語のテキストです。" * 400).encode("utf-8")[:4095], "", "text/plain"),  # a character cut at the end
    (b"a < b and c > d", "", "text/plain"),
    (b" " * 1100 + b"%PDF-1.4 is only mentioned here", "", "text/plain"),  # too far in to be a header
])
def test_sniff_decides_by_content(head, filename, expected):
    assert sniff_document(head, filename) == expected


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.txt", b"\x00" * (20 << 20))
    return out.getvalue()


@pytest.mark.parametrize("make", [
    lambda: png_bytes(size=(16, 16), seed=1),
    lambda: wav_bytes(seconds=0.1),
    _zip_bomb,
    lambda: gzip.compress(b"plain text inside a gzip " * 100),
    lambda: random.Random(7).randbytes(4096),
    lambda: bytes(random.Random(8).choices(range(128, 256), k=4096)),
    lambda: b"\x7fELF\x02\x01\x01" + bytes(60),
    lambda: b"Hello\x00World\x00" * 20,
    lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><text>hi</text></svg>',
    lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
    lambda: b"{\\rtf1\\ansi Hello}",
    lambda: b"\x01" * 1100 + b"%PDF-1.4\n",  # the header too far in, after binary junk
], ids=["png", "wav", "zip-bomb", "gzip", "random", "random-high", "elf", "nul-laced", "svg", "svg-xml", "rtf",
        "late-pdf-header"])
def test_binary_and_unread_formats_are_not_documents(make):
    assert sniff_document(make()[:4096], "upload.txt") is None


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=st.binary(max_size=5000), filename=st.text(max_size=20))
def test_sniff_never_raises(head, filename):
    assert sniff_document(head, filename) in (None, *DOCUMENT_TYPES)


# -- plain text ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    FRENCH.encode("utf-8"),
    b"\xef\xbb\xbf" + FRENCH.encode("utf-8"),
    "\ufeff".encode("utf-16-le") + FRENCH.encode("utf-16-le"),
    "\ufeff".encode("utf-16-be") + FRENCH.encode("utf-16-be"),
    "\ufeff".encode("utf-32-le") + FRENCH.encode("utf-32-le"),
    FRENCH.encode("cp1252"),  # a legacy Windows file: € and « » are cp1252-only bytes
], ids=["utf-8", "utf-8-bom", "utf-16-le", "utf-16-be", "utf-32-le", "cp1252"])
def test_text_in_each_encoding_reads_the_same(data):
    assert extract(data, "text/plain").text == FRENCH


def test_latin1_text_is_read():
    text = "Ça coûte très cher à Zürich, señor. " * 4
    assert extract(text.encode("latin-1"), "text/plain").text == text.strip()


def test_whitespace_is_normalised_and_paragraphs_kept():
    data = b"  First   line\twith  tabs  \r\nsecond line\r\n\r\n\r\n\r\n  Next paragraph.\x0cPage two.\n"
    assert extract(data, "text/plain").text == "First line with tabs\nsecond line\n\nNext paragraph.\nPage two."


def test_nul_padding_is_removed():
    assert extract(b"A record padded to its block size.\n" + b"\x00" * 4000, "text/plain").text == \
        "A record padded to its block size."


def test_nuls_and_stray_controls_are_removed():
    text = "A few stray NUL bytes from a broken export, and a bell here. " * 4
    data = text.replace("stray ", "stray \x00").replace("bell", "bell\x07").encode()
    assert extract(data, "text/plain").text == text.strip()


@pytest.mark.parametrize("data", [
    random.Random(1).randbytes(3000),
    b"\x01\x02\x03\x04\x05\x06\x07\x08" * 100 + b"some text",
])
def test_binary_garbage_is_invalid_encoding(data):
    error = rejected(data, "text/plain", InvalidEncoding, "invalid_encoding")
    assert "UTF-8" in str(error)


def test_a_byte_order_mark_that_lies_is_invalid_encoding():
    data = b"\xff\xfe" + "ok".encode("utf-16-le") + b"\x00\xd8"  # a lone high surrogate
    error = rejected(data, "text/plain", InvalidEncoding, "invalid_encoding")
    assert "UTF-16" in str(error)


@pytest.mark.parametrize("data", [b" \n\t\r\n ", b"\xef\xbb\xbf", b"\x00\x00\n"])
def test_blank_text_is_empty(data):
    assert "has no text" in str(rejected(data, "text/plain", EmptyContent, "empty"))


def test_no_bytes_at_all_is_empty():
    assert "0 bytes" in str(rejected(b"", "text/markdown", EmptyContent, "empty"))


def test_text_over_the_character_cap_is_too_large(settings):
    settings.SEARCH_MAX_TEXT_CHARS = 100
    assert extract(b"x" * 100, "text/plain").text == "x" * 100
    error = rejected(b"x" * 101, "text/plain", MediaTooLarge, "too_large")
    assert "101 characters" in str(error) and "limit is 100" in str(error)


def test_an_unknown_type_is_refused():
    with pytest.raises(UnsupportedMediaType):
        extract_document(b"hello", "application/msword")


# -- Markdown ------------------------------------------------------------------------------------

MARKDOWN = """---
title: Front matter title
tags: [a, b]
---

# Release *notes* for [v2](https://example.com/v2_(final))

Some **bold**, __strong__, *emphasis*, _em_ and ~~struck~~ words; snake_case_names stay.
A [link](https://example.com "Title") and an ![architecture diagram](img/arch.png) and a <https://example.org> autolink.
Literal \\*stars\\* and `inline *code* with <b>tags</b>` and a < b.
<div align="center"><span>Inline HTML</span> &amp; entities</div>
<script>alert("never")</script>
<!-- a comment -->

```python
def double(x):
    return x * 2  # *not emphasis*
```

> A quoted line
> > nested

- first item
- [x] done item
1. numbered

| Name | Value |
|------|------:|
| a    | 1     |

Second heading
--------------

[ref]: https://example.com/ref
See [the docs][ref] and a footnote[^1].

[^1]: The footnote text.
"""


def test_markdown_becomes_the_text_a_reader_sees():
    document = extract(MARKDOWN.encode(), "text/markdown")
    assert document.title == "Release notes for v2"
    assert document.text == "\n".join([
        "Release notes for v2",
        "",
        "Some bold, strong, emphasis, em and struck words; snake_case_names stay.",
        "A link and an architecture diagram and a https://example.org autolink.",
        "Literal *stars* and inline *code* with <b>tags</b> and a < b.",
        "",
        "Inline HTML & entities",
        "",
        "def double(x):",
        "return x * 2 # *not emphasis*",
        "",
        "A quoted line",
        "nested",
        "",
        "first item",
        "done item",
        "numbered",
        "",
        "Name Value",
        "a 1",
        "",
        "Second heading",
        "",
        "See the docs and a footnote.",
        "",
        "The footnote text.",
    ])


def test_markdown_title_is_the_first_level_one_heading_or_nothing():
    assert extract(b"Intro\n\n## Sub\n\nMain title\n==========\n\n# Later", "text/markdown").title == "Main title"
    assert extract(b"## Only a subheading ##\n\ntext", "text/markdown").title == ""
    assert extract(b"# Closing hashes ##\n", "text/markdown").title == "Closing hashes"
    assert extract(b"#" + b"x" * 1000, "text/markdown").title == ""  # not a heading: no space after #


def test_only_real_reference_definitions_are_dropped():
    source = b"[Update]: we moved the office.\n[docs]: https://example.com/docs \"Docs\"\nSee [docs][].\n"
    assert extract(source, "text/markdown").text == "[Update]: we moved the office.\nSee docs."


def test_an_unclosed_fence_keeps_the_rest_as_code():
    assert extract(b"Intro\n\n~~~\n*kept* [as](is)\n", "text/markdown").text == "Intro\n\n*kept* [as](is)"


@pytest.mark.parametrize("unit", ["> ", "*a ", "[a ", "`", "``a", "![", "[a](", "_a ", "**a ", "<a ", "<!--", "<a\n",
                                  "<p>x", "# ", "|", "\\", "<http://x "])
def test_hostile_markdown_is_linear(unit):
    source = (unit * (200_000 // len(unit))).encode()
    started = time.perf_counter()
    try:
        extract_document(source, "text/markdown")
    except MediaRejected:
        pass
    assert time.perf_counter() - started < 3


# -- HTML ----------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head>
  <meta charset="utf-8"><title>  The   page &amp; its title </title>
  <style>body { color: red }</style><script>var hidden = "script text";</script>
  <link rel="stylesheet" href="x.css">
</head>
<body>
  <nav hidden><a href="/">Hidden navigation</a></nav>
  <h1>Main heading</h1>
  <p>First paragraph with <b>bold</b> and <a href="#">a link</a>.<br>After a break.</p>
  <div>Block one</div><div>Block two</div>
  <ul><li>Item one<li>Item two</ul>
  <table><tr><th>Name</th><td>Value</td></tr><tr><td>a</td><td>1</td></tr></table>
  <template><p>Template text</p></template>
  <noscript>Enable JavaScript</noscript>
  <svg><text>Vector text</text><title>svg title</title></svg>
  <span aria-hidden="true">decorative</span><div style="display: none">invisible</div>
  <pre>  keep   this
  layout</pre>
  <p>caf&eacute; &lt;tag&gt; &#8364;5 &nbsp;&mdash; fin</p>
  <iframe src="x">Iframe fallback</iframe>
</body></html>"""


def test_html_becomes_the_visible_text():
    document = extract(PAGE.encode(), "text/html")
    assert document.title == "The page & its title"
    assert document.text == "\n".join([
        "Main heading",
        "",
        "First paragraph with bold and a link.",
        "After a break.",
        "",
        "Block one",
        "",
        "Block two",
        "",
        "Item one",
        "Item two",
        "",
        "Name Value",
        "a 1",
        "",
        "keep this",
        "layout",
        "",
        "café <tag> €5 — fin",
    ])


def test_html_title_falls_back_to_the_first_h1():
    assert extract(b"<body><h1>The <em>real</em> title</h1><p>x</p>", "text/html").title == "The real title"
    assert extract(b"<p>no title here</p>", "text/html").title == ""


def test_html_declared_windows_1252_is_honoured():
    page = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252"></head>' \
           "<body><p>“Déjà vu” – 5 €</p></body></html>"
    assert extract(page.encode("cp1252"), "text/html").text == "“Déjà vu” – 5 €"
    latin1 = b"<meta charset=iso-8859-1><p>caf\xe9 \x80</p>"  # browsers read Latin-1 as Windows-1252
    assert extract(latin1, "text/html").text == "café €"


def test_html_in_utf16_with_a_bom():
    data = "\ufeff<html><body><p>Grüße aus Köln</p></body></html>".encode("utf-16-le")
    assert extract(data, "text/html").text == "Grüße aus Köln"


def test_deep_nesting_is_fast_and_never_recurses():
    depth = 100_000
    data = (b"<div><span>" * depth) + b"deep text" + (b"</span></div>" * depth)
    started = time.perf_counter()
    assert extract(data, "text/html").text == "deep text"
    assert time.perf_counter() - started < 10


def test_a_huge_attribute_is_read_through():
    data = b'<p data-blob="' + b"A" * 5_000_000 + b'">after the attribute</p>'
    assert extract(data, "text/html").text == "after the attribute"


def test_unclosed_tags_still_give_their_text():
    data = b"<html><body><p>one<p>two<div><b>bold<i>italic<ul><li>item"
    assert extract(data, "text/html").text == "one\n\ntwo\n\nbolditalic\n\nitem"


def test_an_unterminated_tag_at_the_end_is_dropped_quickly():
    # CPython's HTMLParser.close() re-scans the rest at each "<": quadratic (30 s for 60 KB here).
    assert extract(b"<p>kept</p><a href='never closed", "text/html").text == "kept"
    started = time.perf_counter()
    for unit in (b"<a ", b"<a b='", b"<!--", b"<![CDATA[", b"<a b=c"):
        try:
            extract_document(b"<p>start</p>" + unit * 40_000, "text/html")
        except MediaRejected:
            pass
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("markup, expected", [
    ("<p>a</p><![foo[x]]><p>z</p>", "a\n\nz"),  # the stdlib raises AssertionError on these
    ("<p>a</p><![ foo", "a"),
    ("<p>a</p><![if IE]>b<![endif]><p>z</p>", "a\n\nb\n\nz"),
    ("<p>a</p><![CDATA[x]]>after", "a\n\nafter"),
    ("<p>a</p><!bogus>after</>", "a\n\nafter"),
])
def test_odd_declarations_are_read_like_a_browser(markup, expected):
    assert extract(markup.encode(), "text/html").text == expected


def test_html_with_nothing_visible_is_empty():
    data = b"<html><head><title>Only a title</title><script>x()</script></head><body> </body></html>"
    assert "has no text" in str(rejected(data, "text/html", EmptyContent, "empty"))


def test_html_past_the_time_limit_is_too_large(settings):
    settings.SEARCH_DOCUMENT_TIMEOUT = 0
    error = rejected(b"<p>x" * 20_000, "text/html", MediaTooLarge, "too_large")
    assert "could not be read within 0 s" in str(error)


# -- PDF -----------------------------------------------------------------------------------------

PAGES = ["Alpha page one.\nA second line on page one.", "Bravo page two.", "Charlie page three, the last."]


@pytest.fixture(scope="module")
def text_pdf() -> bytes:
    return gen.text_pdf(PAGES, title="Quarterly report", author="Ada Lovelace")


def test_pdf_pages_and_their_offsets(text_pdf):
    document = extract(text_pdf, "application/pdf")
    assert document.text == ("Alpha page one.\nA second line on page one.\n\nBravo page two.\n\n"
                             "Charlie page three, the last.")
    assert document.pages[0] == 0 and len(document.pages) == 3
    for start, expected in zip(document.pages, PAGES, strict=True):
        assert document.text[start:].startswith(expected.split("\n")[0])
    assert document.title == "Quarterly report"
    assert document.metadata["pages"] == 3 and document.metadata["author"] == "Ada Lovelace"


def test_a_page_without_text_starts_where_the_next_one_does():
    data = gen.pages_pdf([b"", gen.show_text("first words"), b"", gen.show_text("last (words)"), b""])
    document = extract(data, "application/pdf")
    assert document.text == "first words\n\nlast (words)"
    assert document.pages == [0, 0, 13, 13, 25]
    assert join_pages(["a", "", "b"]) == ("a\n\nb", [0, 3, 3])


def test_a_pdf_with_a_user_password_is_refused(text_pdf):
    for algorithm in (None, "AES-256"):
        with pytest.raises(EncryptedDocument) as caught:
            extract_document(gen.encrypted(text_pdf, "s3cret", algorithm=algorithm), "application/pdf")
        assert caught.value.code == "encrypted" and "password" in str(caught.value)


@pytest.mark.parametrize("algorithm", [None, "AES-256"], ids=["rc4", "aes-256"])
def test_a_pdf_encrypted_for_permissions_only_is_read(text_pdf, algorithm):
    document = extract(gen.encrypted(text_pdf, "", algorithm=algorithm), "application/pdf")
    assert document.text.startswith("Alpha page one.") and len(document.pages) == 3


def test_a_scan_has_no_text_layer_and_is_refused_without_text_recognition(settings):
    settings.SEARCH_EXTRACT_OCR = False
    error = rejected(gen.image_pdf(pages=2), "application/pdf", NoTextLayer, "no_text_layer")
    assert "no text layer" in str(error) and "OCR" in str(error)


def test_a_scan_is_accepted_without_text_for_its_pages_to_be_read_later(settings):
    settings.SEARCH_EXTRACT_OCR = True
    document = extract_document(gen.image_pdf(pages=2), "application/pdf")
    assert document.text == "" and document.metadata["scanned"] and document.metadata["pages"] == 2


@pytest.mark.parametrize("make", [
    lambda pdf: pdf[: len(pdf) // 2],
    lambda pdf: pdf[:100],
    lambda pdf: b"%PDF-1.4\n" + random.Random(3).randbytes(5000),
    lambda pdf: gen.build_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]),
], ids=["truncated-half", "truncated-header", "garbage", "no-pages"])
def test_a_broken_pdf_is_corrupt(text_pdf, make):
    error = rejected(make(text_pdf), "application/pdf", CorruptMedia, "corrupt")
    assert str(error).startswith("the PDF")


def test_junk_before_the_header_is_tolerated(text_pdf):
    data = b"Received: from a mail gateway\r\n" * 20 + text_pdf
    assert sniff_document(data[:4096]) == "application/pdf"
    assert extract(data, "application/pdf").text.startswith("Alpha page one.")


def test_a_flate_bomb_ends_quickly_without_touching_this_process():
    data = gen.flate_bomb_pdf(1 << 30)  # 1 GiB of spaces in about 1 MB
    assert len(data) < 1_200_000
    before_children, before_peak = children(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(MediaTooLarge) as caught:
        extract_document(data, "application/pdf")
    elapsed = time.perf_counter() - started
    assert "expands beyond" in str(caught.value)
    assert elapsed < 10
    assert children() <= before_children  # the reader has ended
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_peak < 100 * 1024  # KiB


def test_streams_each_under_the_limit_that_add_up_are_refused():
    data = gen.split_bomb_pdf(parts=30, part_size=60 << 20)  # 30 x 60 MiB of content on one page
    assert "expands beyond" in str(rejected(data, "application/pdf", MediaTooLarge, "too_large"))


def test_a_pdf_needing_more_memory_than_allowed_is_too_large(settings):
    settings.SEARCH_DOCUMENT_MAX_MEMORY = 128 * 1024 * 1024
    data = gen.pages_pdf([gen.deflate_bomb(30 << 20, b"0 ")], flate=True)  # 60 MiB of operands on one page
    error = rejected(data, "application/pdf", MediaTooLarge, "too_large")
    assert "needs more memory than allowed (128 MB)" in str(error)


def test_a_pdf_past_the_time_limit_is_too_large_and_its_reader_is_ended(settings, text_pdf):
    settings.SEARCH_DOCUMENT_TIMEOUT = 0.05  # less than the reader takes to start
    before = children()
    error = rejected(text_pdf, "application/pdf", MediaTooLarge, "too_large")
    assert "could not be read within 0.05 s" in str(error)
    assert children() <= before


def test_too_many_pages_are_refused_before_extraction(settings):
    settings.SEARCH_MAX_DOCUMENT_PAGES = 10
    error = rejected(gen.shared_content_pdf(50), "application/pdf", MediaTooLarge, "too_large")
    assert "50 pages; the limit is 10" in str(error)


def test_pdf_text_over_the_character_cap_is_too_large(settings):
    settings.SEARCH_MAX_TEXT_CHARS = 500
    error = rejected(gen.text_pdf(["many words " * 300] * 3), "application/pdf", MediaTooLarge, "too_large")
    assert "the limit is 500" in str(error)


def test_the_pdf_reader_imports_neither_django_nor_torch_nor_the_project(text_pdf):
    probe = (
        "import runpy, sys; sys.argv = [sys.argv[1], sys.argv[2]]; runpy.run_path(sys.argv[0], run_name='__main__'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'torch', 'numpy', 'search', 'encoders'}),"
        " file=sys.stderr)"
    )
    limits = json.dumps({"max_pages": 10, "max_chars": 1000, "max_memory": 1 << 30, "cpu_seconds": 10,
                         "stream_limit": 1 << 20})
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(WORKER), limits], input=text_pdf,
                          capture_output=True, timeout=30, check=True)
    assert json.loads(done.stdout)["pages"][0].startswith("Alpha")
    assert done.stderr.decode().strip().splitlines()[-1] == "[]"


# -- fuzzing -------------------------------------------------------------------------------------

MARKUP = st.lists(st.sampled_from(["<", ">", "/", "!", "-", "[", "]", "(", ")", "*", "_", "~", "`", "#", "|", "\\",
                                    "&", ";", "=", '"', "'", " ", "\n", "\t", "a", "b", "c", "p", "\x00", "é", "€",
                                    "<![", "<!--", "-->", "<p>", "</p>", "<script>", "<a href='", "&amp;", "&#",
                                    "```", "# ", "> ", "- ", "[x](", "![", "---\n"]),
                   max_size=120).map("".join)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=2000), MARKUP.map(lambda s: s.encode("utf-8", "surrogatepass"))),
       mime=st.sampled_from(["text/plain", "text/markdown", "text/html"]))
def test_arbitrary_bytes_only_ever_raise_media_rejections(data, mime):
    try:
        document = extract_document(data, mime)
    except MediaRejected:
        return
    assert document.text and "\x00" not in document.text and document.text == document.text.strip()
    document.text.encode("utf-8")  # storable


def test_sniff_and_extract_agree_on_generated_documents(text_pdf):
    for data, filename, mime in [
        (text_pdf, "r.pdf", "application/pdf"),
        (PAGE.encode(), "p.html", "text/html"),
        (MARKDOWN.encode(), "m.md", "text/markdown"),
        (FRENCH.encode("cp1252"), "f.txt", "text/plain"),
    ]:
        assert sniff_document(data[:4096], filename) == mime
        assert extract(data, mime, filename=filename).text


@pytest.fixture(autouse=True)
def _no_reader_left_behind():
    yield
    # Every PDF reader has been waited for: none remains a zombie or runs on.
    for pid in children():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert str(WORKER).encode() not in f.read()
        except FileNotFoundError:
            pass

