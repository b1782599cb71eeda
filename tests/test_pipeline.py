"""The real pipeline with the committed model.h5, on photos that always exist (scikit-image's wheel)."""
import numpy as np
import pytest
from PIL import Image

from django.conf import settings

from predictions.ml.errors import NoFaceFound
from predictions.ml.pipeline import GenderPipeline
from tests.samples import encode, photo, photo_bytes

pytestmark = pytest.mark.real_pipeline


@pytest.fixture(scope="module")
def pipeline():
    return GenderPipeline.load(str(settings.MODEL_PATH), max_faces=3)


def test_an_analysis_reports_one_face_with_consistent_probabilities_box_and_version(pipeline):
    body = pipeline.analyse(photo_bytes("astronaut.png")).to_dict()
    assert body["faces_detected"] == 1 and len(body["faces"]) == 1
    face = body["faces"][0]
    assert body["gender"] == face["gender"] and body["confidence"] == face["confidence"]
    assert face["gender"] == max(face["probabilities"], key=face["probabilities"].get)
    assert face["low_confidence"] == (face["confidence"] < pipeline.classifier.config.low_confidence_below)
    assert 170 < face["box"]["x"] < 190 and 70 < face["box"]["width"] < 120
    assert face["probabilities"]["female"] + face["probabilities"]["male"] == pytest.approx(1, abs=1e-3)
    assert face["confidence"] == max(face["probabilities"].values())
    assert body["image"] == {"width": 512, "height": 512}
    assert body["model_version"].startswith("sha256:") and len(body["model_version"]) == 19
    assert set(body["timings_ms"]) == {"decode", "detect", "classify", "total"}


def test_the_committed_model_sees_a_man_in_the_cameraman_photo(pipeline):
    assert pipeline.analyse(photo_bytes("camera.png")).gender == "male"


def test_a_cat_has_no_face_and_is_refused_with_422(pipeline):
    with pytest.raises(NoFaceFound) as caught:
        pipeline.analyse(photo_bytes("chelsea.png"))
    assert caught.value.status == 422


def test_faces_beyond_the_cap_are_counted_but_not_classified(pipeline):
    canvas = Image.new("RGB", (2048, 512))
    for i in range(4):
        canvas.paste(photo("astronaut.png"), (i * 512, 0))
    body = pipeline.analyse(encode(canvas, "JPEG")).to_dict()
    assert body["faces_detected"] == 4 and len(body["faces"]) == 3


def test_a_face_cut_by_the_border_gets_a_box_clipped_to_the_image(pipeline):
    cut = photo("astronaut.png").crop((200, 60, 420, 300))  # the left part of the face is outside
    body = pipeline.analyse(encode(cut, "PNG")).to_dict()
    box = body["faces"][0]["box"]
    assert box["x"] == 0 and box["x"] + box["width"] <= 220 and box["y"] + box["height"] <= 240


def test_the_box_is_in_the_orientation_a_person_sees(pipeline):
    from tests.samples import with_exif_orientation

    upright = pipeline.analyse(photo_bytes("astronaut.png")).to_dict()["faces"][0]["box"]
    turned = pipeline.analyse(with_exif_orientation(photo("astronaut.png"), 6)).to_dict()["faces"][0]["box"]
    for key in ("x", "y", "width"):
        assert abs(turned[key] - upright[key]) <= 6


def test_all_faces_of_a_photo_go_through_one_forward_pass(pipeline, monkeypatch):
    calls = []
    original = pipeline.classifier.predict
    monkeypatch.setattr(pipeline.classifier, "predict", lambda crops: calls.append(len(crops)) or original(crops))
    canvas = Image.new("RGB", (1024, 512))
    canvas.paste(photo("astronaut.png"), (0, 0))
    canvas.paste(photo("astronaut.png"), (512, 0))
    pipeline.analyse(encode(canvas, "PNG"))
    assert calls == [2]


def test_the_classifier_is_deterministic_for_the_same_input(pipeline):
    crops = np.random.default_rng(3).integers(0, 255, (2, pipeline.classifier.config.input_size,
                                                       pipeline.classifier.config.input_size, 3), dtype=np.uint8)
    assert np.array_equal(pipeline.classifier.predict(crops), pipeline.classifier.predict(crops))


@pytest.fixture(scope="module")
def shared():
    from tests.samples import shared_data

    path = shared_data()
    if path is None:
        pytest.skip("../shared/data is absent (a user's fresh clone): the regression sample needs UTKFace")
    return path


def test_the_committed_model_keeps_its_accuracy_on_a_fixed_sample_of_the_test_split(pipeline, shared):
    """Every 5th image of the UTKFace TEST split (~500), cut as in training: at least 90% (92.8% measured on
    the whole split when this model was committed; the 90% bar leaves room for the sample's noise)."""
    import zipfile

    from predictions.ml.dataset import chip_crop, is_test, utkface_records

    records = [r for r in utkface_records(str(shared / "utkface" / "UTKFace.zip")) if is_test(r.basename)][::5]
    config = pipeline.classifier.config
    with zipfile.ZipFile(shared / "utkface" / "UTKFace.zip") as archive:
        crops = np.stack([chip_crop(archive.read(r.member), pipeline.detector, config.input_size, config.margin)[0]
                          for r in records])
    p_female = pipeline.classifier.predict(crops)
    accuracy = np.mean((p_female >= 0.5) == np.array([r.gender == 1 for r in records]))
    assert len(records) > 450
    assert accuracy >= 0.90, f"accuracy {accuracy:.3f} on {len(records)} test images"


def test_a_large_jpeg_is_analysed_reduced_with_its_box_in_full_size_pixels(pipeline):
    from predictions.ml.images import decode_image

    data = encode(photo("camera.png").resize((4096, 4096), Image.LANCZOS), "JPEG", quality=90)
    body = pipeline.analyse(data).to_dict()  # decoded at 2048 x 2048 by the JPEG decoder
    reference = pipeline.analyse_image(decode_image(data)).to_dict()  # every pixel decoded
    assert body["image"] == reference["image"] == {"width": 4096, "height": 4096}
    for key in ("x", "y", "width", "height"):
        assert abs(body["faces"][0]["box"][key] - reference["faces"][0]["box"][key]) <= 16
    assert body["gender"] == reference["gender"] == "male"
    assert body["confidence"] == pytest.approx(reference["confidence"], abs=0.05)


THREADS_PROBE = """
import numpy as np, tensorflow as tf
from predictions.ml.classifier import set_tensorflow_threads
assert set_tensorflow_threads(1)
print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
tf.constant(np.ones(3)) + 1  # the runtime starts: its pools are fixed from now on
print(set_tensorflow_threads(2), tf.config.threading.get_intra_op_parallelism_threads())
"""


def test_tensorflow_threads_are_set_before_the_runtime_starts_and_left_alone_after():
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", THREADS_PROBE], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["1 1", "False 1"]
