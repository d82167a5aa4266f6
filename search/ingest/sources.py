"""Reading ingest inputs from the file system: files, folders and manifests (CSV or JSONL)."""

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from search.ingest.ingester import IngestInput

MANIFEST_SUFFIXES = {".csv", ".jsonl"}


@dataclass
class SourceError:
    """An input that could not even be read; reported like a rejected item."""

    source: str
    error: str


def iter_inputs(paths: list[str], *, collection: str = "", tags: list[str] | None = None
                ) -> Iterator[IngestInput | SourceError]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                yield _from_file(child, collection=collection, tags=list(tags or []))
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            yield from _from_manifest(path, collection, tags)
        else:
            yield _from_file(path, collection=collection, tags=list(tags or []))


def count_inputs(paths: list[str]) -> int:
    total = 0
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            total += sum(1 for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = sum(1 for line in handle if line.strip())
            total += lines - 1 if path.suffix.lower() == ".csv" else lines
        else:
            total += 1
    return total


def _from_file(path: Path, **fields) -> IngestInput:
    """An input from one file; `fields` are IngestInput's descriptive fields (title, tags, ...)."""
    # Read when it is stored: by a decode worker when there is a pool (search.ingest.ingester), so the bytes are
    # not copied from process to process. One that cannot be read then fails with the reason.
    # Documents (.txt, .md, .html, .pdf) are recognised by their bytes like any file (search.documents):
    # the file is kept, its text embedded, and it is titled by its name unless it has a title of its own.
    return IngestInput(path=str(path), **({"source": str(path), "filename": path.name} | fields))


def _split_tags(value) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value or "").strip()
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except ValueError:
            pass
    return [part for part in text.replace(";", ",").split(",") if part.strip()]


def _from_manifest(manifest: Path, collection: str, tags: list[str] | None) -> Iterator[IngestInput | SourceError]:
    if manifest.suffix.lower() == ".csv":
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = [(f"{manifest}:{n + 2}", row) for n, row in enumerate(csv.DictReader(handle))]
    else:
        rows = []
        with open(manifest, encoding="utf-8") as handle:
            for n, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    rows.append((f"{manifest}:{n}", SourceError(f"{manifest}:{n}", f"invalid JSON: {exc}")))
                    continue
                rows.append((f"{manifest}:{n}", row))
    for where, row in rows:
        if isinstance(row, SourceError):
            yield row
            continue
        if not isinstance(row, dict):
            yield SourceError(where, "a manifest row must be an object")
            continue
        metadata = row.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                yield SourceError(where, "metadata is not valid JSON")
                continue
        fields = {
            "title": str(row.get("title") or ""),
            "caption": str(row.get("caption") or ""),
            "tags": _split_tags(row.get("tags")) + list(tags or []),
            "collection": str(row.get("collection") or collection),
            "metadata": metadata,
        }
        if row.get("path"):
            path = Path(row["path"])
            result = _from_file(path if path.is_absolute() else manifest.parent / path, **fields)
            if isinstance(result, IngestInput):
                result.source = f"{where} ({row['path']})"
            yield result
        elif row.get("text"):
            yield IngestInput(text=str(row["text"]), source=where, **fields)
        else:
            yield SourceError(where, "a manifest row needs a 'path' or a 'text'")
