"""Turn an image field (bytes, file path, http(s) URL or data: URI) into a URL the chat API accepts."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from routing.judges.errors import JudgeInputError

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")


def sniff_image_type(data: bytes) -> str:
    """The MIME type of encoded image bytes, from their magic number."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise JudgeInputError("image bytes are not PNG, JPEG, GIF, WebP or BMP")


def to_data_url(data: bytes) -> str:
    """Encoded image bytes as a ``data:image/...;base64,`` URL."""
    return f"data:{sniff_image_type(data)};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL."""
    header, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not header.endswith(";base64"):
        raise JudgeInputError("expected a base64 data: URL")
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise JudgeInputError(f"bad base64 in data: URL: {exc}") from exc


def image_url(value: bytes | str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> str:
    """A URL for an image value: data: URIs and http(s) URLs pass through (the endpoint fetches the
    latter); bytes and files (relative paths resolved against ``root``) become data: URLs."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return to_data_url(bytes(value))
    text = os.fspath(value)
    if text.startswith("data:image/"):
        decode_data_url(text)  # fail here, with a clear message, rather than at the endpoint
        return text
    if text.startswith(("http://", "https://")):
        return text
    path = Path(text)
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JudgeInputError(f"cannot read image file {path}: {exc.strerror or exc}") from exc
    return to_data_url(data)


def looks_like_image(name: str, value: object) -> bool:
    """Whether an item field holds an image: bytes, a data:image URI, or an image-named field."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fspath(value)
    if text.startswith("data:image/"):
        return True
    key = name.lower()
    if key in ("image", "img", "picture", "photo", "image_url") or key.endswith(("_image", "_img")):
        return True
    return "\n" not in text and len(text) < 2048 and text.lower().endswith(IMAGE_SUFFIXES)
