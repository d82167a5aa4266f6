import io

import pytest
from PIL import Image

from encoders.base import ImageDecodeError
from encoders.images import load_image


def png(size=(32, 16), mode="RGBA") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (255, 0, 0, 128)[: len(mode)]).save(buf, format="PNG")
    return buf.getvalue()


def test_loads_any_mode_as_rgb(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    for src in (png(), io.BytesIO(png()), tmp_path / "a.png"):
        image = load_image(src)
        assert image.mode == "RGB" and image.size == (32, 16)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "zero bytes"),
        (b"GIF89a not really", "corrupt|not an image"),
        (b"plain text, not an image", "not an image"),
        (png((200, 200), "RGB")[:60], "corrupt or truncated"),
    ],
    ids=["empty", "bad-gif", "text", "truncated-png"],
)
def test_bad_images_raise_image_decode_error(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        load_image(data)


def test_oversized_images_are_refused_before_decoding():
    with pytest.raises(ImageDecodeError, match="pixel limit"):
        load_image(png((100, 100)), max_pixels=5000)


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="not found"):
        load_image(tmp_path / "nope.png")
