"""predictions.ml.images: every upload either becomes an upright RGB image or is refused with the right status."""
import numpy as np
import pytest
from PIL import Image

from predictions.ml.errors import ImageTooLarge, InvalidImage, UnsupportedImageFormat
from predictions.ml.images import decode_image
from tests.samples import astronaut_jpeg, encode, photo, png_claiming_size, with_exif_orientation


def test_it_decodes_a_jpeg_to_rgb_at_its_size():
    image = decode_image(astronaut_jpeg())
    assert image.mode == "RGB" and image.size == (512, 512)


@pytest.mark.parametrize("data, error", [
    (b"", InvalidImage),
    (b"this is not an image at all" * 10, InvalidImage),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, UnsupportedImageFormat),
])
def test_it_refuses_non_images_with_a_clear_error(data, error):
    with pytest.raises(error) as caught:
        decode_image(data)
    assert str(caught.value)


def test_it_refuses_a_truncated_jpeg_as_invalid():
    data = astronaut_jpeg()
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])


def test_it_refuses_a_decompression_bomb_before_decoding_it():
    bomb = png_claiming_size(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(bomb, max_pixels=40_000_000)
    assert caught.value.status == 413


def test_it_refuses_formats_it_does_not_serve_with_415():
    with pytest.raises(UnsupportedImageFormat) as caught:
        decode_image(encode(photo("astronaut.png").resize((64, 64)), "ICO"))
    assert caught.value.status == 415


@pytest.mark.parametrize("orientation, turned", [(6, True), (8, True), (3, False)])
def test_it_applies_the_exif_orientation(orientation, turned):
    upright = photo("astronaut.png").crop((0, 0, 512, 300))  # wider than tall
    image = decode_image(with_exif_orientation(upright, orientation))
    assert image.size == (512, 300)
    # the top-left corner matches the upright photo, not the stored (rotated) pixels
    diff = np.abs(np.asarray(image, dtype=int)[:40, :40] - np.asarray(upright, dtype=int)[:40, :40]).mean()
    assert diff < 12


def test_it_scales_16_bit_grayscale_instead_of_clipping_it_to_white():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    image = decode_image(encode(Image.fromarray(ramp), "PNG"))
    values = np.asarray(image)[:, :, 0]
    assert values.min() < 10 and values.max() > 245 and 100 < values.mean() < 155


def test_it_puts_transparent_palette_pixels_on_white():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 4, 8))
    image = decode_image(encode(palette, "PNG", transparency=0))
    assert image.getpixel((6, 4)) == (255, 255, 255)
    assert image.getpixel((1, 4)) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "LA"])
def test_it_converts_other_modes_to_rgb(mode):
    source = photo("astronaut.png").resize((32, 32)).convert(mode)
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    image = decode_image(encode(source, fmt))
    assert image.mode == "RGB" and image.size == (32, 32)


def test_it_reads_the_first_frame_of_an_animated_gif():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    image = decode_image(data)
    red, green, blue = image.getpixel((8, 8))
    assert red > 200 and blue < 50


def test_it_decodes_webp():
    image = decode_image(encode(photo("astronaut.png"), "WEBP"))
    assert image.size == (512, 512)


def test_a_large_jpeg_can_be_decoded_reduced_keeping_its_displayed_size():
    from predictions.ml.images import decode_for_analysis

    data = encode(Image.new("RGB", (4000, 3000), (90, 120, 150)), "JPEG")
    decoded = decode_for_analysis(data, work_side=1600)
    assert decoded.image.size == (2000, 1500) and decoded.displayed_size == (4000, 3000)
    assert decoded.scale == (2.0, 2.0)
    assert decode_for_analysis(data).image.size == (4000, 3000)  # no work_side: every pixel
    png = decode_for_analysis(encode(Image.new("RGB", (4000, 3000)), "PNG"), work_side=1600)
    assert png.image.size == (4000, 3000)  # only JPEG decoders can reduce while decoding


def test_a_reduced_exif_turned_jpeg_reports_the_displayed_orientation():
    from predictions.ml.images import decode_for_analysis

    data = with_exif_orientation(Image.new("RGB", (4000, 3000), (90, 120, 150)), 6)  # stored as 3000 x 4000
    decoded = decode_for_analysis(data, work_side=1600)
    assert decoded.image.size == (2000, 1500) and decoded.displayed_size == (4000, 3000)


def test_a_48_megapixel_phone_jpeg_passes_the_pixel_limit_because_it_is_decoded_reduced():
    from predictions.ml.images import decode_for_analysis

    data = encode(Image.new("RGB", (8000, 6000), (90, 120, 150)), "JPEG")  # 48 MP, over the 40 MP default
    decoded = decode_for_analysis(data, work_side=1600)  # what the pipeline does: decoded at 1/4
    assert decoded.image.size == (2000, 1500) and decoded.displayed_size == (8000, 6000)
    with pytest.raises(ImageTooLarge, match="8000x6000"):
        decode_image(data)  # every pixel: 48 MP, refused
