"""The demo model on a world it never saw, through the REST API (issue 15), and what the cutoff says to
sentences from outside its world (issue 16).

    python bench/bench_generalisation.py            # writes docs/benchmarks/generalisation.md
    python bench/bench_generalisation.py --quick    # smoke run: 1 image and 2 clips per class, 40 sentences

A fresh database gets the demo data (`loaddemo`, which also fits the relevance calibration, as an install
does). Then every picture and sound of `encoders.demo.synth_eval` (the evaluation-only generator: other
drawing and synthesis code, never used in training) is uploaded as a file with `POST /api/items/` into
its own collection, JPEG and PNG, WAV and Ogg Vorbis, and searched with `POST /api/search/`:

- text->image and text->audio: the held-out queries of `encoders.demo.quality`, top-1 and precision@5;
- image->image and audio->audio: each uploaded item as the query (`parts: [{item: id}]`), precision@5
  over the other items;
- out-of-domain: `synth_eval.ood_sentences` (300 ordinary sentences and searches) over everything stored,
  with the default cutoff: the share answered "no close match" (no result above `min_relevance`);
- and the share of in-domain queries that keep a relevant result above the cutoff.

Ranking figures use `include_weak=true`, so they measure the ranking and not the cutoff.
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _django  # noqa: E402

COLLECTION = "independent"


def _image_file(index: int, image):
    from django.core.files.uploadedfile import SimpleUploadedFile

    buffer = io.BytesIO()
    if index % 2:
        image.save(buffer, format="PNG")
        return SimpleUploadedFile(f"picture-{index}.png", buffer.getvalue(), content_type="image/png")
    image.save(buffer, format="JPEG", quality=90)
    return SimpleUploadedFile(f"picture-{index}.jpg", buffer.getvalue(), content_type="image/jpeg")


def _audio_file(index: int, waveform, samplerate: int):
    import soundfile
    from django.core.files.uploadedfile import SimpleUploadedFile

    buffer = io.BytesIO()
    if index % 2:
        soundfile.write(buffer, waveform, samplerate, format="OGG", subtype="VORBIS")
        return SimpleUploadedFile(f"sound-{index}.ogg", buffer.getvalue(), content_type="audio/ogg")
    soundfile.write(buffer, waveform, samplerate, format="WAV", subtype="PCM_16")
    return SimpleUploadedFile(f"sound-{index}.wav", buffer.getvalue(), content_type="audio/wav")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images-per-class", type=int, default=6)
    parser.add_argument("--clips-per-class", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.images_per_class, args.clips_per_class = 1, 2
    _django.setup("bench_generalisation")

    import numpy as np
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from encoders.demo import quality as evaluate
    from encoders.demo import synth_eval

    started = time.perf_counter()
    call_command("loaddemo", folder=tempfile.mkdtemp(prefix="bench-demo-"), verbosity=0)
    user = User.objects.create_user("bench", is_staff=True)
    client = APIClient(HTTP_HOST="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    seed = evaluate.HELD_OUT_SEED
    keys: dict[int, str] = {}
    by_modality: dict[str, list[int]] = {"image": [], "audio": []}
    images = list(synth_eval.image_samples(args.images_per_class, seed + 7))
    clips = list(synth_eval.audio_samples(args.clips_per_class, seed + 8))
    uploads = [("image", s.key, _image_file(i, s.image)) for i, s in enumerate(images)]
    uploads += [("audio", s.key, _audio_file(i, s.waveform, s.samplerate)) for i, s in enumerate(clips)]
    for modality, key, upload in uploads:
        response = client.post("/api/items/", {"file": upload, "collection": COLLECTION}, format="multipart")
        assert response.status_code == 201, response.content[:300]
        item = response.json()["id"]
        keys[item] = key
        by_modality[modality].append(item)
    load_s = time.perf_counter() - started

    def results(body: dict) -> list[dict]:
        response = client.post("/api/search/", body, format="json")
        assert response.status_code == 200, response.content[:300]
        return response.json()["results"]

    figures, kept = {}, {}
    for modality, (texts, wanted) in (("image", evaluate.text_to_image_queries(seed)),
                                      ("audio", evaluate.text_to_audio_queries(seed))):
        top1, precision, keeps = [], [], []
        for text, key in zip(texts, wanted, strict=True):
            hits = results({"q": text, "modality": [modality], "collection": COLLECTION, "k": 5, "include_weak": True})
            classes = [keys.get(hit["id"]) for hit in hits]
            top1.append(classes[:1] == [key])
            precision.append(sum(c == key for c in classes) / 5)
            keeps.append(any(keys.get(hit["id"]) == key and not hit["weak"] for hit in hits))
        figures[f"text->{modality} top-1"] = float(np.mean(top1))
        figures[f"text->{modality} precision@5"] = float(np.mean(precision))
        kept[f"text->{modality}"] = float(np.mean(keeps))
    for modality, items in by_modality.items():
        precision = []
        for item in items:
            hits = results({"parts": [{"item": item}], "modality": [modality], "collection": COLLECTION, "k": 6,
                            "include_weak": True})
            others = [hit["id"] for hit in hits if hit["id"] != item][:5]
            precision.append(sum(keys.get(other) == keys[item] for other in others) / 5)
        figures[f"{modality}->{modality} precision@5"] = float(np.mean(precision))

    sentences = synth_eval.ood_sentences(seed=seed)[: 40 if args.quick else None]
    answered_empty, stray = 0, []
    for sentence in sentences:
        hits = results({"q": sentence, "k": 10})
        answered_empty += not hits
        if hits:
            stray.append((sentence, hits[0]["title"], hits[0]["relevance"]))
    ood_share = answered_empty / len(sentences)

    lines = [
        "# The demo model on a world it never saw, through the REST API",
        "",
        f"`python bench/bench_generalisation.py` — {_django.machine()}.",
        "",
        f"The demo data (`loaddemo`, calibrated) plus {len(images)} pictures ({args.images_per_class} per colour x "
        f"shape class) and {len(clips)} sounds ({args.clips_per_class} per sound class) from "
        "`encoders.demo.synth_eval`, the evaluation-only generator, uploaded as JPEG/PNG and WAV/Ogg files through "
        f"`POST /api/items/` ({load_s:.0f} s for everything) and searched through `POST /api/search/` within "
        "their collection (`include_weak=true`: the ranking, not the cutoff).",
        "",
        "| measure (target >= 0.90) | through the API |",
        "|---|---|",
        *(f"| {name} | {value:.3f} |" for name, value in figures.items()),
        "",
        "With the default cutoff (`SEARCH_MIN_RELEVANCE`, the space's calibration from `loaddemo`):",
        "",
        "| | share |",
        "|---|---|",
        f"| out-of-domain sentences answered \"no close match\" ({len(sentences)} held-out sentences, over "
        f"everything stored) | {ood_share:.3f} |",
        *(f"| {pair} queries that keep a relevant result above the cutoff | {value:.3f} |"
          for pair, value in kept.items()),
        "",
    ]
    if stray:
        lines += ["Out-of-domain sentences that still found something (first result, relevance):", ""]
        lines += [f"- \"{s}\" -> {title} ({relevance:.2f})" for s, title, relevance in stray[:10]]
        lines.append("")
    path = _django.write_fragment("generalisation.md", "\n".join(lines),
                                  args.out or (str(Path("/tmp") / "generalisation.md") if args.quick else None))
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
