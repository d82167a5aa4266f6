"""Splitting a long text into passages that each fit a text encoder's context.

A CLIP-style text tower reads a fixed number of tokens (77, or 32 for the demo model) and
silently drops the rest, so a document embedded whole is searchable by its first words only.
Passages are cut at sentence boundaries, packed up to the token budget, and overlap by up to
a third of it (whole sentences), so a sentence that straddles a cut is still read whole by one
passage. A sentence longer than the budget is cut between words; a single "word" longer than
the budget (a URL, a base64 blob) is cut between characters.

Pure Python: the encoder passes its own token counter, so the spans fit its tokenizer exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# A sentence ends at . ! ? … (optionally followed by closing quotes or brackets) before whitespace,
# or at a line break: headings, list items and table rows are units of their own.
_SENTENCE_END = re.compile(r"""(?:[.!?…]+["'”’)\]]*(?=\s)|\n)""")
_WORD = re.compile(r"\S+")

Counter = Callable[[str], int]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, without surrounding whitespace; empty ones left out."""
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def _cut_long(text: str, start: int, end: int, count: Counter, budget: int) -> list[tuple[int, int, int]]:
    """A span over the budget, as consecutive pieces that fit: between words, else between characters."""
    pieces: list[tuple[int, int, int]] = []
    words = [(start + m.start(), start + m.end()) for m in _WORD.finditer(text[start:end])]
    piece_start, piece_end, tokens = None, None, 0
    for ws, we in words:
        n = count(text[ws:we])
        if n > budget:
            if piece_start is not None:
                pieces.append((piece_start, piece_end, tokens))
                piece_start, tokens = None, 0
            pieces.extend(_cut_characters(text, ws, we, count, budget))
            continue
        if piece_start is not None and tokens + n > budget:
            pieces.append((piece_start, piece_end, tokens))
            piece_start, tokens = None, 0
        if piece_start is None:
            piece_start = ws
        piece_end, tokens = we, tokens + n
    if piece_start is not None:
        pieces.append((piece_start, piece_end, tokens))
    return pieces


def _cut_characters(text: str, start: int, end: int, count: Counter, budget: int) -> list[tuple[int, int, int]]:
    pieces = []
    while start < end:
        # Grow the piece by halving steps: O(log n) token counts per piece, not one per character.
        lo, hi = start + 1, end
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[start:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        pieces.append((start, lo, count(text[start:lo])))
        start = lo
    return pieces


def split_passages(text: str, count: Counter, budget: int, *, overlap: float = 1 / 3) -> list[tuple[int, int]]:
    """Character spans of the passages of `text`, in order; one span when it fits in `budget` tokens.

    `count(s)` is the encoder's token count of `s` without special tokens; `overlap` is the most
    of the budget a passage repeats from the one before it.
    """
    if budget < 1:
        raise ValueError("a passage budget must be at least one token")
    units: list[tuple[int, int, int]] = []
    for start, end in sentence_spans(text):
        n = count(text[start:end])
        units.extend([(start, end, n)] if n <= budget else _cut_long(text, start, end, count, budget))
    if not units:
        return []
    if sum(n for _, _, n in units) <= budget:
        return [(units[0][0], units[-1][1])]
    passages: list[tuple[int, int]] = []
    first = 0
    carry = int(budget * overlap)
    while first < len(units):
        tokens, last = 0, first
        while last < len(units) and tokens + units[last][2] <= budget:
            tokens += units[last][2]
            last += 1
        passages.append((units[first][0], units[last - 1][1]))
        if last >= len(units):
            break
        # The next passage starts with the trailing sentences of this one that fit in the overlap,
        # but always moves forward by at least one unit.
        back, repeated = last, 0
        while back - 1 > first and repeated + units[back - 1][2] <= carry:
            back -= 1
            repeated += units[back][2]
        first = back
    return passages


def passage_texts(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    return [text[start:end] for start, end in spans]
