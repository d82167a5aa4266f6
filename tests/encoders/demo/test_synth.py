import json

import numpy as np
import soundfile
from PIL import Image

from encoders.audio.frontend import decode_audio
from encoders.demo import synth


def test_samples_are_reproducible_from_the_seed():
    a, b = next(synth.image_samples(1, seed=3)), next(synth.image_samples(1, seed=3))
    assert a.caption == b.caption and a.labels == b.labels
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    x, y = next(synth.audio_samples(1, seed=3)), next(synth.audio_samples(1, seed=3))
    assert x.caption == y.caption and np.array_equal(x.waveform, y.waveform)
    assert next(synth.image_samples(1, seed=4)).caption != a.caption or not np.array_equal(
        np.asarray(next(synth.image_samples(1, seed=4)).image), np.asarray(a.image)
    )


def test_sets_cycle_through_every_class():
    images = list(synth.image_samples(128, seed=0))
    assert {s.key for s in images[:64]} == {f"{c} {s}" for c in synth.COLOURS for s in synth.SHAPES}
    clips = list(synth.audio_samples(15, seed=0))
    assert {s.key for s in clips} == {f"{p} {k}" for k in synth.AUDIO_KINDS for p in synth.PITCHES}


def test_images_show_their_colour():
    for sample in synth.image_samples(16, seed=1):
        pixels = np.asarray(sample.image).reshape(-1, 3).astype(float)
        target = np.array(synth.COLOURS[sample.labels["colour"]][0])
        assert (np.abs(pixels - target).max(axis=1) < 50).mean() > 0.005, sample.labels


def test_captions_name_the_labels():
    for sample in synth.image_samples(40, seed=2):
        assert any(w in sample.caption for w in synth.COLOURS[sample.labels["colour"]][1])
        assert any(w in sample.caption for w in synth.SHAPES[sample.labels["shape"]])


def test_audio_pitch_matches_its_label():
    for sample in synth.audio_samples(30, seed=2):
        if sample.labels["kind"] in ("noise", "sweep"):
            continue
        spectrum = np.abs(np.fft.rfft(sample.waveform))
        peak = np.fft.rfftfreq(len(sample.waveform), 1 / sample.samplerate)[spectrum.argmax()]
        lo, hi = synth.PITCH_BANDS[sample.labels["pitch"]]
        assert lo * 0.95 <= peak <= hi * 1.6, (sample.labels, peak)


def test_write_dataset_produces_files_and_a_manifest(tmp_path):
    manifest = synth.write_dataset(tmp_path, n_images=3, n_audio=2, n_texts=4, seed=7)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["modality"] for r in rows] == ["image"] * 3 + ["audio"] * 2 + ["text"] * 4
    assert len({r["id"] for r in rows}) == 9
    for row in rows:
        assert row["title"] and row["tags"] and row["labels"]
        if row["modality"] == "image":
            assert Image.open(tmp_path / row["path"]).size == (128, 128)
        elif row["modality"] == "audio":
            assert soundfile.info(tmp_path / row["path"]).samplerate == 16000
            wave, _ = decode_audio(tmp_path / row["path"])
            assert len(wave) >= 2 * 16000
        else:
            assert row["text"] == row["title"] and "path" not in row
    assert {p.suffix for p in (tmp_path / "audio").iterdir()} == {".wav", ".flac"}


def test_varied_rendering_keeps_labels_and_captions_meaningful():
    samples = list(synth.image_samples(64, seed=5, varied=1.0))
    assert {s.key for s in samples} == {f"{c} {s}" for c in synth.COLOURS for s in synth.SHAPES}
    assert len({s.image.size for s in samples}) > 2
    for sample in samples[:16]:
        assert any(w in sample.caption for w in synth.SHAPES[sample.labels["shape"]])
    clips = list(synth.audio_samples(15, seed=5, varied=1.0))
    assert {c.key for c in clips} == {f"{p} {k}" for k in synth.AUDIO_KINDS for p in synth.PITCHES}
    assert all(np.isfinite(c.waveform).all() and np.abs(c.waveform).max() <= 1 for c in clips)


def test_the_plain_demo_look_is_the_default():
    plain, varied = next(synth.image_samples(1, seed=3)), next(synth.image_samples(1, seed=3, varied=1.0))
    assert plain.image.size == (128, 128) and plain.key == varied.key
    assert not np.array_equal(np.asarray(plain.image), np.asarray(varied.image.resize((128, 128))))


def test_a_scene_family_changes_only_the_named_attribute():
    family = synth.scene_family(11, colour="green")
    assert [s.labels["shape"] for s in family] == list(synth.SHAPES)
    assert {s.labels["colour"] for s in family} == {"green"}
    assert len({s.image.size for s in family}) == 1
    # Same background: the corners agree across members.
    corners = [np.asarray(s.image)[:4, :4].astype(float) for s in family]
    assert max(np.abs(c - corners[0]).mean() for c in corners) < 25


def test_out_of_domain_sentences_avoid_every_domain_word():
    words = synth.domain_words()
    assert {"red", "circle", "shrill", "beeps", "hiss"} <= words
    rng = np.random.default_rng(1)
    sentences = [synth.ood_sentence(rng) for _ in range(500)]
    assert len(set(sentences)) > 300
    assert not [s for s in sentences if synth._has_domain_word(s, words)]
