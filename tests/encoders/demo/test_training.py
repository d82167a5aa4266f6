import csv
import json

import numpy as np
import torch

from encoders.audio.tower import AudioTower, TowerConfig, load_tower
from encoders.demo import synth
from encoders.demo.train import DEMO_FRONTEND, DemoTrainer, augment_images, augment_mels, multi_positive_loss
from encoders.openclip import OpenClipSpace
from encoders.registry import DEFAULT_SPACES
from encoders.train_audio import main as train_audio_main
from encoders.train_audio import read_pairs, train_tower
from encoders.training import audio_windows, pick_one_window_per_clip

DEMO = DEFAULT_SPACES["demo"]["OPTIONS"]


def test_a_few_joint_steps_reduce_the_contrastive_and_margin_losses():
    trainer = DemoTrainer(
        seed=0, n_images=128, n_audio=60, steps=12, lr=1e-3, device=torch.device("cpu")
    )
    losses = np.array([trainer.step(step) for step in range(12)])
    assert (losses[-3:, :2].mean(axis=0) < losses[0, :2] - 0.3).all(), losses
    assert losses[-3:, 2].mean() < losses[0, 2], losses


def test_augmentation_keeps_shapes_and_sizes():
    generator = torch.Generator().manual_seed(0)
    images = torch.zeros(4, 3, 64, 64)
    images[:, :, 20:44, 20:44] = 1.0
    out = augment_images(images, generator)
    assert out.shape == images.shape and torch.isfinite(out).all()
    # The square is centred, so turns and flips keep it in place and a shift moves it by at most 6 px.
    inside, corner = out[:, :, 26:38, 26:38].mean(dim=(1, 2, 3)), out[:, :, :10, :10].mean(dim=(1, 2, 3))
    assert (inside - corner > 0.4).all()
    mels = torch.zeros(3, 64, 101)
    assert augment_mels(mels, generator).shape == mels.shape


def test_multi_positive_loss_is_low_only_when_positives_win():
    positives = torch.tensor([[True, True, False], [False, False, True]])
    good = torch.tensor([[10.0, 10.0, -10.0], [-10.0, -10.0, 10.0]])
    assert multi_positive_loss(good, positives) < 0.8
    assert multi_positive_loss(-good, positives) > 10


def test_audio_tower_steps_against_a_frozen_text_tower_reduce_the_loss(demo_space):
    clips = list(synth.audio_samples(30, seed=123))
    mels, owner = audio_windows(((c.waveform, c.samplerate) for c in clips), DEMO_FRONTEND)
    text = torch.from_numpy(demo_space.encode_texts([c.caption for c in clips]))
    before = text.clone()
    torch.manual_seed(0)
    tower = AudioTower(TowerConfig(embed_dim=128, frontend=DEMO_FRONTEND))
    losses = train_tower(
        tower, torch.from_numpy(mels), owner, text, steps=20, batch_size=16, lr=2e-3, rng=np.random.default_rng(0)
    )
    assert np.mean(losses[-5:]) < losses[0] - 0.3, losses
    assert torch.equal(text, before)


def test_one_window_is_picked_from_each_requested_clip():
    owner = np.array([0, 0, 0, 1, 2, 2])
    rng = np.random.default_rng(0)
    for _ in range(20):
        picked = pick_one_window_per_clip(rng, np.array([0, 2]), owner)
        assert owner[picked].tolist() == [0, 2]


def test_train_audio_command_writes_a_tower_the_space_accepts(tmp_path):
    manifest = synth.write_dataset(tmp_path / "data", n_images=0, n_audio=6, n_texts=0, seed=5)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    with open(tmp_path / "data" / "pairs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "caption"])
        writer.writerows([row["path"], row["title"]] for row in rows)
    (tmp_path / "data" / "pairs.jsonl").write_text(
        "".join(json.dumps({"path": row["path"], "caption": row["title"]}) + "\n" for row in rows)
    )
    assert read_pairs(tmp_path / "data" / "pairs.csv") == read_pairs(tmp_path / "data" / "pairs.jsonl")
    assert read_pairs(tmp_path / "data" / "pairs.csv")[0] == (tmp_path / "data" / rows[0]["path"], rows[0]["title"])

    out = tmp_path / "tower.pt"
    train_audio_main(
        [
            "--model",
            "demo-clip",
            "--pretrained",
            DEMO["pretrained"],
            "--data",
            str(tmp_path / "data" / "pairs.csv"),
            "--out",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--window-seconds",
            "1.5",
            "--hop-seconds",
            "0.75",
        ]
    )
    assert load_tower(out).tower.config.frontend.window_seconds == 1.5
    space = OpenClipSpace("s", model="demo-clip", pretrained=DEMO["pretrained"], audio_tower=str(out))
    assert space.encode_audio([(np.zeros(16000, np.float32) + 0.1, 16000)]).shape == (1, 128)
