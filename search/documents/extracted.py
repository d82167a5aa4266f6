"""What every extractor shares: the result type, the title rule and the time limit."""

import time
from dataclasses import dataclass, field

from search.media.rejections import MediaTooLarge

MAX_TITLE_CHARS = 300


@dataclass
class ExtractedDocument:
    mime_type: str  # "text/plain", "text/markdown", "text/html" or "application/pdf"
    text: str  # the visible text, whitespace normalised (paragraphs separated by a blank line), NUL-free, stripped
    title: str = ""  # <title> or first <h1>; first "# heading"; PDF /Title; at most MAX_TITLE_CHARS
    pages: list[int] | None = None  # PDF only: the offset in `text` where each page starts (pages[0] == 0)
    metadata: dict = field(default_factory=dict)  # JSON-serialisable, e.g. {"pages": 12, "author": "..."}


def clean_title(title: str) -> str:
    """One line, at most MAX_TITLE_CHARS."""
    return " ".join(title.replace("\x00", "").split())[:MAX_TITLE_CHARS].strip()


class Deadline:
    """A wall-clock budget for work done in this process (HTML, Markdown), checked every `every`
    steps so that the check itself costs nothing."""

    def __init__(self, seconds: float, what: str, every: int = 4096):
        self.seconds, self.what, self.every = seconds, what, every
        self.at = time.monotonic() + seconds
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps % self.every == 0 and time.monotonic() > self.at:
            raise MediaTooLarge(f"the {self.what} could not be read within {self.seconds:g} s; "
                                "it is too large or too complex")
