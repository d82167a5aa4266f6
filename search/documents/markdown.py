"""Markdown: the text a reader sees, by a few linear scans and regular expressions (no renderer).

Front matter goes; fenced code is kept as written; headings lose their #, links and images become
their text and alt text; emphasis markers and list, quote and table syntax go; HTML inside is
reduced to its visible text by `search.documents.html`. The title is the first level-1 heading.

Every pattern here is linear in its input: character classes stop at the next delimiter, so a
hostile line of a million unmatched `*`, `[` or `<!--` cannot make a scan quadratic.
"""

import re
from bisect import bisect_right
from collections import defaultdict

from search.documents.encoding import decode
from search.documents.extracted import Deadline, ExtractedDocument, clean_title
from search.documents.html import html_to_text
from search.documents.text import normalise

_FRONT_MATTER = (
    re.compile(r"---[ \t]*\n(?:[^\n]*\n)*?(?:---|\.\.\.)[ \t]*(?:\n|\Z)"),  # YAML
    re.compile(r"\+\+\+[ \t]*\n(?:[^\n]*\n)*?\+\+\+[ \t]*(?:\n|\Z)"),  # TOML
)
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_BACKTICKS = re.compile(r"`+")
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")  # private-use marks, removed from the input first
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^\s<>]*|[^\s<>@]+@[^\s<>@]+)>", re.I)
# CommonMark's raw HTML tags (an open tag with attributes, or a closing tag); any other "<" is text.
_TAG = re.compile(
    r"<(?:[A-Za-z][A-Za-z0-9-]*(?:\s+[A-Za-z_:][A-Za-z0-9_.:-]*(?:\s*=\s*(?:[^\s\"'=<>`]+|'[^']*'|\"[^\"]*\"))?)*"
    r"\s*/?>|/[A-Za-z][A-Za-z0-9-]*\s*>)"
)
_BLOCKQUOTE = re.compile(r"(?:[ \t]*>[ \t]?)+")
_INLINE_MARKS = re.compile(r"[\[*_~]")
_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]|$)")
_LINK_DEFINITION = re.compile(  # [label]: destination "optional title"
    r" {0,3}\[[^\[\]\n]+\]:[ \t]*(?:<[^<>\n]*>|\S+)(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*$"
)
_FOOTNOTE_DEFINITION = re.compile(r" {0,3}\[\^[^\[\]\n]+\]:[ \t]*")
_IMAGE = re.compile(r"!\[([^\[\]\n]*)\](?:\((?:[^()\n]|\([^()\n]*\))*\)|\[[^\[\]\n]*\])")
_LINK = re.compile(r"\[([^\[\]\n]+)\](?:\((?:[^()\n]|\([^()\n]*\))*\)|\[[^\[\]\n]*\])")
_FOOTNOTE = re.compile(r"\[\^[^\[\]\n]+\]")
_STRONG = re.compile(r"(\*\*|__)(?=\S)((?:[^*_\n]|\*(?!\*)|_(?!_))+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"\*(?=\S)([^*\n]+?)(?<=\S)\*|(?<!\w)_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)((?:[^~\n]|~(?!~))+?)(?<=\S)~~")
TABLE_RULE = frozenset("|:-+ \t")


def extract_markdown(data: bytes, *, timeout: float) -> ExtractedDocument:
    text, title = markdown_to_text(decode(data), deadline=Deadline(timeout, "Markdown document"))
    return ExtractedDocument("text/markdown", text, title)


def markdown_to_text(source: str, *, deadline: Deadline | None = None) -> tuple[str, str]:
    """(visible text, normalised; title: the first level-1 heading, or ""). Raises
    MediaTooLarge when `deadline` passes."""
    deadline = deadline or Deadline(float("inf"), "Markdown")
    source = source.replace("\r\n", "\n").replace("\r", "\n").replace("\ue000", "").replace("\ue001", "")
    for front in _FRONT_MATTER:
        source = front.sub("", source, count=1) if front.match(source) else source
    parts: list[str] = []
    title = ""
    for is_code, lines in _blocks(source.split("\n")):
        if is_code:
            parts.append("\n".join(lines))
            continue
        text, heading = _prose("\n".join(lines), deadline)
        parts.append(text)
        title = title or heading
    return normalise("\n\n".join(parts)), clean_title(title)


def _blocks(lines: list[str]):
    """(is_code, lines) runs: fenced code (without its fences) and the prose between."""
    fence, run = "", []
    for line in lines:
        match = _FENCE.match(line)
        if not fence and match and not (match.group(1)[0] == "`" and "`" in line[match.end():]):
            yield False, run
            fence, run = match.group(1), []
        elif fence and match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                and not line[match.end():].strip():
            yield True, run
            fence, run = "", []
        else:
            run.append(line)
    yield bool(fence), run  # an unclosed fence runs to the end


def _prose(block: str, deadline: Deadline) -> tuple[str, str]:
    kept: list[str] = []  # escaped characters and code spans, restored at the end untouched

    def keep(text: str) -> str:
        kept.append(text)
        return f"\ue000{len(kept) - 1}\ue001"

    block = _ESCAPE.sub(lambda m: keep(m.group(1)), block)
    block = _code_spans(block, keep)
    block = _AUTOLINK.sub(lambda m: keep(m.group(1)), block)
    if "<" in block or "&" in block:
        block, _ = html_to_text(_escape_stray_lt(block), keep_newlines=True, deadline=deadline)

    def restore(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: kept[int(m.group(1))], text)

    out: list[str] = []
    title_at = -1
    for line in block.split("\n"):
        deadline.step()
        if quote := _BLOCKQUOTE.match(line):
            line = line[quote.end():]
        bare = line.replace(" ", "").replace("\t", "")
        if bare and set(bare) == {"="} and out and out[-1]:  # setext level-1 underline
            title_at = len(out) - 1 if title_at < 0 else title_at
            continue
        if len(bare) >= 3 and len(set(bare)) == 1 and bare[0] in "-*_" or (bare and set(bare) == {"-"} and out):
            out.append("")  # a thematic break, or a setext level-2 underline
            continue
        if bare and "-" in bare and "|" in bare and set(bare) <= TABLE_RULE:
            continue  # a table's header rule
        if heading := _ATX.match(line):
            line = _strip_closing_hashes(line[heading.end():])
            if len(heading.group(1)) == 1 and title_at < 0:
                title_at = len(out)
        elif footnote := _FOOTNOTE_DEFINITION.match(line):
            line = line[footnote.end():]  # a footnote shows its text
        elif _LINK_DEFINITION.match(line):
            continue  # a link reference definition shows nothing
        elif marker := _LIST_MARKER.match(line):
            line = line[marker.end():]
        if line.lstrip().startswith("|"):
            line = line.replace("|", " ")
        if _INLINE_MARKS.search(line):
            line = _inline(line)
        out.append(restore(line) if "\ue000" in line else line)
    title = out[title_at] if 0 <= title_at < len(out) else ""
    return "\n".join(out), title


def _inline(line: str) -> str:
    line = _IMAGE.sub(r"\1", line)
    line = _LINK.sub(r"\1", line)
    line = _FOOTNOTE.sub("", line)
    line = _STRONG.sub(r"\2", line)
    line = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), line)
    return _STRIKE.sub(r"\1", line)


def _code_spans(text: str, keep) -> str:
    """Each run of backticks opens a code span closed by the next run of the same length
    (CommonMark), found in one pass over the runs."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)]
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, (start, end) in enumerate(runs):
        by_length[end - start].append(index)
    out, pos, i = [], 0, 0
    while i < len(runs):
        start, end = runs[i]
        same = by_length[end - start]
        k = bisect_right(same, i)
        if k == len(same):
            i += 1
            continue
        j = same[k]
        close_start, close_end = runs[j]
        code = text[end:close_start].replace("\n", " ")
        if code.startswith(" ") and code.endswith(" ") and code.strip():
            code = code[1:-1]
        out += [text[pos:start], keep(code)]
        pos, i = close_end, j + 1
    out.append(text[pos:])
    return "".join(out)


def _escape_stray_lt(text: str) -> str:
    """Every "<" that does not open an HTML tag or a closed comment becomes "&lt;", so the HTML
    reader takes it as text (`a<b` in prose is not a tag)."""
    out, pos, comments_closed = [], 0, True
    i = text.find("<")
    while i >= 0:
        end = -1
        if text.startswith("<!--", i):
            close = text.find("-->", i + 4) if comments_closed else -1
            comments_closed = close >= 0  # no later comment can close either
            end = close + 3 if close >= 0 else -1
        elif match := _TAG.match(text, i):
            end = match.end()
        if end < 0:
            out += [text[pos:i], "&lt;"]
            pos = i + 1
        else:
            out.append(text[pos:end])
            pos = end
        i = text.find("<", pos)
    out.append(text[pos:])
    return "".join(out)


def _strip_closing_hashes(text: str) -> str:
    """`## Title ##` -> `Title`."""
    text = text.strip()
    bare = text.rstrip("#")
    if bare != text and (not bare or bare[-1] in " \t"):
        text = bare.rstrip()
    return text
