"""The training code runs end to end on a tiny UTKFace-shaped zip and writes a model the service can load.

This is the smoke run: a few hundred crops of two real photos, one epoch, a narrow network. It proves the data
path (zip -> detector -> crop cache -> training -> calibration -> model.h5 + metrics), not accuracy.
"""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from predictions.ml.classifier import GenderClassifier
from predictions.ml.dataset import is_test, is_validation, utkface_records
from predictions.ml.training import TrainingOptions, fit_temperature, train
from tests.samples import encode, photo


def make_fake_utkface(path, count=160):
    """A zip laid out like UTKFace: 200 px chips named age_gender_race_date.jpg.chip.jpg."""
    sources = {1: photo("astronaut.png").crop((130, 40, 330, 240)),  # female
               0: photo("camera.png").crop((120, 80, 320, 280))}     # male
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            gender = i % 2
            dx, dy = rng.integers(-6, 7, 2)
            chip = sources[gender].transform((200, 200), Image.AFFINE, (1, 0, dx, 0, 1, dy))
            name = f"UTKFace/{20 + i % 50}_{gender}_{i % 5}_2017010{i:05d}.jpg.chip.jpg"
            archive.writestr(name, encode(chip, "JPEG", quality=85))
        archive.writestr("UTKFace/broken_name.jpg.chip.jpg", b"")  # ignored: no labels in the name


def test_records_parse_labels_and_skip_malformed_names(tmp_path):
    make_fake_utkface(tmp_path / "faces.zip", count=10)
    records = utkface_records(str(tmp_path / "faces.zip"))
    assert len(records) == 10
    assert {r.gender for r in records} == {0, 1} and records[0].age >= 20


def test_the_split_rule_is_the_shared_one():
    # sha1("1_0_0_20161219140623097.jpg.chip.jpg")[0] decides; the rule must give about 10% test
    names = [f"{i}_0_0_x.jpg.chip.jpg" for i in range(5000)]
    share = np.mean([is_test(n) for n in names])
    assert 0.08 < share < 0.12
    assert not all(is_test(n) == is_validation(n) for n in names[:200])


def test_temperature_fitting_undoes_overconfidence():
    rng = np.random.default_rng(1)
    calibrated = rng.normal(0.0, 2.0, 20000)  # true logits: labels drawn with P = sigmoid(logit)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-calibrated))).astype(float)
    assert fit_temperature(calibrated * 3, labels) == pytest.approx(3, rel=0.15)


def test_a_tiny_training_run_writes_a_loadable_calibrated_model(tmp_path):
    make_fake_utkface(tmp_path / "faces.zip")
    output = tmp_path / "model.h5"
    lines = []
    report = train(TrainingOptions(
        data=str(tmp_path / "faces.zip"), output=str(output), cache_dir=str(tmp_path / "cache"),
        input_size=32, jitter=4, epochs=1, batch_size=32, width=0.25, workers=1, log=lines.append))
    classifier = GenderClassifier.load(str(output))
    assert classifier.config.input_size == 32
    assert classifier.config.temperature == pytest.approx(report["temperature"], abs=1e-4)
    assert classifier.version.startswith("sha256:")
    p = classifier.predict(np.zeros((3, 32, 32, 3), dtype=np.uint8))
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))
    metrics = json.loads((tmp_path / "model.metrics.json").read_text())
    assert metrics["training"]["epochs"] == 1 and metrics["training"]["train_images"] > 100
    assert any(line.startswith("epoch 1/1") for line in lines)
