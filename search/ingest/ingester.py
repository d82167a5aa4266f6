"""The one way items enter the database: the bulk command, the API, the admin and the demo
loader all call `ingest` / `ingest_many`.

For each input: validate (content-sniffed type, caps, full decode), deduplicate by
sha256, encode into every configured space that can embed the modality, then write the
media files and, in one transaction, the item rows and their vectors. If the transaction
fails, the files it wrote are removed; files orphaned by a crash between write and commit
are swept by `sweep_orphan_files`. An item whose encoding fails is stored with status
`failed` and the reason, and no vectors; `manage.py embed --missing-only` retries it.
"""

import hashlib
import logging
import multiprocessing
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from PIL import Image

from search.ingest import decode_pool, extraction
from search.ingest.item_vectors import Vectors, encode_batch, write_vectors
from search.ingest.prepare import PreparedMedia, clean_text, prepare_media, text_sha256
from search.media import EmptyContent, MediaRejected, UnreadableFile, thumbnail_jpeg, waveform_png
from search.media.media_formats import BY_MIME, sniff
from search.models import EmbeddingSpace, EmbeddingStatus, ExtractionStatus, Item, media_path, preview_path
from search.storage import media_store, spaces

logger = logging.getLogger(__name__)

# Ingesters hold this advisory lock shared while they write files; the orphan sweep takes it
# exclusively, so it never deletes a file whose transaction has not committed yet.
FILES_LOCK = 0x5EA2C4


@dataclass
class IngestInput:
    """One thing to store: text, or the bytes of an image or audio file."""

    text: str | None = None
    data: bytes | None = None
    title: str = ""
    caption: str = ""
    tags: Sequence[str] = ()
    collection: str = ""
    metadata: dict = field(default_factory=dict)
    owner_id: int | None = None
    source: str = ""  # where it came from (a path, a manifest row), for reports
    filename: str = ""  # the uploaded file's name: tells Markdown from plain text, titles a document
    # A file to store, instead of `data` (the bulk command): a pool's workers read, hash and decode it
    # themselves, and the original is copied from it; without a pool it is read here.
    path: str = ""

    @property
    def is_text(self) -> bool:
        return self.data is None and not self.path

    def load(self) -> bytes:
        """The file's bytes, read now if only its path was given."""
        if self.data is None:
            try:
                self.data = Path(self.path).read_bytes()
            except OSError as exc:
                raise UnreadableFile.reading(exc) from None
        return self.data


@dataclass
class IngestOutcome:
    source: str
    status: str  # "added", "present" or "failed"
    item: Item | None = None
    error: str = ""
    code: str = ""


@dataclass
class _Pending:
    input: IngestInput
    item: Item
    content: object  # what the encoder takes: str, PIL image, or (waveform, sr)
    media: PreparedMedia | None
    vectors: dict[int, Vectors] = field(default_factory=dict)  # space id -> vectors
    errors: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    """One batch between `_start_batch` (hashed, deduplicated, decoding) and `_finish_batch`."""

    sources: list[IngestInput]
    results: dict[int, IngestOutcome] = field(default_factory=dict)
    fresh: list[tuple[int, _Pending]] = field(default_factory=list)
    jobs: dict[int, Future] = field(default_factory=dict)  # index -> its decode in a pool worker
    first_of: dict[str, int] = field(default_factory=dict)
    twins: dict[int, str] = field(default_factory=dict)  # a content repeated within the batch -> its sha
    modalities: set[str] = field(default_factory=set)  # what its new contents are, told by their first bytes


def clean_tags(tags: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags or ():
        tag = str(tag).strip().lower()[:64]
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def _content_sha(source: IngestInput) -> str:
    if source.is_text:
        return text_sha256(clean_text(source.text or "", what="text"))
    if not source.load():
        raise EmptyContent("the file is empty (0 bytes)")
    return hashlib.sha256(source.data).hexdigest()


def _modality(source: IngestInput) -> str:
    """What an input will be embedded as, told by its first bytes (what decides is `prepare_media`): it says which
    models to load while the input is decoded. A file that is no image or sound is a document: text."""
    if source.is_text:
        return "text"
    head = source.data[:64] if source.data is not None else b""
    if source.data is None:
        try:
            with open(source.path, "rb") as handle:
                head = handle.read(64)
        except OSError:
            return "text"
    mime = sniff(head)
    return BY_MIME[mime].modality if mime else "text"


def _load_encoders(modalities: set[str], *, warm: bool) -> list[tuple[str, object]]:
    """The configured spaces that can embed any of `modalities`; `warm`: their models loaded now and run once
    on a tiny input. Touches no database, so it may run in a thread while this process hashes and stores."""
    loaded = []
    for name in settings.SEARCH_SPACES:
        encoder = spaces.get_encoder(name)
        wanted = {m for m in modalities if encoder.can_embed(m)}
        if not wanted:
            continue
        if warm:
            encoder.identity  # noqa: B018 (what registering the space reads)
            if "image" in wanted:
                encoder.encode_images([Image.new("RGB", (32, 32), "gray")])
            if "text" in wanted:
                encoder.encode_texts(["warmup"])
        loaded.append((name, encoder))
    return loaded


def _prepare(source: IngestInput, media: PreparedMedia | None = None, digest: str | None = None) -> _Pending:
    """Validate one input into an unsaved Item plus the encoder's input; raises MediaRejected.

    `media`: the file already decoded (by a pool worker, which sends it back without its bytes).
    """
    common = {
        "title": (source.title or "").strip()[:300],
        "tags": clean_tags(source.tags),
        "collection": (source.collection or "").strip()[:100],
        "metadata": source.metadata or {},
        "owner_id": source.owner_id,
    }
    if not isinstance(common["metadata"], dict):
        raise MediaRejected("metadata must be a JSON object")
    if source.is_text:
        text = clean_text(source.text or "", what="text")
        item = Item(modality="text", text=text, sha256=text_sha256(text), mime_type="text/plain",
                    byte_size=len(text.encode("utf-8")), **common)
        return _Pending(source, item, text, None)
    if media is None:
        media = prepare_media(source.load(), digest=digest, filename=source.filename)
    elif source.data is not None:
        media.data = source.data  # else the original is copied from source.path when stored
    if media.modality == "text":
        return _document(source, media, common)
    caption = clean_text(source.caption, what="caption") if (source.caption or "").strip() else ""
    # What the file says (camera, lens, frames, pages) under what the uploader says.
    common["metadata"] = {**media.metadata, **common["metadata"]}
    item = Item(
        modality=media.modality, text=caption, sha256=media.sha256, mime_type=media.mime_type,
        byte_size=media.byte_size, width=media.width, height=media.height, duration=media.duration,
        sample_rate=media.source_sample_rate, taken_at=media.taken_at, **common,
    )
    if extraction.wanted(item):
        item.extraction_status = ExtractionStatus.PENDING  # its words are read in the background
    content = media.image if media.modality == "image" else (media.waveform, media.sample_rate)
    return _Pending(source, item, content, media)


def _document(source: IngestInput, media: PreparedMedia, common: dict) -> _Pending:
    """A document file (.txt, .md, .html, .pdf) as a text item: its text is what is embedded and shown,
    the file is kept for download. Titled by the uploader, else the document's own title, else its name."""
    scanned = bool(media.metadata.get("scanned"))
    # A scan has no text of its own yet: it is stored now and embedded once its pages are read (extraction).
    text = "" if scanned else clean_text(media.text or "", what=f"text of the {media.mime_type} document")
    name = Path(source.filename).stem.replace("_", " ").strip() if source.filename else ""
    common["title"] = common["title"] or (media.title or name)[:300]
    common["metadata"] = {**media.metadata, **common["metadata"]}
    item = Item(modality="text", text=text, sha256=media.sha256, mime_type=media.mime_type, byte_size=media.byte_size,
                text_pages=None if scanned else media.pages, **common)
    if scanned:
        item.extraction_status = ExtractionStatus.PENDING
    return _Pending(source, item, text or None, media)


class Ingester:
    """Holds the configured spaces for a run; use one per command or request.

    `workers` > 0 (the bulk command): files are decoded and validated in that many worker
    processes while this process encodes and writes the previous batch. Outcomes keep the input
    order, at most two batches are in memory, and storing is unchanged (so is kill -9 safety).
    `threads`: the workers are threads of this process instead. They start at once (a process costs
    about 0.35 s of CPU in imports before its first file), and decode in parallel all the same: Pillow's
    decoders, libsndfile and the PDF child release the GIL while they work (search.ingest.decode_pool).

    A space's model is loaded when new content first needs it, and only the spaces that embed
    that content's modality: a re-run over stored files loads no model, a folder of photos no
    text-only model. With a pool, the models load in a thread of this process while the workers
    decode the first batch (in a fresh `manage.py ingest` the imports alone take longer than
    decoding a few dozen photos).
    """

    def __init__(self, batch_size: int | None = None, workers: int = 0, threads: bool = False):
        self.batch_size = batch_size or settings.SEARCH_INGEST_BATCH_SIZE
        self.workers = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | ThreadPoolExecutor | None = None
        self.targets: list[tuple[EmbeddingSpace, object]] = []  # the spaces loaded so far, registered
        self._asked: set[str] = set()  # modalities whose spaces are loaded, or loading
        self._loader: ThreadPoolExecutor | None = None
        self._loading: list[Future | set[str]] = []  # a load in the loader thread, or modalities to load here

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._loader is not None:
            self._loader.shutdown(wait=True)
            self._loader = None

    def ingest(self, source: IngestInput) -> IngestOutcome:
        """Store one input; a rejected input raises MediaRejected and stores nothing."""
        [outcome] = self.ingest_many([source], raise_rejections=True)
        return outcome

    def ingest_many(
        self,
        sources: Iterable[IngestInput],
        *,
        raise_rejections: bool = False,
        on_outcome: Callable[[IngestOutcome], None] | None = None,
    ) -> list[IngestOutcome]:
        outcomes: list[IngestOutcome] = []
        started: deque[_Batch] = deque()
        # With a pool, the next batch decodes in the workers while this one encodes and stores.
        lookahead = 1 if self.workers > 0 else 0
        batch: list[IngestInput] = []

        def finish_oldest():
            for outcome in self._finish_batch(started.popleft(), raise_rejections):
                outcomes.append(outcome)
                if on_outcome:
                    on_outcome(outcome)

        try:
            for source in sources:
                batch.append(source)
                if len(batch) >= self.batch_size:
                    started.append(self._start_batch(batch, raise_rejections))
                    batch = []
                    while len(started) > lookahead:
                        finish_oldest()
            if batch:
                started.append(self._start_batch(batch, raise_rejections))
            while started:
                finish_oldest()
        finally:
            for unfinished in started:
                for job in unfinished.jobs.values():
                    job.cancel()
        return outcomes

    # The batch pipeline: hash -> dedupe -> decode (here or in the pool) -> encode -> store.
    def _start_batch(self, sources: list[IngestInput], raise_rejections: bool) -> _Batch:
        batch = _Batch(sources)
        # Hash first, decode later: a re-run over already stored files costs a hash per file, not a decode.
        # Hashed here (a few ms for a photo's megabytes): a pool's workers are still starting when the first
        # batch is hashed, and queue the next batch's hashes behind this one's decodes.
        shas: dict[int, str] = {}
        stamps: dict[int, tuple[int, int]] = {}
        use_pool = self.workers > 0
        for index, source in enumerate(sources):
            try:
                if use_pool and source.path and source.data is None:
                    # Streamed from the file, which a worker reads again to decode it if it is still the same.
                    hashed = decode_pool.digest_file(source.path)
                    if isinstance(hashed, MediaRejected):
                        raise hashed
                    shas[index], stamps[index] = hashed
                else:
                    shas[index] = _content_sha(source)
            except MediaRejected as exc:
                self._reject(batch, index, exc, raise_rejections)
        existing = Item.objects.in_bulk(set(shas.values()), field_name="sha256")
        for index, sha in shas.items():
            if sha not in existing and sha not in batch.first_of:
                batch.modalities.add(_modality(sources[index]))
        pool = self._decoder_pool() if use_pool and batch.modalities else None
        if pool is not None:
            self._load_spaces(batch.modalities)  # in a thread, while the workers start and decode
        for index, sha in shas.items():
            if sha in existing:
                batch.results[index] = IngestOutcome(sources[index].source, "present", item=existing[sha])
            elif sha in batch.first_of:
                batch.twins[index] = sha
            else:
                batch.first_of[sha] = index
                source = sources[index]
                if index in stamps:
                    batch.jobs[index] = pool.submit(decode_pool.decode_file, source.path, sha, stamps[index],
                                                    source.filename)
                    continue
                if pool is not None and source.data is not None:
                    batch.jobs[index] = pool.submit(decode_pool.decode, source.data, sha, source.filename)
                    continue
                try:
                    batch.fresh.append((index, _prepare(sources[index], digest=sha)))
                except MediaRejected as exc:
                    self._reject(batch, index, exc, raise_rejections)
        return batch

    def _finish_batch(self, batch: _Batch, raise_rejections: bool) -> list[IngestOutcome]:
        sources, results = batch.sources, batch.results
        self._load_spaces(batch.modalities)
        self._spaces_loaded()  # with a pool, while the workers decode this batch
        for index, job in sorted(batch.jobs.items()):
            decoded = job.result()
            try:
                if isinstance(decoded, MediaRejected):
                    raise decoded
                batch.fresh.append((index, _prepare(sources[index], decoded)))
            except MediaRejected as exc:
                self._reject(batch, index, exc, raise_rejections)
        batch.jobs.clear()
        fresh = sorted(batch.fresh, key=lambda pair: pair[0])
        self._encode(entry for _, entry in fresh)
        for (index, _), outcome in zip(fresh, self._store([entry for _, entry in fresh]), strict=True):
            results[index] = outcome
        for index, sha in batch.twins.items():
            twin = results.get(batch.first_of[sha])
            if twin is not None and twin.status == "failed":
                results[index] = IngestOutcome(sources[index].source, "failed", error=twin.error, code=twin.code)
            else:
                results[index] = IngestOutcome(sources[index].source, "present", item=twin.item if twin else None)
        return [results[index] for index in range(len(sources))]

    @staticmethod
    def _reject(batch: _Batch, index: int, exc: MediaRejected, raise_rejections: bool) -> None:
        if raise_rejections:
            raise exc
        batch.results[index] = IngestOutcome(batch.sources[index].source, "failed", error=str(exc), code=exc.code)

    def _load_spaces(self, modalities: set[str]) -> None:
        """Start loading the spaces for `modalities` not asked for yet: in a thread when a pool decodes, else
        when `_spaces_loaded` is called."""
        new = modalities - self._asked
        if not new:
            return
        self._asked |= new
        if self.workers > 0:
            if self._loader is None:
                self._loader = ThreadPoolExecutor(1, thread_name_prefix="ingest-models")
            self._loading.append(self._loader.submit(_load_encoders, new, warm=True))
        else:
            self._loading.append(new)  # no decoding to overlap: the first encode loads the models

    def _spaces_loaded(self) -> None:
        """Wait for the spaces asked for, and register the new ones (here: this thread holds the connection)."""
        known = {space.name for space, _ in self.targets}
        while self._loading:
            loading = self._loading.pop(0)
            loaded = _load_encoders(loading, warm=False) if isinstance(loading, set) else loading.result()
            for name, encoder in loaded:
                if name not in known:
                    known.add(name)
                    self.targets.append((spaces.register(name), encoder))

    def _decoder_pool(self) -> ProcessPoolExecutor | ThreadPoolExecutor | None:
        if self.workers <= 0:
            return None
        if self._pool is None and self.threads:
            # The same functions as in a process; this process's settings are the workers' already.
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ingest-decode")
        if self._pool is None:
            # "spawn": a forked child would share this process's database connections and torch threads.
            overrides = {name: getattr(settings, name) for name in dir(settings) if name.startswith("SEARCH_")}
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=decode_pool.init_worker, initargs=(overrides, os.getpid()),
            )
            # Start every worker now, while this process reads and hashes the first batch: a worker
            # otherwise starts only when the first decode is submitted, and each start costs imports.
            for _ in range(self.workers):
                self._pool.submit(decode_pool.warm)
        return self._pool

    def _encode(self, entries: Iterable[_Pending]) -> None:
        by_modality: dict[str, list[_Pending]] = defaultdict(list)
        for entry in entries:
            if entry.content is not None:  # a scan is embedded when its words have been read
                by_modality[entry.item.modality].append(entry)
        self._load_spaces(set(by_modality))  # a file its first bytes did not tell right
        self._spaces_loaded()
        for space, encoder in self.targets:
            for modality, group in by_modality.items():
                if not encoder.can_embed(modality):
                    continue
                for entry, result in zip(group, encode_batch(encoder, modality, [e.content for e in group]),
                                         strict=True):
                    if isinstance(result, Exception):
                        entry.errors.append(f"{space.name}: {result}")
                    else:
                        entry.vectors[space.pk] = result

    def _store(self, entries: list[_Pending]) -> list[IngestOutcome]:
        if not entries:
            return []
        for entry in entries:
            item = entry.item
            if entry.errors:
                # Never half-embedded: an item that failed in any space keeps no vectors until retried.
                entry.vectors.clear()
                item.embedding_status, item.embedding_error = EmbeddingStatus.FAILED, "; ".join(entry.errors)[:2000]
            elif entry.vectors:
                item.embedding_status = EmbeddingStatus.DONE
            elif entry.content is None:
                item.embedding_status = EmbeddingStatus.PENDING
            else:
                item.embedding_status = EmbeddingStatus.FAILED
                item.embedding_error = f"no configured space can embed {item.modality}"
        try:
            return self._store_together(entries)
        except (IntegrityError, UnreadableFile):
            # Someone else stored one of these contents meanwhile, or a file went away: settle them one by one.
            return [self._store_alone(entry) for entry in entries]

    def _store_alone(self, entry: _Pending) -> IngestOutcome:
        try:
            return self._store_together([entry])[0]
        except IntegrityError:
            item = Item.objects.get(sha256=entry.item.sha256)
            return IngestOutcome(entry.input.source, "present", item=item)
        except UnreadableFile as exc:
            return IngestOutcome(entry.input.source, "failed", error=str(exc), code=exc.code)

    def _store_together(self, entries: list[_Pending]) -> list[IngestOutcome]:
        written: list[str] = []
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [FILES_LOCK])
                for entry in entries:
                    written.extend(_write_files(entry))
                Item.objects.bulk_create([entry.item for entry in entries])
                for space, _ in self.targets:
                    rows = [(e.item.pk, e.vectors[space.pk]) for e in entries if space.pk in e.vectors]
                    if rows:
                        write_vectors(space, rows)
        except BaseException:
            for name in written:
                default_storage.delete(name)
            for entry in entries:
                entry.item.pk = None
            raise
        return [IngestOutcome(e.input.source, "added", item=e.item) for e in entries]


def _write_files(entry: _Pending) -> list[str]:
    """Write the media and its preview under content-addressed names; returns names written."""
    media = entry.media
    if media is None:
        return []
    item = entry.item
    written = []
    name = media_path(item, f"upload.{media.extension}")
    payload = media.data
    if not payload:
        # A file read by a pool worker is copied from where it is (search.ingest.decode_pool checked it unchanged).
        try:
            payload = File(open(entry.input.path, "rb"))  # noqa: SIM115 (closed when saved)
        except OSError as exc:
            raise UnreadableFile.reading(exc) from None
    files = [("media", name, payload)]
    if media.modality != "text":  # a document has no picture of itself
        preview = media.preview or (
            thumbnail_jpeg(media.image) if media.modality == "image" else waveform_png(media.waveform)
        )
        files.append(("preview", preview_path(item, f"preview.{'jpg' if media.modality == 'image' else 'png'}"),
                      preview))
    for field_name, target, payload in files:
        if not default_storage.exists(target):
            if isinstance(payload, File):
                with payload:
                    saved = default_storage.save(target, payload)
            else:
                saved = default_storage.save(target, ContentFile(payload))
            written.append(saved)
            target = saved
        elif isinstance(payload, File):
            payload.close()
        setattr(item, field_name, target)
    return written


def sweep_orphan_files(min_age_seconds: float = 0) -> list[str]:
    """Delete media files that no item row refers to (left by a crash between write and commit).

    Runs only when no ingest transaction is open anywhere (it takes the files lock
    exclusively and gives up at once if it cannot), so it never races a live writer.
    """
    removed: list[str] = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FILES_LOCK])
            if not cursor.fetchone()[0]:
                return removed
        known = set(Item.objects.exclude(media="").values_list("media", flat=True))
        known |= set(Item.objects.exclude(preview="").values_list("preview", flat=True))
        now = timezone.now()
        for folder in ("items", "previews"):
            # Listed first: deleting while an object store pages through its listing could skip names.
            for name, modified in list(media_store.stored_names(folder)):
                if name in known:
                    continue
                if modified is not None and (now - modified).total_seconds() < min_age_seconds:
                    continue
                default_storage.delete(name)
                removed.append(name)
    return removed


def split_tags(value: str) -> list[str]:
    return [tag.strip().lower() for tag in value.split(",") if tag.strip()]
