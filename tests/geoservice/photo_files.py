"""Real photos made by Pillow, with the EXIF a phone writes: orientation, GPS, the time and its zone."""

from __future__ import annotations

import io

from PIL import ExifTags, Image


def dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), (value - degrees - minutes / 60) * 3600


def photo(
    width: int = 40,
    height: int = 20,
    fmt: str = "JPEG",
    orientation: int | None = None,
    gps: tuple[float, float] | None = None,
    seed: int = 0,
    mode: str = "RGB",
) -> bytes:
    """A picture whose left half is red and right half blue (so a turn can be seen), with EXIF."""
    image = Image.new(mode, (width, height), (255, 0, 0, 255) if mode == "RGBA" else (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    image.putpixel((0, 0), (seed % 256, seed // 256 % 256, 7))  # different seeds, different bytes
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if gps is not None:
        lon, lat = gps
        exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: dms(lat), 3: "E", 4: dms(lon)}
        exif[ExifTags.IFD.Exif] = {0x9003: "2026:12:05 16:30:00", 0x9011: "+08:00"}
    out = io.BytesIO()
    image.save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG of random pixels: it does not compress, so its size follows ``side``."""
    import os

    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
