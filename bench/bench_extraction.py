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
whether the hit says where it matched (and, for speech, carries the moment). False hits: results in the top 5 of
those queries whose content (what the sign, page, memo or text says, as made) holds none of the query's words.

Speech alternatives (the recogniser's n-best words, searched but never shown) follow SEARCH_SPEECH_ALTERNATIVES:
`SEARCH_SPEECH_ALTERNATIVES=0 python bench/bench_extraction.py --out ...` measures without them.
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
# Everyday words none of the cases says: queries that should bring up no memo (the speech alternatives must not
# make memos answer them). The out-of-domain sentences of the golden set are asked too, but some are about what the
# memos say ("the dentist appointment"), so each memo they bring up is listed to be judged.
UNRELATED_WORDS = ("apple bicycle candle doctor engine forest guitar hammer island jacket kitchen ladder mirror needle "
                   "orange pencil rabbit saddle ticket umbrella violin window zebra river winter school money summer "
                   "market picture hospital holiday birthday camera garage bottle").split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    _django.setup("bench_extraction")

    import soundfile
    from django.conf import settings
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
    # What each item says, as made: a hit whose content holds none of the query's words is a false hit.
    content: dict[int, str] = {}
    for text in ("The ferry timetable changes in winter.", "Notes from the football club's annual dinner.",
                 "How to repot a cactus without gloves.", "Minutes of the residents' association meeting."):
        made = client.post("/api/items/", {"text": text}, format="json")  # a collection, not an empty room
        content[made.json()["id"]] = text

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
    content |= {item_id: " ".join(phrases) for item_id, (phrases, _) in zip(picture_ids, signs, strict=True)}
    picture_s = read_all(picture_ids)
    searched += [(item_id, "picture", word, "text_in_picture") for item_id, (_, word) in zip(picture_ids, signs,
                                                                                              strict=True)]
    read_words = sum(w.lower() in Item.objects.get(pk=i).extracted_text.lower() for i, (_, w) in
                     zip(picture_ids, signs, strict=True))

    lines, word = cases.LETTER
    scan_id = upload("letter.pdf", cases.scanned_pdf([lines] * letter_pages))
    content[scan_id] = " ".join(lines)
    scan_s = read_all([scan_id])
    searched.append((scan_id, "scanned page", word, "text_in_picture"))

    memo_ids, audio_seconds = [], 0.0
    for n, (text, _) in enumerate(memos):
        wav = cases.spoken_wav(text, lead_seconds=1.0)
        audio_seconds += soundfile.info(__import__("io").BytesIO(wav)).duration
        memo_ids.append(upload(f"memo{n}.wav", wav))
    speech_s = read_all(memo_ids) if memo_ids else 0.0
    content |= {item_id: text for item_id, (text, _) in zip(memo_ids, memos, strict=True)}
    searched += [(item_id, "speech", w, "speech") for item_id, (_, w) in zip(memo_ids, memos, strict=True)]
    heard = [(Item.objects.get(pk=i).extracted_text, t) for i, (t, _) in zip(memo_ids, memos, strict=True)]
    word_recall = statistics.mean(
        len({w.strip(".,").lower() for w in said.split()} & set(got.split())) / len(said.split())
        for got, said in heard) if heard else 0.0

    silent_ids = [upload("tone.wav", cases.tone_wav(4.0)), upload("chord.wav", cases.tone_wav(4.0, chord=True))]
    content |= {item_id: "" for item_id in silent_ids}
    silent_s = read_all(silent_ids)
    no_transcript = sum(not Item.objects.get(pk=i).extracted_text for i in silent_ids)
    Job.objects.filter(kind=Job.Kind.EXTRACT).update(status=Job.Status.DONE)  # read above, item by item
    calibration.clear_cache()

    found = {mode: {} for mode in MODES}
    told = {mode: 0 for mode in MODES}
    moments = {mode: 0 for mode in MODES}
    false_hits = {mode: 0 for mode in MODES}
    false_recordings = {mode: 0 for mode in MODES}
    by_alternative = {mode: 0 for mode in MODES}
    missed = {mode: [] for mode in MODES}
    said = {item_id: {w.strip(".,'").lower() for w in text.split()} for item_id, text in content.items()}
    import json

    sentences = [json.loads(line)["query"] for line in (_django.ROOT / "fixtures/golden/out_of_domain.jsonl")
                 .read_text().splitlines() if line.strip()]
    everyday = UNRELATED_WORDS
    if args.quick:
        sentences, everyday = sentences[:5], everyday[:5]
    unrelated = sentences + list(everyday)
    unrelated_recordings = {mode: 0 for mode in MODES}
    word_recordings = {mode: 0 for mode in MODES}
    unrelated_found: dict[tuple[str, int], list[str]] = {}  # (query, memo) -> modes
    for mode in MODES:
        for query in unrelated:
            body = client.get("/api/search/", {"q": query, "k": 5, "mode": mode}).json()
            memos_here = sum(hit["id"] in memo_ids for hit in body["results"])
            unrelated_recordings[mode] += memos_here
            word_recordings[mode] += memos_here if query in everyday else 0
            for hit in body["results"]:
                if hit["id"] in memo_ids:
                    unrelated_found.setdefault((query, hit["id"]), []).append(
                        mode + (" (by an alternative)" if hit["words"] and not hit["words"]["highlights"] else ""))
        for item_id, kind, query, source in searched:
            body = client.get("/api/search/", {"q": query, "k": 5, "mode": mode}).json()
            for other in body["results"]:
                words = said.get(other["id"], set())
                if other["id"] != item_id and not any(w.lower() in words or w.lower() + "s" in words
                                                      for w in query.split()):
                    false_hits[mode] += 1
                    false_recordings[mode] += other["modality"] == "audio"
            hit = next((h for h in body["results"] if h["id"] == item_id), None)
            if hit is None:
                missed[mode].append(f"{kind} \"{query}\"")
            by_alternative[mode] += bool(hit and source == "speech" and hit["words"]
                                         and not hit["words"]["highlights"])
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
        f"run: {load:.1f} on {os.cpu_count()} cores (rates are lower while other processes share them). Speech "
        f"alternatives (the recogniser's n-best words, searched, never shown): "
        f"{'on' if settings.SEARCH_SPEECH_ALTERNATIVES else 'off'} (SEARCH_SPEECH_ALTERNATIVES).",
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
        " speech hits with the moment | speech hits with none of the query's words in the transcript |"
        " false hits in the top 5 (of them recordings) |",
        "|---|" + "---|" * (len(kinds) + 5),
    ]
    for mode in MODES:
        shares = [f"{statistics.mean(found[mode][k]):.2f}" if found[mode].get(k) else "-" for k in kinds]
        everything = [x for k in kinds for x in found[mode].get(k, [])]
        hits_speech = sum(found[mode].get("speech", []))
        lines_out.append(f"| {mode} | " + " | ".join(shares) + f" | {statistics.mean(everything):.2f} | "
                         f"{told[mode]} of {sum(everything)} | {moments[mode]} of {hits_speech} | "
                         f"{by_alternative[mode]} | {false_hits[mode]} ({false_recordings[mode]}) |")
    lines_out += ["", f"{len(unrelated)} unrelated queries ({len(sentences)} out-of-domain sentences of "
                  f"`fixtures/golden/out_of_domain.jsonl` and {len(everyday)} everyday words none of the cases says), "
                  "by mode (vector / hybrid / lexical): memos in the top 5 for the everyday words: "
                  + " / ".join(str(word_recordings[mode]) for mode in MODES) + "; for all of them: "
                  + " / ".join(str(unrelated_recordings[mode]) for mode in MODES) + "."]
    if unrelated_found:
        lines_out += ["", "Which: " + "; ".join(f"\"{query}\" -> the memo \"{content[item_id]}\" ({', '.join(modes)})"
                                             for (query, item_id), modes in unrelated_found.items()) + "."]
    lines_out += ["", "Missed: " + "; ".join(f"{mode}: {', '.join(missed[mode]) or 'none'}" for mode in MODES) + "."]
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
