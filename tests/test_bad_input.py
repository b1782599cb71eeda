"""POST /predict/ with every kind of awkward upload, through the real pipeline (decoder, detector, crops, one forward
pass) over a stand-in model: never a 500, always a JSON answer, and one quota unit spent only for an analysis.

Only statuses, shapes and accounting are asserted, never a predicted gender (see ``stand_in_model``).
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from predictions import runtime
from quotas.ledger import QuotaLedger

from .samples import astronaut_jpeg, encode, photo, photo_bytes, png_claiming_size, with_exif_orientation

pytestmark = pytest.mark.real_pipeline

HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


@pytest.fixture
def served(stand_in_pipeline, monkeypatch, settings):
    """The view gets the stand-in pipeline, with MAX_FACES and MAX_IMAGE_PIXELS read from the settings per call."""
    def get_pipeline():
        stand_in_pipeline.max_faces = settings.MAX_FACES
        stand_in_pipeline.max_pixels = settings.MAX_IMAGE_PIXELS
        return stand_in_pipeline

    monkeypatch.setattr(runtime, "get_pipeline", get_pipeline)
    return stand_in_pipeline


def post(client, auth, data: bytes, name: str = "photo.jpg", field: str = "file"):
    return client.post("/predict/", {field: SimpleUploadedFile(name, data, "image/jpeg")}, **auth)


def used(user) -> int:
    return QuotaLedger().usage(user).used


def assert_refused(response, status: int, user):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    assert used(user) == 0, "a refused upload must not cost a quota unit"


def assert_analysed(response, user) -> dict:
    assert response.status_code == 200, response.content
    body = response.json()
    width, height = body["image"]["width"], body["image"]["height"]
    assert body["faces"] and body["faces_detected"] >= len(body["faces"])
    for face in body["faces"]:
        box = face["box"]
        assert face["gender"] in ("male", "female")
        assert 0 <= box["x"] and box["x"] + box["width"] <= width
        assert 0 <= box["y"] and box["y"] + box["height"] <= height
    assert used(user) == 1 and body["quota"]["used"] == 1
    return body


# --- builders ----------------------------------------------------------------------------------------

def animated_gif() -> bytes:
    frames = [photo("astronaut.png"), Image.new("RGB", (512, 512), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def png_16_bit() -> bytes:
    gray = np.asarray(photo("astronaut.png").convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(gray)
    assert image.mode.startswith("I;16")
    return encode(image, "PNG")


def palette_png_with_transparency() -> bytes:
    image = photo("astronaut.png").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(image, "PNG", transparency=0)


def cmyk_jpeg() -> bytes:
    data = encode(photo("astronaut.png").convert("CMYK"), "JPEG", quality=90)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    return data


def truncated_jpeg() -> bytes:
    data = astronaut_jpeg()
    return data[: len(data) // 2]


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header claims ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


ANALYSED = {
    "animated-gif": animated_gif,
    "cmyk-jpeg": cmyk_jpeg,
    "png-16-bit": png_16_bit,
    "palette-png-with-transparency": palette_png_with_transparency,
    "grayscale": lambda: photo_bytes("camera.png"),
    "webp": lambda: encode(photo("astronaut.png"), "WEBP"),
    "tiff": lambda: encode(photo("astronaut.png"), "TIFF"),
    "bmp": lambda: encode(photo("astronaut.png"), "BMP"),
    "png-named-jpg": lambda: photo_bytes("astronaut.png"),
}

REFUSED = {
    "empty-file": (lambda: b"", 400),
    "non-image-named-jpg": (lambda: b"<html><body>not a photo</body></html>\n" * 20, 400),
    "truncated-jpeg": (truncated_jpeg, 400),
    "pdf": (lambda: encode(photo("astronaut.png"), "PDF"), 400),
    "bomb-png-50000x50000": (lambda: png_claiming_size(50_000, 50_000), 413),
    "bomb-jpeg-65500x65500": (lambda: jpeg_claiming_size(65_500, 65_500), 413),
    "heic": (lambda: HEIC, 415),
    "ico": (
        lambda: encode(photo("astronaut.png").resize((64, 64)), "ICO"), 415),
    "tiny-1x1": (lambda: encode(Image.new("RGB", (1, 1)), "PNG"), 422),
    "tiny-8x8-jpeg": (lambda: encode(Image.new("RGB", (8, 8), (200, 150, 120)), "JPEG"), 422),
    "cat-no-face": (lambda: photo_bytes("chelsea.png"), 422),
    "strip-12x1000": (lambda: encode(Image.new("L", (12, 1000)), "PNG"), 400),
}


@pytest.mark.parametrize("make", ANALYSED.values(), ids=ANALYSED.keys())
def test_it_analyses_every_image_kind_it_accepts_and_charges_one_unit(client, pinpin, pinpin_auth, served, make):
    assert_analysed(post(client, pinpin_auth, make()), pinpin)


@pytest.mark.parametrize("make, status", REFUSED.values(), ids=REFUSED.keys())
def test_it_refuses_bad_uploads_with_json_and_refunds_the_unit(client, pinpin, pinpin_auth, served, make, status):
    assert_refused(post(client, pinpin_auth, make()), status, pinpin)


def test_it_refuses_a_post_without_a_file_field(client, pinpin, pinpin_auth, served):
    response = client.post("/predict/", {"comment": "no file here"}, **pinpin_auth)
    assert_refused(response, 400, pinpin)
    assert '"file"' in response.json()["error"]


def test_it_refuses_a_photo_sent_under_another_field_name(client, pinpin, pinpin_auth, served):
    response = post(client, pinpin_auth, astronaut_jpeg(), field="image")
    assert_refused(response, 400, pinpin)
    assert '"file"' in response.json()["error"]


def test_it_refuses_an_upload_over_the_size_limit_with_413_before_the_pipeline(
        client, pinpin, pinpin_auth, served, settings, monkeypatch):
    settings.MAX_UPLOAD_BYTES = 20_000
    data = astronaut_jpeg()
    assert len(data) > settings.MAX_UPLOAD_BYTES
    monkeypatch.setattr(served, "analyse", lambda data: pytest.fail("the pipeline ran"))
    assert_refused(post(client, pinpin_auth, data), 413, pinpin)


def test_a_phone_photo_turned_by_exif_is_analysed_with_its_box_in_the_displayed_orientation(
        client, pinpin, pinpin_auth, served, settings):
    settings.QUOTA_DAILY_LIMIT = 5
    upright = photo("astronaut.png").crop((0, 0, 512, 400))  # landscape as displayed
    turned = assert_analysed(post(client, pinpin_auth, with_exif_orientation(upright, 6)), pinpin)
    assert turned["image"] == {"width": 512, "height": 400}  # not the stored 400x512
    reference = post(client, pinpin_auth, encode(upright, "JPEG", quality=90)).json()
    for key in ("x", "y", "width", "height"):
        assert abs(turned["faces"][0]["box"][key] - reference["faces"][0]["box"][key]) <= 6


def test_faces_beyond_max_faces_are_counted_but_not_classified(client, pinpin, pinpin_auth, served, settings):
    settings.MAX_FACES = 2
    canvas = Image.new("RGB", (1536, 512))
    for i in range(3):
        canvas.paste(photo("astronaut.png"), (i * 512, 0))
    body = assert_analysed(post(client, pinpin_auth, encode(canvas, "JPEG", quality=90)), pinpin)
    assert body["faces_detected"] == 3 and len(body["faces"]) == 2


def test_a_face_cut_by_the_border_gets_a_box_clipped_to_the_image(client, pinpin, pinpin_auth, served):
    cut = photo("astronaut.png").crop((200, 60, 420, 300))  # the left part of the face is outside
    body = assert_analysed(post(client, pinpin_auth, encode(cut, "PNG")), pinpin)
    assert body["image"] == {"width": 220, "height": 240}
    assert body["faces"][0]["box"]["x"] == 0  # assert_analysed checked the rest lies inside


def test_the_detector_never_crops_tiles_beyond_the_image(stand_in_pipeline, monkeypatch):
    """The detector's tiled second pass crops only inside the photo. Tiles once had a side of half the long side,
    reaching past the short side of a long strip, so PIL allocated the whole square: a 1x40,000,000 PNG (40 KB,
    within MAX_IMAGE_PIXELS) got the process OOM-killed."""
    crops = []
    original = Image.Image.crop

    def recording_crop(self, box=None):
        crops.append((self.size, box))
        return original(self, box)

    monkeypatch.setattr(Image.Image, "crop", recording_crop)
    stand_in_pipeline.detector.detect(Image.new("RGB", (1000, 100)))  # no face: the tiled pass runs
    assert crops, "expected the tiled second pass to run on a faceless strip"
    assert [(size, box) for size, box in crops if box[2] > size[0] or box[3] > size[1]] == []
