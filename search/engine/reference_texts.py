"""Real language that none of us wrote, found on this machine, as (query, document) pairs for evaluation.

Each pair is a manual page's one-line summary (its NAME line: "list directory contents") and its DESCRIPTION
(the first 300 words, the command's own name replaced by "it"), so a query is a person's short wording of what a
document is about, in ordinary technical English. Where the machine has too few manual pages, the summaries and
bodies of the Python standard library's docstrings fill up the set. Both are read at run time; nothing is
stored in the repository, so the figures cannot be tuned to a fixture.
"""

import gzip
import importlib
import inspect
import pkgutil
import random
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

MAN_ROOTS = (Path("/usr/share/man/man1"), Path("/usr/share/man/man8"))
DOCUMENT_WORDS = 300
MIN_DOCUMENT_WORDS = 40
# Families of generated pages that say one thing hundreds of times ("get the IAM policy for a ..."): a handful
# of them would be a fair sample, thousands drown the rest.
SKIPPED_PREFIXES = ("gcloud", "bq", "gsutil", "perl", "git-", "openssl-", "systemd-", "x86_64-", "aarch64-")
_MACRO = re.compile(r"\.(B|I|BI|IB|BR|RB|IR|RI|SM|SB)\s+(.*)")
_SECTION = re.compile(r"\.(SH|SS)\s+(.*)")
_ESCAPES = re.compile(r"\\f[BIRP1-4]|\\f\(..|\\f\[[^\]]*\]|\\\(..|\\\[[^\]]*\]|\\\*\(..|\\\*.|\\[&|^e%:/,]|\\s[-+]?\d")


@dataclass(frozen=True)
class ReferencePair:
    source: str  # the manual page's file, or the docstring's dotted name
    query: str
    document: str


def _sections(roff: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in roff.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith("."):
            section = _SECTION.match(line)
            if section:
                current = section[2].strip('" ').upper()
                sections.setdefault(current, [])
                continue
            macro = _MACRO.match(line)
            if not macro:
                continue
            line = macro[2].replace('"', "")
        if current is not None:
            sections[current].append(line)
    return {name: " ".join(_ESCAPES.sub("", " ".join(lines).replace("\\-", "-")).split())
            for name, lines in sections.items()}


def _man_pair(path: Path) -> ReferencePair | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            sections = _sections(handle.read(400_000))
    except (OSError, EOFError, ValueError):
        return None
    named = re.match(r"(.+?)\s+\\?-+\s+(.+)", sections.get("NAME", ""))
    description = sections.get("DESCRIPTION", "")
    if not named or len(description.split()) < MIN_DOCUMENT_WORDS:
        return None
    summary = named[2].strip().rstrip(".")
    if len(summary.split()) < 3:
        return None
    for command in (c.strip() for c in named[1].split(",")):
        if command:
            description = re.sub(r"(?<![\w-])" + re.escape(command) + r"(?![\w-])", "it", description)
    return ReferencePair(path.name, summary, " ".join(description.split()[:DOCUMENT_WORDS]))


def manual_page_pairs(n: int, seed: int = 0, roots=MAN_ROOTS) -> list[ReferencePair]:
    files = sorted(path for root in roots if root.is_dir() for path in root.glob("*.gz")
                   if not path.name.startswith(SKIPPED_PREFIXES))
    random.Random(seed).shuffle(files)
    pairs, seen = [], set()
    for path in files:
        pair = _man_pair(path)
        if pair is None or pair.query.lower() in seen:
            continue
        seen.add(pair.query.lower())
        pairs.append(pair)
        if len(pairs) >= n:
            break
    return pairs


def docstring_pairs(n: int, seed: int = 0) -> list[ReferencePair]:
    """Summary line and body of the standard library's public functions and classes."""
    names = sorted(m.name for m in pkgutil.iter_modules([sysconfig.get_paths()["stdlib"]])
                   if not m.name.startswith("_") and m.name not in {"antigravity", "this", "idlelib", "tkinter",
                                                                     "turtle", "turtledemo", "lib2to3", "test"})
    pairs, seen = [], set()
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module this platform cannot import is simply not a source
            continue
        for attribute, value in sorted(vars(module).items()):
            if attribute.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            summary, _, body = (inspect.getdoc(value) or "").partition("\n\n")
            summary, body = " ".join(summary.split()).rstrip("."), " ".join(body.split())
            if len(summary.split()) < 4 or len(body.split()) < 25 or summary in seen:
                continue
            seen.add(summary)
            pairs.append(ReferencePair(f"{name}.{attribute}", summary, " ".join(body.split()[:DOCUMENT_WORDS])))
    random.Random(seed).shuffle(pairs)
    return pairs[:n]


def reference_pairs(n: int, seed: int = 0) -> list[ReferencePair]:
    """`n` pairs (fewer only where the machine has less): manual pages first, docstrings to fill up."""
    pairs = manual_page_pairs(n, seed)
    if len(pairs) < n:
        pairs += docstring_pairs(n - len(pairs), seed)
    return pairs
