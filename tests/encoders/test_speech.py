"""Speech to text through the real models (Silero VAD and PocketSphinx, both in their wheels): speech made
at test time by espeak-ng comes back as words with increasing times at the right moment; tones, chords,
noise, music and silence come back with no transcript; nothing goes online."""

import io
import os
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("pocketsphinx")
pytest.importorskip("onnxruntime")
if __import__("importlib.util").util.find_spec("silero_vad") is None:
    pytest.skip("silero-vad is not installed", allow_module_level=True)

from encoders import speech  # noqa: E402
from encoders.base import AudioDecodeError  # noqa: E402
from encoders.demo.synth import audio_samples  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SR = speech.SAMPLE_RATE
# espeak-ng's default US voice is hard for PocketSphinx's acoustic model; its "f2" variant reads well.
VOICE = "en-us+f2"
SENTENCE = "Please call me after the meeting on Tuesday morning."


@pytest.fixture(scope="module", autouse=True)
def models():
    """Load the detector and the recogniser once for the module."""
    speech.warmup()


def espeak(text: str, voice: str = VOICE, speed: int = 140) -> tuple[np.ndarray, int]:
    """Speech synthesised now by espeak-ng, at its own rate (22050 Hz), so resampling is exercised too."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); it makes the test speech")
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         capture_output=True, check=True, timeout=60).stdout
    waveform, samplerate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return waveform, samplerate


def words(text: str) -> set[str]:
    return set("".join(c if c.isalnum() or c == "'" else " " for c in text.lower()).split())


def music(rng: np.random.Generator, seconds: float, notes_per_second: float = 4.0, drums: bool = True) -> np.ndarray:
    """A melody of harmonic notes over a sustained chord, with kick and snare: rhythm at a syllable's rate."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.zeros(n)
    scale = 220 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
    step = 1 / notes_per_second
    for k in range(int(seconds / step)):
        a, b = int(k * step * SR), min(n, int((k + 1) * step * SR))
        tt = np.arange(b - a) / SR
        f = rng.choice(scale)
        note = sum(np.sin(2 * np.pi * f * h * tt) / h for h in range(1, 7))
        out[a:b] += note * np.minimum(1, tt / 0.01) * np.exp(-tt * 3)
    out += 0.3 * sum(np.sin(2 * np.pi * scale[0] / 2 * r * t) for r in (1, 1.25, 1.5))
    if drums:
        for k, start in enumerate(np.arange(0, seconds, 0.25)):
            a = int(start * SR)
            tt = np.arange(min(n - a, int(0.15 * SR))) / SR
            hit = np.sin(2 * np.pi * (60 + 80 * np.exp(-tt * 30)) * tt) if k % 2 == 0 else rng.normal(0, 0.5, len(tt))
            out[a:a + len(tt)] += hit * np.exp(-tt * 20)
    return (0.6 * out / np.abs(out).max()).astype(np.float32)


def non_speech(seed: int = 0, count: int = 15) -> list[tuple[str, np.ndarray]]:
    """Tones, chords, sweeps, beeps and noises (the demo's sound generator), music, white noise, silence."""
    rng = np.random.default_rng(seed)
    clips = [(f"{s.labels['kind']}-{s.labels['pitch']}", s.waveform) for s in audio_samples(count, seed=seed, sr=SR)]
    clips += [("music", music(rng, 4.0)), ("music-no-drums", music(rng, 4.0, 2.5, drums=False))]
    clips += [("white-noise", rng.normal(0, 0.2, 3 * SR).astype(np.float32)),
              ("silence", np.zeros(3 * SR, dtype=np.float32))]
    return clips


def test_speech_is_transcribed_with_increasing_word_times():
    waveform, samplerate = espeak(SENTENCE)
    transcript = speech.transcribe(waveform, samplerate)
    duration = len(waveform) / samplerate
    heard = [word.text for word in transcript.words]
    assert len(words(SENTENCE) & set(heard)) >= 4, heard
    assert words(SENTENCE) & set(heard) & {"meeting", "tuesday", "morning", "call"}, heard
    starts = [word.start for word in transcript.words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for word in transcript.words:
        assert 0 <= word.start < word.end <= duration + 0.05
        assert 0.0 <= word.confidence <= 1.0
        assert word.text.isascii() and "(" not in word.text and not word.text.startswith(("<", "["))
    assert transcript.text == " ".join(heard)
    assert transcript and 0 < transcript.speech_seconds <= transcript.duration == pytest.approx(duration, abs=1e-3)


def test_words_carry_the_moment_they_were_said_in_a_longer_recording():
    waveform, samplerate = espeak("The train to Boston leaves from platform four at nine.")
    speech_16k = speech._resampled(waveform, samplerate, 0, len(waveform) / samplerate)
    rng = np.random.default_rng(1)
    before, after = music(rng, 5.0), music(rng, 3.0, drums=False)
    recording = np.concatenate([before, speech_16k, after])
    transcript = speech.transcribe(recording, SR)
    begins, ends = 5.0, 5.0 + len(speech_16k) / SR
    assert len(transcript.words) >= 4
    assert {"boston", "platform", "train", "nine", "four"} & {word.text for word in transcript.words}
    for word in transcript.words:
        assert begins - 0.3 <= word.start and word.end <= ends + 0.3, (word, begins, ends)


@pytest.mark.parametrize("name, clip", non_speech(), ids=lambda value: value if isinstance(value, str) else "")
def test_music_tones_and_noise_have_no_transcript(name, clip):
    transcript = speech.transcribe(clip, SR)
    assert not transcript, f"{name}: {transcript.text!r}"
    assert transcript.words == () and transcript.text == ""


def test_fillers_silences_and_alternate_pronunciations_are_not_words():
    segments = [("<s>", 0, 9, 1.0), ("[NOISE]", 10, 19, 0.9), ("to(3)", 20, 29, 0.8), ("<sil>", 30, 39, 1.0),
                ("tuesday", 40, 79, 0.7), ("++BREATH++", 80, 89, 1.0), ("</s>", 90, 99, 1.0)]
    result = speech._words(segments, offset=2.0, frame_rate=100)
    assert result == [speech.Word("to", 2.2, 2.3, 0.8), speech.Word("tuesday", 2.4, 2.8, 0.7)]


def test_long_speech_is_cut_into_bounded_pieces_that_do_not_overlap():
    step = 512 / SR
    probs = np.full(int(100 / step), 0.9, dtype=np.float32)  # 100 s of speech without a pause
    probs[int(40 / step):int(40.5 / step)] = 0.3  # a breath at 40 s
    probs[int(70 / step):int(72 / step)] = 0.0  # a real pause at 70 s
    regions = [(start, end) for start, end, _ in speech._regions(probs, duration=100.0)]
    assert all(end - start <= speech.MAX_REGION_SECONDS + 2 * speech.PAD_SECONDS for start, end in regions)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(regions, regions[1:], strict=False))
    assert regions[0][0] == 0.0 and regions[-1][1] == 100.0
    covered = sum(end - start for start, end in regions)
    assert covered >= 98.0  # all of it but the pause


def test_a_single_speech_like_frame_is_not_speech():
    probs = np.zeros(300, dtype=np.float32)
    probs[100:103] = 0.7  # 96 ms: a click or a drum hit that looks like a syllable onset
    assert speech._regions(probs, duration=300 * 512 / SR) == []


def test_concurrent_calls_share_one_recogniser_and_give_the_same_words(monkeypatch):
    monkeypatch.setattr(speech._Recogniser, "_instance", None)
    waveform, samplerate = espeak(SENTENCE)
    with ThreadPoolExecutor(3) as pool:
        transcripts = list(pool.map(lambda _: speech.transcribe(waveform, samplerate), range(3)))
    assert transcripts[0] and all(t == transcripts[0] for t in transcripts)


def test_bad_input_is_refused():
    with pytest.raises(AudioDecodeError):
        speech.transcribe(np.zeros((SR, 2), dtype=np.float32), SR)
    with pytest.raises(AudioDecodeError):
        speech.transcribe(np.full(SR, np.nan, dtype=np.float32), SR)
    with pytest.raises(AudioDecodeError):
        speech.transcribe(np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioDecodeError):
        speech.transcribe(np.zeros(SR, dtype=np.float32), 0)


# ------------------------------------------------------------------------------------------- privacy


def test_loading_and_transcribing_open_no_connection_and_telemetry_is_off(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"speech recognition tried to reach the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(speech._Detector, "_instance", None)  # load both again, inside the guard
    monkeypatch.setattr(speech._Recogniser, "_instance", None)
    waveform, samplerate = espeak(SENTENCE)
    assert speech.transcribe(waveform, samplerate)
    assert "onnxruntime" in sys.modules
    assert os.environ.get("ORT_DISABLE_TELEMETRY") == "1"


CHILD = """
import os, subprocess, sys
import numpy as np
from encoders import speech
t = np.arange(32000) / 16000
print(speech.transcribe((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000).text)
speech.warmup()
assert "onnxruntime" in sys.modules and os.environ["ORT_DISABLE_TELEMETRY"] == "1"
"""


def child_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}  # the module must set it
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(REPO))
    return env


def test_a_fresh_process_writes_no_telemetry_id(tmp_path):
    """The speech detector runs on onnxruntime too: importing encoders.speech turns its telemetry off."""
    done = subprocess.run([sys.executable, "-c", CHILD], env=child_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".cache" / "Microsoft").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
def test_no_socket_is_opened_by_any_thread_for_a_while(tmp_path):
    """Every thread of a child that loads and runs both models is traced for 20 s (see test_ocr.py)."""
    trace = tmp_path / "trace.txt"
    done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                           sys.executable, "-c", CHILD + "\nimport time\ntime.sleep(15)\n"],
                          env=child_env(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert [row for row in trace.read_text().splitlines() if "AF_INET" in row] == []


# ----------------------------------------------------------------------------------------- the gate


def speech_corpus() -> list[tuple[str, np.ndarray, int]]:
    sentences = [SENTENCE, "The spare key is under the blue flower pot next to the garden door."]
    voices = [("en-us", 160), ("en-us+f2", 140), ("en-us+f3", 150), ("en-us+m3", 170), ("en", 150)]
    return [(f"{voice}: {text}", *espeak(text, voice, speed)) for text in sentences for voice, speed in voices]


@pytest.mark.slow
def test_the_speech_gate_keeps_speech_and_drops_everything_else():
    """The measured confusion of the speech detector: speech clips (five espeak-ng voices, also over music
    and noise at 10 dB) kept, non-speech clips (30 generated sounds, music, noise, silence) dropped."""
    rng = np.random.default_rng(0)
    kept, clips = 0, speech_corpus()
    for name, waveform, samplerate in clips:
        mono = speech._resampled(waveform, samplerate, 0, len(waveform) / samplerate)
        for variant, mixed in [("clean", mono),
                               ("music", mono + 0.3 * np.resize(music(rng, 6.0), len(mono))),
                               ("noise", mono + rng.normal(0, 0.3 * mono.std(), len(mono)).astype(np.float32))]:
            heard = bool(speech.transcribe(mixed.astype(np.float32), SR))
            kept += heard
            if not heard:
                print(f"speech dropped: {variant} {name}")
    wrong = [name for name, clip in non_speech(seed=3, count=30) if speech.transcribe(clip, SR)]
    print(f"speech kept {kept}/{3 * len(clips)}; non-speech given text {len(wrong)}/34 {wrong}")
    assert wrong == []
    assert kept >= 0.95 * 3 * len(clips)
