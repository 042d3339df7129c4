"""Image intake: every image is checked before it is stored, wherever it comes from.

Sources: a file inside an uploaded zip, a ``data:`` URI, or an http(s) URL fetched by a worker with
a size and time cap. Checks: byte size, real image format (not just the extension), pixel count
before decoding (decompression bombs), and a full decode (truncated files).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import urllib.request
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}


class ImageRejected(ValueError):
    pass


@dataclass(frozen=True)
class CheckedImage:
    content: bytes
    extension: str
    width: int
    height: int


def image_check(content: bytes, *, max_bytes: int | None = None, max_pixels: int | None = None) -> CheckedImage:
    max_bytes = max_bytes or settings.TRACELAB_MAX_IMAGE_BYTES
    max_pixels = max_pixels or settings.TRACELAB_MAX_IMAGE_PIXELS
    if len(content) > max_bytes:
        raise ImageRejected(f"image is too large: {len(content):,} bytes (limit {max_bytes:,})")
    if not content:
        raise ImageRejected("image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                fmt, (width, height) = image.format, image.size
                if fmt not in ALLOWED_FORMATS:
                    raise ImageRejected(f"unsupported image format {fmt}; expected PNG, JPEG, GIF, WebP or BMP")
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"image has too many pixels: {width}×{height} = {width * height:,} (limit {max_pixels:,})"
                    )
                image.load()
                content, fmt = _reencode(image, fmt)
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise ImageRejected("not an image (the content is not a recognised image format)") from None
        raise ImageRejected(f"image rejected as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"the image is damaged or truncated: {exc}") from None
    return CheckedImage(content, ALLOWED_FORMATS[fmt], width, height)


def _reencode(image: Image.Image, fmt: str) -> tuple[bytes, str]:
    """Store only decoded pixels: a polyglot's appended payload (HTML, PHP, a zip) never reaches storage."""
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=95)
        return out.getvalue(), "JPEG"
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        image = image.convert("RGBA")
    image.save(out, "PNG")
    return out.getvalue(), "PNG"


def image_from_data_uri(uri: str) -> CheckedImage:
    header, _, payload = uri.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise ImageRejected("a data URI image must look like data:image/<type>;base64,<payload>")
    max_bytes = settings.TRACELAB_MAX_IMAGE_BYTES
    if len(payload) * 3 // 4 > max_bytes:
        raise ImageRejected(f"image is too large: about {len(payload) * 3 // 4:,} bytes (limit {max_bytes:,})")
    try:
        content = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("the data URI is not valid base64") from None
    return image_check(content)


def image_fetch_url(url: str) -> CheckedImage:
    """Fetch an http(s) image with a time cap and a byte cap (never reading more than the cap)."""
    if not url.lower().startswith(("http://", "https://")):
        raise ImageRejected("only http(s) image URLs can be fetched")
    max_bytes = settings.TRACELAB_MAX_IMAGE_BYTES
    request = urllib.request.Request(url, headers={"User-Agent": "tracelab-image-fetch/1"})
    try:
        with urllib.request.urlopen(request, timeout=settings.TRACELAB_IMAGE_FETCH_TIMEOUT) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ImageRejected(f"image is too large: {int(declared):,} bytes (limit {max_bytes:,})")
            content = response.read(max_bytes + 1)
    except ImageRejected:
        raise
    except Exception as exc:  # network errors of every kind become one clear message
        raise ImageRejected(f"could not fetch {url}: {exc}") from None
    return image_check(content)


def image_store(*, project_id: int, image: CheckedImage) -> str:
    """Store content-addressed (the same image is stored once) and return the storage name."""
    digest = hashlib.sha256(image.content).hexdigest()
    name = f"projects/{project_id}/images/{digest[:2]}/{digest}.{image.extension}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(image.content))
    return name
