"""Speech in recordings: a transcript with word times, and none for music, tones or noise.

Two models that ship inside registry wheels, both on the CPU:

* **Silero VAD** (``silero-vad`` wheel, its torch-free "sequence" ONNX export, run here on ONNX Runtime)
  decides where someone speaks, every 32 ms. It is the speech detector: a recording with no speech
  region gets no transcript, and only speech regions are decoded, so a long recording that is mostly
  music costs little.
* **PocketSphinx** 5 (US-English acoustic model, language model and dictionary in the wheel) turns each
  speech region into words with times (``Decoder.seg()``) and posterior probabilities, and lists what else it
  may have heard there (``Decoder.nbest()``): the words of its next-best hypotheses that are not in the best one
  (``Utterance.alternatives``), and a few of those hypotheses whole (``Utterance.readings``). About half the words
  of real speech come out right; a key word it misheard is often among the alternatives (coffee, garden,
  lawyer, keys in 4 of our 6 generated memos, against 1 in the best hypothesis), so they are indexed for search
  too, though never shown as what was said.

A recording is read in two passes so memory stays bounded whatever its length: the detector streams
over it at 16 kHz in blocks, keeping one float per 32 ms; then each region (at most
``MAX_REGION_SECONDS``) is cut from the input, resampled and decoded on its own.
"""

from __future__ import annotations

import os

# See encoders/ocr.py: ONNX Runtime telemetry is off only if this is set before onnxruntime is imported.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import importlib.util  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from encoders.base import AudioDecodeError, EncoderError, WeightsNotFound  # noqa: E402

SAMPLE_RATE = 16000
LANGUAGES = ("en-us",)

# Speech detector (Silero VAD): a region opens where the speech probability reaches START and closes
# after MIN_SILENCE below STOP. Regions shorter than MIN_SPEECH, or whose mean probability is below
# MIN_MEAN, are dropped: music and beeps make a few frames near 0.6 (regions of 0.2-0.7 s averaging
# 0.3-0.59 in our measurements), speech makes runs of them (averaging 0.86 or more, 0.66 with noise as
# loud as the voice). PAD is kept on each side, as the recogniser needs a little silence around words.
SPEECH_START = 0.5
SPEECH_STOP = 0.35
MIN_SPEECH_SECONDS = 0.25
MIN_MEAN = 0.6
MIN_SILENCE_SECONDS = 0.3
PAD_SECONDS = 0.2
# The recogniser's gate: a region the detector is less sure of (mean below CLEAR_MEAN) keeps its words only
# if at least one of them has a posterior of SURE_WORD or more. No speech region in our measurements (clean,
# and under music at 10 and 0 dB) failed both; the beeps and music that passed the detector did.
CLEAR_MEAN = 0.8
SURE_WORD = 0.5
# Longest piece decoded as one utterance; longer speech is cut at its quietest moment near this length.
MAX_REGION_SECONDS = 30.0
# Words whose posterior probability is below this are dropped. Nothing by default: on our test speech a cut
# at 0.1 removed 28% of the words, 86% of them wrong, but also 9% of the right ones, and a search for a
# name needs the name more than it minds a wrong word beside it.
MIN_WORD_CONFIDENCE = 0.0
# Hypotheses of the n-best list read per utterance for alternatives (about 10 ms for 100 on this CPU; the list
# goes on for thousands, ever further from what was said), and at most how many alternative words and whole
# readings are kept of them. In our generated memos a misheard key word first came at ranks 1-95, and greedy
# cover of the first 100 hypotheses' new content words took up to 12 of them.
N_BEST = 100
MAX_ALTERNATIVES = 60
MAX_READINGS = 12
# Words too common to make a hypothesis worth keeping as a reading (a new "the" says nothing).
_COMMON = frozenset("""a an and are as at be but by for from had has have he her his i in is it its me my no not of
on or our she so than that the their them then there they this to up us was we were what when which who will with
you your""".split())

_FRAME = 512  # samples per detector frame at 16 kHz (32 ms)
_CONTEXT = 64  # samples of the previous frame the model sees with each frame
_FRAMES_PER_CALL = 512  # ~16 s of audio per ONNX call
_VAD_MODEL = "silero_vad_16k_sequence.onnx"
# "<s>", "</s>", "<sil>", "[NOISE]", "++BREATH++" and the like are not words.
_NOT_A_WORD = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
_ALTERNATE = re.compile(r"\(\d+\)$")


@dataclass(frozen=True)
class Word:
    """A recognised word; times are seconds from the start of the recording."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech (a region of the detector) and its words."""

    start: float
    end: float
    words: tuple[Word, ...]
    # What else the recogniser may have heard here (never shown as said): the words of its n-best hypotheses that
    # are not among `words`, in the order the list first has them, and the hypotheses that brought new ones.
    alternatives: tuple[str, ...] = ()
    readings: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)


@dataclass(frozen=True)
class Transcript:
    utterances: tuple[Utterance, ...]
    duration: float  # seconds of audio listened to
    speech_seconds: float  # seconds the detector heard as speech

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(word for utterance in self.utterances for word in utterance.words)

    @property
    def text(self) -> str:
        return " ".join(utterance.text for utterance in self.utterances if utterance.words)

    def __bool__(self) -> bool:
        return any(utterance.words for utterance in self.utterances)


class SpeechError(EncoderError):
    """The speech models failed on a recording."""


def transcribe(
    waveform: np.ndarray,
    samplerate: int,
    *,
    language: str = "en-us",
    min_word_confidence: float = MIN_WORD_CONFIDENCE,
    alternatives: bool = True,
) -> Transcript:
    """The words spoken in a mono float32 recording at any sample rate, with their times, and (``alternatives``)
    what else the recogniser may have heard in each utterance.

    A recording without speech (music, tones, noise, silence) gives an empty transcript.
    """
    if language not in LANGUAGES:
        raise EncoderError(f"no speech model for language {language!r}; available: {', '.join(LANGUAGES)}")
    waveform = _mono(waveform)
    regions = _detect(waveform, samplerate)
    pieces = ((_pcm16(_resampled(waveform, samplerate, start, end)), start) for start, end, _ in regions)
    utterances = []
    decoded = _Recogniser.get().decode(pieces, n_best=N_BEST if alternatives else 0)
    for (start, end, score), (words, hypotheses) in zip(regions, decoded, strict=True):
        if score < CLEAR_MEAN and not any(word.confidence >= SURE_WORD for word in words):
            words, hypotheses = [], []
        words = [word for word in words if word.confidence >= min_word_confidence]
        heard, readings = _alternatives([word.text for word in words], hypotheses) if words else ((), ())
        utterances.append(Utterance(start=round(start, 3), end=round(end, 3), words=tuple(words),
                                    alternatives=heard, readings=readings))
    return Transcript(
        utterances=tuple(utterances),
        duration=round(len(waveform) / samplerate, 3),
        speech_seconds=round(sum(end - start for start, end, _ in regions), 3),
    )


def speech_regions(waveform: np.ndarray, samplerate: int) -> list[tuple[float, float]]:
    """Where the detector hears speech: (start, end) seconds, padded, each at most ``MAX_REGION_SECONDS``."""
    return [(start, end) for start, end, _ in _detect(_mono(waveform), samplerate)]


def _detect(waveform: np.ndarray, samplerate: int) -> list[tuple[float, float, float]]:
    if samplerate <= 0:
        raise AudioDecodeError(f"invalid sample rate {samplerate}")
    probs = _Detector.get().probabilities(_blocks_16k(waveform, samplerate))
    return _regions(probs, duration=len(waveform) / samplerate)


def warmup() -> None:
    """Load both models now rather than inside the first request."""
    _Detector.get()
    _Recogniser.get()


# ------------------------------------------------------------------------------------------ detector


class _Detector:
    """Silero VAD, one ONNX Runtime session per process (sessions are safe to share between threads)."""

    _instance: _Detector | None = None
    _loading = threading.Lock()

    def __init__(self):
        import onnxruntime

        spec = importlib.util.find_spec("silero_vad")  # locates the wheel without importing it (and torch)
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / _VAD_MODEL if spec else None
        if path is None or not path.is_file():
            raise WeightsNotFound(f"the speech detector {_VAD_MODEL} is missing; install the pinned silero-vad wheel")
        options = onnxruntime.SessionOptions()
        # A small recurrent model: one thread is as fast, and leaves the other core to the recogniser.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def get(cls) -> _Detector:
        if cls._instance is None:
            with cls._loading:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def probabilities(self, blocks: Iterator[np.ndarray]) -> np.ndarray:
        """Speech probability of each 32 ms frame of a 16 kHz stream given in blocks of any size."""
        hidden = np.zeros((1, 1, 128), dtype=np.float32)
        cell = np.zeros((1, 1, 128), dtype=np.float32)
        context = np.zeros(_CONTEXT, dtype=np.float32)
        pending = np.zeros(0, dtype=np.float32)
        out: list[np.ndarray] = []

        def run(samples: np.ndarray):
            nonlocal hidden, cell, context
            frames = samples.reshape(-1, _FRAME)
            contexts = np.empty((len(frames), _CONTEXT), dtype=np.float32)
            contexts[0] = context
            contexts[1:] = frames[:-1, -_CONTEXT:]
            context = frames[-1, -_CONTEXT:].copy()
            try:
                probs, hidden, cell = self._session.run(
                    ["speech_probs", "hn", "cn"],
                    {"input": np.concatenate([contexts, frames], axis=1), "h": hidden, "c": cell},
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise SpeechError(f"speech detector failed ({exc})") from exc
            out.append(np.asarray(probs, dtype=np.float32).reshape(-1))

        for block in blocks:
            pending = np.concatenate([pending, block]) if len(pending) else block
            usable = len(pending) // (_FRAME * _FRAMES_PER_CALL) * (_FRAME * _FRAMES_PER_CALL)
            if usable:
                for at in range(0, usable, _FRAME * _FRAMES_PER_CALL):
                    run(pending[at : at + _FRAME * _FRAMES_PER_CALL])
                pending = pending[usable:]
        if len(pending):
            tail = np.zeros(-(-len(pending) // _FRAME) * _FRAME, dtype=np.float32)
            tail[: len(pending)] = pending
            run(tail)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _regions(probs: np.ndarray, duration: float) -> list[tuple[float, float, float]]:
    """Hysteresis over frame probabilities: padded speech regions (start, end seconds; mean probability)."""
    step = _FRAME / SAMPLE_RATE
    min_speech = round(MIN_SPEECH_SECONDS / step)
    min_silence = round(MIN_SILENCE_SECONDS / step)
    raw: list[tuple[int, int]] = []  # frame spans [start, end)
    start = None
    quiet = 0
    for i, p in enumerate(probs):
        if start is None:
            if p >= SPEECH_START:
                start, quiet = i, 0
        elif p < SPEECH_STOP:
            quiet += 1
            if quiet >= min_silence:
                raw.append((start, i - quiet + 1))
                start = None
        else:
            quiet = 0
    if start is not None:
        raw.append((start, len(probs) - quiet))
    spans = [(a, b) for a, b in raw if b - a >= min_speech and float(probs[a:b].mean()) >= MIN_MEAN]
    # Long speech is cut at its least speech-like frame in the last third of each piece; a cut is not
    # padded, so no stretch of audio is decoded twice.
    longest = round(MAX_REGION_SECONDS / step)
    regions: list[tuple[float, float, float]] = []
    for a, b in spans:
        begin = max(0.0, a * step - PAD_SECONDS)
        while b - a > longest:
            cut = a + longest * 2 // 3 + int(np.argmin(probs[a + longest * 2 // 3 : a + longest]))
            regions.append((begin, cut * step, float(probs[a:cut].mean())))
            a, begin = cut, cut * step
        end = min(duration, b * step + PAD_SECONDS)
        if regions and begin < regions[-1][1]:
            begin = regions[-1][1]  # padding made neighbours overlap: share the gap instead
        regions.append((begin, end, float(probs[a:b].mean())))
    return regions


# ---------------------------------------------------------------------------------------- recogniser


class _Recogniser:
    """One PocketSphinx decoder per process; it decodes one recording at a time, so calls queue."""

    _instance: _Recogniser | None = None
    _loading = threading.Lock()

    def __init__(self):
        from pocketsphinx import Decoder

        try:
            # The default model is the US-English one inside the wheel; bestpath gives word posteriors.
            self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", bestpath=True)
        except (RuntimeError, ValueError) as exc:
            raise WeightsNotFound(f"PocketSphinx could not load its English model ({exc})") from exc
        self._frame_rate = int(self._decoder.config["frate"])
        self._lock = threading.Lock()

    @classmethod
    def get(cls) -> _Recogniser:
        if cls._instance is None:
            with cls._loading:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def decode(self, pieces: Iterator[tuple[bytes, float]], *, n_best: int = N_BEST
               ) -> list[tuple[list[Word], list[str]]]:
        """The words of each (16-bit PCM at 16 kHz, start second) piece of one recording, in order, with the first
        `n_best` hypotheses of its n-best list (the best one first)."""
        results = []
        with self._lock:
            try:
                # Feature extraction adapts from utterance to utterance (cepstral means, noise estimates);
                # each recording starts afresh, so its transcript does not depend on what this process
                # decoded before (it did, in the posteriors' fourth decimal).
                self._decoder.reinit_feat()
                for pcm, offset in pieces:
                    self._decoder.start_utt()
                    self._decoder.process_raw(pcm, full_utt=True)
                    self._decoder.end_utt()
                    segments = [(s.word, s.start_frame, s.end_frame, s.prob) for s in self._decoder.seg()]
                    hypotheses = []
                    for hypothesis in self._decoder.nbest() if n_best else ():
                        if len(hypotheses) >= n_best:
                            break
                        hypotheses.append(hypothesis.hypstr)
                    results.append((_words(segments, offset, self._frame_rate), hypotheses))
            except RuntimeError as exc:
                raise SpeechError(f"speech recogniser failed ({exc})") from exc
        return results


def _words(segments, offset: float, frame_rate: int) -> list[Word]:
    """Words from ``Decoder.seg()`` rows (token, first frame, last frame, posterior), fillers left out."""
    words = []
    for token, first, last, prob in segments:
        if _NOT_A_WORD.match(token):
            continue
        words.append(
            Word(
                text=_ALTERNATE.sub("", token),  # "to(3)": the third pronunciation of "to"
                start=round(offset + first / frame_rate, 3),
                # Frame numbers are inclusive: the word lasts until the end of its last frame.
                end=round(offset + (last + 1) / frame_rate, 3),
                confidence=round(min(max(float(prob), 0.0), 1.0), 4),
            )
        )
    return words


def _alternatives(best: list[str], hypotheses: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of the hypotheses that are not in the best one (at most ``MAX_ALTERNATIVES``, in the order they
    come), and the hypotheses that first brought a new content word (at most ``MAX_READINGS``), fillers left
    out."""
    heard = set(best)
    alternatives: list[str] = []
    readings: list[str] = []
    for hypothesis in hypotheses:
        tokens = [_ALTERNATE.sub("", token) for token in hypothesis.split() if not _NOT_A_WORD.match(token)]
        new = [token for token in dict.fromkeys(tokens) if token not in heard]
        if not new:
            continue
        if len(readings) < MAX_READINGS and any(token not in _COMMON for token in new):
            readings.append(" ".join(tokens))
        for token in new:
            heard.add(token)
            if len(alternatives) < MAX_ALTERNATIVES:
                alternatives.append(token)
    return tuple(alternatives), tuple(readings)


# ---------------------------------------------------------------------------------------------- audio


def _mono(waveform: np.ndarray) -> np.ndarray:
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise AudioDecodeError(f"expected a mono waveform (1-D), got shape {waveform.shape}")
    if waveform.size == 0:
        raise AudioDecodeError("audio contains no samples")
    return waveform


# Seconds of input resampled at a time by the detector's pass.
_BLOCK_SECONDS = 16


def _blocks_16k(waveform: np.ndarray, samplerate: int) -> Iterator[np.ndarray]:
    """The waveform at 16 kHz as float32 blocks, resampled as a stream (never the whole file at once)."""
    block = _BLOCK_SECONDS * samplerate
    stream = None
    if samplerate != SAMPLE_RATE:
        import soxr

        stream = soxr.ResampleStream(samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    for at in range(0, len(waveform), block):
        chunk = _finite(np.asarray(waveform[at : at + block], dtype=np.float32))
        last = at + block >= len(waveform)
        yield chunk if stream is None else stream.resample_chunk(chunk, last=last)


def _resampled(waveform: np.ndarray, samplerate: int, start: float, end: float) -> np.ndarray:
    """Seconds ``start``-``end`` of the waveform at 16 kHz."""
    a, b = int(start * samplerate), int(np.ceil(end * samplerate))
    piece = _finite(np.asarray(waveform[a:b], dtype=np.float32))
    if samplerate == SAMPLE_RATE:
        return piece
    import soxr

    return soxr.resample(piece, samplerate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


def _finite(samples: np.ndarray) -> np.ndarray:
    if not np.isfinite(samples).all():
        raise AudioDecodeError("waveform contains NaN or infinite samples")
    return samples


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
