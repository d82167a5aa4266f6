"""Long texts through the REST API: is a document found by what it says deep inside (issue 17)?

    python bench/bench_long_text.py            # 40 documents, writes docs/benchmarks/long_text.md
    python bench/bench_long_text.py --quick    # smoke run: 6 documents, report to a scratch file

Documents come from encoders.demo.synth_documents (600-1,200 words of everyday prose, one sentence after
the first 150 words describing a picture or sound of the demo world; the query says it in other
words), stored with POST /api/items/ and searched with POST /api/search/ (texts only), with the
demo model. Side by side in the same run, from the same model: the ranking by one vector of the
whole text (what a text tower reads of it: its first 30 tokens, how texts were embedded before
passages) and by the mean of its passages (the item vector kept for whole-item similarity).
Also: the share each search keeps above the default relevance cutoff in this fresh database (never
calibrated: the default passage midpoint), the time to store a 1,000,000-character document, and search
latency with it stored.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _django  # noqa: E402


def _ranks(scores, n):
    import numpy as np

    order = (-np.asarray(scores)).argsort(axis=1)
    return [int(np.flatnonzero(order[i] == i)[0]) + 1 for i in range(n)]


def _summary(ranks: list[int]) -> dict:
    n = len(ranks)
    return {"first": sum(r == 1 for r in ranks) / n, "top3": sum(r <= 3 for r in ranks) / n,
            "recall10": sum(r <= 10 for r in ranks) / n, "mrr": sum(1 / r for r in ranks) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.documents = 6
    _django.setup("bench_long_text")

    import numpy as np
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    import encoders
    from encoders.demo.synth_documents import long_documents
    from search.models import Embedding

    docs = list(long_documents(args.documents, args.seed))
    user = User.objects.create_user("bench", is_staff=True)
    client = APIClient(HTTP_HOST="localhost")  # the test client's own host name is not allowed here
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    client.post("/api/items/", {"text": "warm up the model"}, format="json")

    started = time.perf_counter()
    ids = []
    for doc in docs:
        response = client.post("/api/items/", {"text": doc.text, "collection": "documents"}, format="json")
        assert response.status_code == 201, response.content[:300]
        ids.append(response.json()["id"])
    store_s = time.perf_counter() - started
    passages = Embedding.objects.filter(item_id__in=ids, segment_start__isnull=False).count()
    words = sum(len(doc.text.split()) for doc in docs)
    depth = statistics.median(len(doc.text[:doc.start].split()) for doc in docs)

    results = {}
    for mode in ("vector", "hybrid"):
        ranks, shown, latencies, kept = [], 0, [], 0
        for doc, item_id in zip(docs, ids, strict=True):
            t0 = time.perf_counter()
            body = client.post("/api/search/", {"q": doc.query, "mode": mode, "modality": ["text"],
                                                "collection": "documents", "k": 10, "include_weak": True},
                               format="json").json()
            latencies.append((time.perf_counter() - t0) * 1000)
            found = [hit["id"] for hit in body["results"]]
            rank = found.index(item_id) + 1 if item_id in found else 11
            ranks.append(rank)
            kept += any(hit["id"] == item_id and not hit["weak"] for hit in body["results"])
            if rank == 1:
                passage = body["results"][0]["passage"]
                shown += bool(passage and passage["start"] < doc.end and passage["end"] > doc.start)
        results[mode] = _summary(ranks) | {"shown": shown / max(1, sum(r == 1 for r in ranks)),
                                           "p50_ms": statistics.median(latencies), "kept": kept / len(docs)}

    # The same model, one vector per text: the whole text as the tower reads it (its first tokens), and
    # the mean of the passages.
    space = encoders.get_space("demo")
    queries = space.encode_texts([doc.query for doc in docs])
    truncated = space.encode_texts([doc.text for doc in docs])
    means = np.stack([vector for vector, _ in space.encode_texts_with_passages([doc.text for doc in docs])])
    baseline = {"first tokens only": _summary(_ranks(queries @ truncated.T, len(docs))),
                "mean of passages": _summary(_ranks(queries @ means.T, len(docs)))}

    # One document at the cap.
    big = " ".join(doc.text for doc in long_documents(200, args.seed + 1))
    big = big[: 1_000_000 if not args.quick else 100_000]
    t0 = time.perf_counter()
    response = client.post("/api/items/", {"text": big}, format="json")
    big_s = time.perf_counter() - t0
    assert response.status_code == 201, response.content[:300]
    big_passages = Embedding.objects.filter(item_id=response.json()["id"], segment_start__isnull=False).count()
    latencies = []
    for doc in docs:
        t0 = time.perf_counter()
        client.post("/api/search/", {"q": doc.query, "modality": ["text"], "k": 10}, format="json")
        latencies.append((time.perf_counter() - t0) * 1000)

    lines = [
        "# Long texts: passages (issue 17)",
        "",
        f"`python bench/bench_long_text.py` — {_django.machine()}.",
        "",
        f"{len(docs)} generated documents ({words / len(docs):.0f} words on average; the describing sentence "
        f"after a median of {depth:.0f} words), {passages} passages of at most "
        f"{encoders.get_space('demo').passage_tokens()} tokens, stored through `POST /api/items/` in "
        f"{store_s:.1f} s ({store_s / len(docs) * 1000:.0f} ms a document). Each query says what one document "
        "describes in other words; searched with `POST /api/search/` over the documents, demo model.",
        "",
        "| ranking | right document first | top 3 | recall@10 | MRR | passage shown contains the sentence |"
        " kept by the default cutoff | p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, row in results.items():
        lines.append(f"| product, {mode} (best passage) | {row['first']:.3f} | {row['top3']:.3f} | "
                     f"{row['recall10']:.3f} | {row['mrr']:.3f} | {row['shown']:.3f} | {row['kept']:.3f} | "
                     f"{row['p50_ms']:.0f} ms |")
    for name, row in baseline.items():
        lines.append(f"| one vector per text: {name} | {row['first']:.3f} | {row['top3']:.3f} | "
                     f"{row['recall10']:.3f} | {row['mrr']:.3f} | – | – | – |")
    lines += [
        "",
        f"A document of {len(big):,} characters ({big_passages:,} passages) is stored in {big_s:.1f} s; with it "
        f"stored, a text search takes {statistics.median(latencies):.0f} ms (p50) and "
        f"{max(latencies):.0f} ms (max) through the API.",
        "",
    ]
    path = _django.write_fragment("long_text.md", "\n".join(lines),
                                  args.out or (str(Path("/tmp") / "long_text.md") if args.quick else None))
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
