"""What the object store costs per upload and per audio seek, against the local disk (issue 29, docs/scaling.md).

    .venv/bin/python bench/bench_media_backends.py [--n 40] [--endpoint http://minio:9000 --bucket b]

Per upload, ingest writes two files the way search/ingest/ingester.py does (`exists`, then `save`, for the original and
its preview); per seek, the media view reads 64 KiB from the middle of a recording (search/storage/media_store.py).
Both are timed on the local disk and on an S3-compatible server: by default moto's (`moto[server]`, the dev extra)
started on a local port, which measures the client's work and one HTTP round trip on loopback, not a real store's
network latency (add yours: 1-2 round trips per file written, one per seek). Medians and 90th percentiles in ms.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {"photo (2.5 MB original + 30 KB preview)": (2_500_000, 30_000),
         "recording (1 MB original + 8 KB waveform)": (1_000_000, 8_000),
         "text document (20 KB, no preview)": (20_000, 0)}


def _timed(function, n: int) -> tuple[float, float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        function(i)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def measure(storage, n: int) -> dict[str, tuple[float, float]]:
    from django.core.files.base import ContentFile

    from search.storage import media_store

    figures = {}
    for label, (original, preview) in SIZES.items():
        payloads = [os.urandom(original), os.urandom(preview) if preview else b""]
        tag = label.split()[0]

        def upload(i, payloads=payloads, tag=tag):
            for folder, data in zip(("items", "previews"), payloads, strict=True):
                if not data:
                    continue
                name = f"{folder}/{i % 256:02x}/{tag}-{i}-{time.monotonic_ns()}.bin"
                if not storage.exists(name):
                    storage.save(name, ContentFile(data))

        figures[f"upload: {label}"] = _timed(upload, n)
    recording = os.urandom(1_000_000)
    storage.save("items/ff/seek.bin", ContentFile(recording))

    def seek(i):
        start = 400_000 + (i % 50) * 1000
        opened = media_store.open_range("items/ff/seek.bin", (start, start + 65_535), storage=storage)
        assert len(b"".join(opened.chunks)) == 65_536

    figures["seek: 64 KiB range of a 1 MB recording"] = _timed(seek, n)
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="uploads (and seeks) per row")
    parser.add_argument("--endpoint", help="an S3-compatible endpoint (default: a moto server started here)")
    parser.add_argument("--bucket", default="bench-media")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 uploads and seeks per row")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 3
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
    import django

    django.setup()
    from search.storage import media_store
    from search.storage.s3_media import MediaS3Storage as S3Storage
    from tests.search.object_store import make_bucket, moto_server, s3_options

    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        local = measure(media_store.local_storage(folder), args.n)
    if args.endpoint:
        remote = measure(S3Storage(**{**s3_options(args.endpoint, args.bucket), "access_key": None,
                                      "secret_key": None}), args.n)
        where = args.endpoint
    else:
        with moto_server() as endpoint:
            make_bucket(endpoint, args.bucket)
            remote = measure(S3Storage(**s3_options(endpoint, args.bucket)), args.n)
        where = "moto server on loopback"
    print(f"media backends, {args.n} runs a row, ms median / p90; S3: {where}; {os.cpu_count()} CPU cores, "
          f"load {os.getloadavg()[0]:.1f}\n")
    print("| operation | local disk | S3 | S3 - disk |")
    print("| --- | ---: | ---: | ---: |")
    for key, (median, p90) in local.items():
        s3_median, s3_p90 = remote[key]
        print(f"| {key} | {median:.1f} / {p90:.1f} | {s3_median:.1f} / {s3_p90:.1f} | {s3_median - median:+.1f} |")


if __name__ == "__main__":
    main()
