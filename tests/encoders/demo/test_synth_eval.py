"""The independent evaluation world: deterministic, the same classes, drawn by other code than training's."""

import re
from pathlib import Path

import numpy as np

from encoders.demo import synth, synth_eval

DEMO = Path(synth.__file__).parent
ENCODERS = DEMO.parent


def test_samples_are_reproducible_from_the_seed():
    a, b = next(synth_eval.image_samples(1, seed=3)), next(synth_eval.image_samples(1, seed=3))
    assert a.key == b.key and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    x, y = next(synth_eval.audio_samples(1, seed=3)), next(synth_eval.audio_samples(1, seed=3))
    assert x.key == y.key and x.samplerate == y.samplerate and np.array_equal(x.waveform, y.waveform)
    assert synth_eval.ood_sentences(seed=1) == synth_eval.ood_sentences(seed=1)


def test_every_class_appears_once_per_round():
    images = list(synth_eval.image_samples(1, seed=0))
    assert sorted(s.key for s in images) == sorted(f"{c} {s}" for c in synth.COLOURS for s in synth.SHAPES)
    clips = list(synth_eval.audio_samples(1, seed=0))
    assert sorted(s.key for s in clips) == sorted(f"{p} {k}" for k in synth.AUDIO_KINDS for p in synth.PITCHES)


def test_it_differs_from_the_training_world():
    images = list(synth_eval.image_samples(1, seed=0))
    assert len({s.image.size for s in images}) > 2  # canvases of many sizes; training's plain look is 128 px
    assert len({s.labels["background"] for s in images}) == len(synth_eval.BACKGROUND_STYLES)
    clips = list(synth_eval.audio_samples(2, seed=0))
    assert len({c.samplerate for c in clips}) > 2 and any(c.waveform.ndim == 2 for c in clips)
    assert {c.labels["timbre"] for c in clips} <= {"triangle", "organ", "fm"}  # none of training's timbres


def test_training_never_imports_it():
    for module in (DEMO / "synth.py", DEMO / "train.py", ENCODERS / "training.py", ENCODERS / "train_audio.py"):
        source = module.read_text()
        assert not re.search(r"^\s*(from|import)\s.*synth_eval", source, re.MULTILINE), module


def test_objects_keep_their_colour():
    for sample in synth_eval.image_samples(1, seed=4):
        pixels = np.asarray(sample.image).reshape(-1, 3).astype(float)
        target = np.array(synth.COLOURS[sample.labels["colour"]][0])
        assert (np.abs(pixels - target).max(axis=1) < 80).mean() > 0.005, sample.labels


def test_tones_sit_in_their_pitch_band():
    for sample in synth_eval.audio_samples(2, seed=2):
        if sample.labels["kind"] != "tone":
            continue
        wave = sample.waveform if sample.waveform.ndim == 1 else sample.waveform.mean(axis=1)
        spectrum = np.abs(np.fft.rfft(wave))
        peak = np.fft.rfftfreq(len(wave), 1 / sample.samplerate)[spectrum.argmax()]
        lo, hi = synth.PITCH_BANDS[sample.labels["pitch"]]
        assert lo * 0.95 <= peak <= hi * 4.5, (sample.labels, peak)  # the fundamental or a low harmonic


def test_held_out_sentences_are_out_of_domain_and_unseen_in_training():
    held_out = synth_eval.ood_sentences()
    assert len(held_out) == len(set(held_out)) == 300
    words = synth.domain_words()
    assert not [s for s in held_out if synth._has_domain_word(s, words)]
    rng = np.random.default_rng(0)
    training = {synth.ood_sentence(rng) for _ in range(20000)}
    assert not training & set(held_out)
