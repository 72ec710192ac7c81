"""PNG images for the signature tests: a drawn signature, blank pads, and things that are not one."""

import base64
from io import BytesIO

from PIL import Image, ImageDraw


def png(image: Image.Image, **options) -> bytes:
    out = BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()


def drawn(
    width: int = 600, height: int = 200, *, transparent: bool = False, seed: int = 0
) -> bytes:
    """A scrawl as a signature pad draws it: dark strokes on white (or on transparency)."""
    background = (0, 0, 0, 0) if transparent else (255, 255, 255, 255)
    image = Image.new("RGBA", (width, height), background)
    pen = ImageDraw.Draw(image)
    points = [
        (20 + i * (width - 40) // 12, height // 2 + ((i * 37 + seed * 11) % 60) - 30)
        for i in range(13)
    ]
    pen.line(points, fill=(20, 30, 60, 255), width=3)
    return png(image)


def blank(width: int = 600, height: int = 200, *, transparent: bool = False) -> bytes:
    return png(
        Image.new("RGBA", (width, height), (0, 0, 0, 0) if transparent else (255, 255, 255, 255))
    )


def noisy(width: int, height: int) -> bytes:
    """Incompressible pixels: a PNG far over the size limit at a modest size."""
    import os

    return png(Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)))


def jpeg() -> bytes:
    out = BytesIO()
    Image.new("RGB", (300, 100), "white").save(out, format="JPEG")
    return out.getvalue()


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()
