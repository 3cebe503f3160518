"""One uploaded photo, checked and prepared from its bytes (Pillow), before anything is stored.

The type is what the bytes are, not what the client says: JPEG, PNG or WebP, else a 415. A file
over the size limit, or a picture over the pixel limit (a decompression bomb), is a 413. The
photo is turned upright by its EXIF orientation (``ImageOps.exif_transpose``) for display and the
thumbnail; both are written without metadata, so the worker's position in the EXIF is not handed
to every viewer: the position is read here and kept in the database instead.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from datetime import datetime

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from geoservice.errors import InvalidInput
from geoservice.media.settings import MediaSettings

FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
ORIENTATION = 0x0112
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
# What Pillow raises on bytes that begin like a picture and are not one (truncated, corrupt, a bomb).
UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class PhotoTooLarge(InvalidInput):
    """The file or the picture is larger than the settings allow (a 413)."""

    title = "Photo too large"


class NotAPhoto(InvalidInput):
    """The bytes are not a JPEG, PNG or WebP picture that can be read whole (a 415)."""

    title = "Not a photo"


@dataclass(frozen=True)
class PreparedPhoto:
    """What is stored of one upload: the original, the upright display copy, the thumbnail, the EXIF facts."""

    sha256: str
    format: str
    original: bytes
    display: bytes
    thumb: bytes
    width: int
    height: int
    exif_orientation: int | None
    gps: tuple[float, float] | None  # (lon, lat) as the phone's receiver gave it: WGS84
    taken_at: datetime | None

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0]

    @property
    def extension(self) -> str:
        return FORMATS[self.format][1]


def prepare_photo(data: bytes, settings: MediaSettings) -> PreparedPhoto:
    """Check ``data`` and make the display copy and thumbnail; raises ``PhotoTooLarge`` or ``NotAPhoto``."""
    if len(data) > settings.photo_max_bytes:
        raise PhotoTooLarge(f"the photo is {len(data)} bytes; at most {settings.photo_max_bytes} are accepted")
    if not data:
        raise NotAPhoto("the photo file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError as exc:
        raise NotAPhoto("the file is not a JPEG, PNG or WebP picture (judged from its bytes)") from exc
    except UNREADABLE as exc:  # a header that starts right and breaks off
        raise NotAPhoto(f"the picture cannot be read: {exc}") from exc
    if image.width * image.height > settings.photo_max_pixels:
        raise PhotoTooLarge(
            f"the picture is {image.width}×{image.height} pixels; at most {settings.photo_max_pixels} are accepted"
        )
    try:
        image.load()
        exif = image.getexif()
        orientation = exif.get(ORIENTATION)
        upright = ImageOps.exif_transpose(image)
    except UNREADABLE as exc:
        raise NotAPhoto(f"the {image.format} picture cannot be read whole: {exc}") from exc
    return PreparedPhoto(
        sha256=hashlib.sha256(data).hexdigest(),
        format=str(image.format),
        original=data,
        display=_encode(upright, str(image.format)),
        thumb=_thumbnail(upright, settings.photo_thumb_px),
        width=upright.width,
        height=upright.height,
        exif_orientation=int(orientation) if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        gps=exif_gps(exif),
        taken_at=_taken_at(exif),
    )


def _encode(image: Image.Image, fmt: str) -> bytes:
    """The picture in its own format without metadata (no EXIF, so no position)."""
    out = io.BytesIO()
    if fmt == "JPEG":
        _rgb(image).save(out, "JPEG", quality=90)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=90)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _thumbnail(image: Image.Image, size: int) -> bytes:
    small = _rgb(image)
    small.thumbnail((size, size))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()


def _rgb(image: Image.Image) -> Image.Image:
    """JPEG holds no transparency: a transparent picture is laid on white."""
    if image.mode in ("RGB", "L"):
        return image.copy()
    if "A" in image.getbands() or image.mode == "P":
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def exif_gps(exif: Image.Exif) -> tuple[float, float] | None:
    """(lon, lat) from the EXIF GPS block, or None when it is missing or not a position on Earth."""
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    try:
        lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"), "S")
        lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    if lon == 0 and lat == 0:
        return None  # what a phone writes when it had no fix
    return lon, lat


def _degrees(value: object, ref: object, negative: str) -> float:
    parts = [float(v) for v in value] if isinstance(value, (tuple, list)) else [float(value)]  # type: ignore[arg-type]
    parts += [0.0] * (3 - len(parts))
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    ref_text = ref.decode() if isinstance(ref, bytes) else str(ref)
    return -degrees if ref_text.strip().upper() == negative else degrees


def _taken_at(exif: Image.Exif) -> datetime | None:
    """When it was taken, only if the camera said in which zone (EXIF 2.31 OffsetTimeOriginal)."""
    details = exif.get_ifd(ExifTags.IFD.Exif)
    moment, offset = details.get(DATETIME_ORIGINAL), details.get(OFFSET_TIME_ORIGINAL)
    if not isinstance(moment, str) or not isinstance(offset, str):
        return None
    try:
        return datetime.strptime(f"{moment.strip()}{offset.strip()}", "%Y:%m:%d %H:%M:%S%z")
    except ValueError:
        return None
