"""Short texts (queries) of a sentence-transformers space through ONNX Runtime instead of torch.

A query is a handful of tokens, and for so little arithmetic torch's per-operator overhead is most of the cost:
all-MiniLM-L6-v2 encodes a five-token query in 7.7 ms through torch in bfloat16 and in 3.3 ms through ONNX Runtime
in float32 on one thread; from about 32 tokens on, bfloat16 torch is the faster (``MAX_TOKENS``). So the space
keeps torch for ingest batches and hands short batches to the session made here.

The transformer and its pooling are exported once (torch's TorchScript-based exporter, which needs the ``onnx``
package) from the float32 model that was just loaded from the pinned safetensors, and kept in a cache folder under
a name derived from the weights' and configuration's hashes and the exporting versions, so a worker that starts
later reads the file instead of exporting again. Before a session is used, its vectors for texts of several
lengths, alone and as one padded batch, are compared with torch's float32 vectors; below ``MIN_COSINE`` (or when
the export, the file or ONNX Runtime fail in any way) the space says why in the log and stays on torch. The vectors
are the float32 model's (cosine 1.0000 to torch's), so the space's identity and stored vectors do not change.

Texts asked as queries, which are never stored, go one step further: a copy of the export with its MatMul weights
in 8 bits (ONNX Runtime's MatMulNBits, a scale per block of 32 weights), made once and kept beside it. For a short
query it streams a quarter of the weights: all-MiniLM-L6-v2 in 1.6 ms against 3.6-4.2 in float32, its vectors
float32's to a cosine of 0.9994 to 0.9997 (checked against ``MIN_COSINE_INT8`` before use). What a query is
compared with, stored vectors, stays as exact as before.
"""

from __future__ import annotations

import os

# See encoders/ocr.py: ONNX Runtime telemetry is off only if this is set before onnxruntime is imported.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import contextlib  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

logger = logging.getLogger(__name__)

# Bump when what is exported changes (inputs, outputs, pooling in the graph): cached files of before are not read.
EXPORT_VERSION = 1
# Where ONNX Runtime's float32 stops beating torch's bfloat16 for all-MiniLM-L6-v2 on one thread (both ~10 ms at 32
# tokens; ORT 4.3 against 8.2 ms at 8 tokens, 71 against 46 ms at 256): batches of at most this many tokens (rows x
# padded length) go to the session.
MAX_TOKENS = 32
# The session's vectors must be torch's to this cosine (measured: 1.0000, within float32 rounding).
MIN_COSINE = 0.999
# Bump when how the 8-bit copy is made changes: cached copies of before are not read.
QUANTIZE_VERSION = 2
# The 8-bit copy's vectors must be torch's to this cosine (all-MiniLM-L6-v2: 0.9994 to 0.9997 for short queries, 0.999
# for a one-letter one).
MIN_COSINE_INT8 = 0.998
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Texts the export is checked on: one word, a query, a sentence and one the tokenizer truncates.
PROBES = (
    "x",
    "a red circle",
    "invoice from march",
    "The committee approved the minutes of the annual meeting and published the treasurer's report.",
    " ".join(f"Paragraph {i} says the river authority reviewed its flood defences again." for i in range(40)),
)


class ExportFailed(Exception):
    """The model could not be exported, or its session does not give torch's vectors."""


@dataclass
class QuerySession:
    """An ONNX Runtime session that maps token ids to a space's pooled (not yet normalised) vectors."""

    session: Any
    token_types: bool
    path: Path | None  # the cached file it was read from; None when exported in memory

    def run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray | None) -> np.ndarray:
        feed = {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)}
        if self.token_types:
            feed["token_type_ids"] = (types if types is not None else np.zeros_like(ids)).astype(np.int64)
        return self.session.run(None, feed)[0]


def cache_key(fingerprint: str, kind: str = "float32") -> str:
    """The file name for a model's export: its fingerprint (weights, configuration, pooling) with the versions of
    everything that writes the graph; ``kind`` "int8" names its copy with 8-bit weights."""
    import onnx
    import torch
    import transformers

    versions = f"export={EXPORT_VERSION}:torch={torch.__version__}:transformers={transformers.__version__}" \
               f":onnx={onnx.__version__}"
    suffix = ".onnx"
    if kind != "float32":
        import onnxruntime

        versions += f":{kind}={QUANTIZE_VERSION}:onnxruntime={onnxruntime.__version__}"
        suffix = f".{kind}.onnx"
    return hashlib.sha256(f"{fingerprint}\n{versions}".encode()).hexdigest()[:24] + suffix


def query_sessions(model, *, pool: Callable, token_types: bool, tokenizer, fingerprint: str, folder: Path | None,
                   threads: int, space: str, int8: bool) -> tuple[QuerySession | None, QuerySession | None]:
    """Validated sessions for ``model`` (float32, on the CPU) and its pooling: the float32 one (torch's vectors,
    for short texts stored and asked) and, with ``int8``, one with 8-bit weights for texts asked as queries; None
    (logged) for each there is none of.

    ``pool(hidden, mask)`` is the space's pooling in torch; ``tokenizer`` pads a batch to its longest text;
    ``folder``: where exports are kept (None: exported in memory each time); ``threads``: the session's intra-op
    threads (the process's torch setting, so queries take the same share of the cores).
    """
    try:
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        logger.info("space %r: queries encode through torch (%s)", space, exc)
        return None, None
    graph = _graph(model, pool, token_types)
    try:
        exact, data = _kept(folder, cache_key(fingerprint), lambda: _export(graph, tokenizer),
                            lambda source, path: _checked(_session(source, threads), graph, tokenizer, path), space)
    except Exception as exc:  # an exporter or runtime that cannot take this model: torch still can
        logger.warning("space %r: queries encode through torch; the ONNX Runtime path is off (%s: %s)",
                       space, type(exc).__name__, exc)
        return None, None
    if not int8:
        return exact, None
    try:
        quick, _ = _kept(
            folder, cache_key(fingerprint, "int8"),
            lambda: _quantized(data if data is not None else exact.path.read_bytes()),
            lambda source, path: _checked(_session(source, threads), graph, tokenizer, path, MIN_COSINE_INT8), space)
    except Exception as exc:  # the quantizer cannot take this graph, or its vectors drift: float32 still serves
        logger.warning("space %r: queries encode in float32; the 8-bit copy is off (%s: %s)",
                       space, type(exc).__name__, exc)
        return exact, None
    return exact, quick


def _kept(folder: Path | None, name: str, make: Callable[[], bytes],
          check: Callable[[str | bytes, Path | None], QuerySession], space: str) -> tuple[QuerySession, bytes | None]:
    """The checked session of the file ``name`` kept in ``folder``, or of a model made anew (and kept there); with
    the model's bytes when they were made (None when read from the file)."""
    if folder is None:
        data = make()
        return check(data, None), data
    path = Path(folder) / name
    if path.is_file():
        try:
            return check(str(path), path), None
        except Exception as exc:  # a truncated or foreign file: make it again
            logger.warning("space %r: the cached export %s is unusable (%s); exporting again", space, path, exc)
    data = make()
    found = check(data, None)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:  # written whole, then renamed: another process reads the old file or the new one, never half
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, path)
        found.path = path
    except OSError as exc:  # a read-only or full folder costs the next process an export, no more
        logger.warning("space %r: cannot keep the export in %s (%s)", space, path.parent, exc)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return found, data


def _quantized(data: bytes) -> bytes:
    """The float32 model ``data`` with its MatMul weights in 8 bits, a scale per block of 32 (ONNX Runtime's
    MatMulNBits), computed with 8-bit activations (``accuracy_level`` 4).

    Dynamic quantization (one 8-bit scale per activation tensor) was tried first: as fast, but its query vectors
    were float32's to a cosine of 0.993-0.995 only, and that moved borderline results of the demo tests.
    """
    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    config = nbits.DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = nbits.MatMulNBitsQuantizer(onnx.load_from_string(data), algo_config=config)
    level = logging.getLogger(nbits.__name__).level
    logging.getLogger(nbits.__name__).setLevel(logging.WARNING)  # a line for each node it leaves alone
    try:
        quantizer.process()
    finally:
        logging.getLogger(nbits.__name__).setLevel(level)
    model = quantizer.model.model
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _graph(model, pool, token_types: bool):
    """The transformer and the space's pooling as one module (defined here: torch is imported on first use)."""
    import torch

    class Graph(torch.nn.Module):
        """The transformer and the space's pooling as one module: token ids in, pooled vectors out."""

        def __init__(self, model, pool, token_types: bool):
            super().__init__()
            self.model, self.pool, self.token_types = model, pool, token_types

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self.token_types:
                inputs["token_type_ids"] = token_type_ids
            return self.pool(self.model(**inputs).last_hidden_state.float(), attention_mask)

    return Graph(model, pool, token_types).eval()


def _tensors(tokenizer, texts: list[str]):
    import torch

    encodings = tokenizer.encode_batch(texts)
    return tuple(torch.tensor([getattr(e, field) for e in encodings])
                 for field in ("ids", "attention_mask", "type_ids"))


def _export(graph, tokenizer) -> bytes:
    import torch

    # Traced on two texts of different lengths: a dimension of size 1 in the example could be fixed in the graph.
    example = _tensors(tokenizer, ["a red circle on a blue square", "x"])
    names = list(INPUTS if graph.token_types else INPUTS[:2])
    axes = {name: {0: "texts", 1: "tokens"} for name in names} | {"vectors": {0: "texts"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracing notes
        torch.onnx.export(graph, example[:len(names)], buffer, dynamo=False, input_names=names,
                          output_names=["vectors"], dynamic_axes=axes, opset_version=17)
    return buffer.getvalue()


def _session(model: str | bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    # Threads wait between calls instead of spinning on the cores the database and torch need (encoders/ocr.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _checked(session, graph, tokenizer, path: Path | None, minimum: float | None = None) -> QuerySession:
    """The session, once its vectors are torch's for every probe alone and for all of them as one padded batch (to
    ``MIN_COSINE``), or (given a ``minimum``: the 8-bit copy, which is only ever given one short text) for each
    probe but the long one alone."""
    import torch

    found = QuerySession(session, graph.token_types, path)
    batches = [[text] for text in PROBES[:-1]]
    if minimum is None:
        minimum = MIN_COSINE
        batches.append(list(PROBES))  # the truncated one in the batch only
    worst = 1.0
    with torch.inference_mode():
        for texts in batches:
            ids, mask, types = _tensors(tokenizer, texts)
            expected = graph(ids, mask, types).numpy()
            got = found.run(ids.numpy(), mask.numpy(), types.numpy())
            if got.shape != expected.shape:
                raise ExportFailed(f"the session gives vectors of shape {got.shape}, torch {expected.shape}")
            cosines = (_unit(got) * _unit(expected)).sum(axis=1)
            worst = min(worst, float(np.nan_to_num(cosines, nan=-1.0).min()))
    if worst < minimum:
        raise ExportFailed(f"its vectors are torch's to a cosine of {worst:.4f} only (needs {minimum})")
    return found


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
