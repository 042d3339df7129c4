"""Hostile images beyond tests/labeling/test_imports.py: giants declared in headers of every allowed format,
truncated JPEG and GIF, files whose extension lies, real polyglots, and the importer's memory while it
refuses them. Each is refused with a message naming the problem, and nothing is imported."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from labeling.models import Item
from tests.labeling.factories import jsonl, make_project, png_bytes, run_import

pytestmark = pytest.mark.django_db


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def giant_png(width: int, height: int) -> bytes:
    """A PNG header declaring width × height RGBA pixels, followed by a few bytes of compressed rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
            + _chunk(b"IEND", b""))


def giant_gif(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + descriptor + b"\x02\x02\x44\x01\x00" + b"\x3b"


def giant_jpeg(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 frame header is rewritten to declare width × height."""
    content = bytearray(png_bytes(size=(16, 16), fmt="JPEG"))
    sof = content.index(b"\xff\xc0")
    content[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(content)


def giant_bmp(width: int, height: int) -> bytes:
    content = bytearray(png_bytes(size=(4, 4), fmt="BMP"))
    content[18:26] = struct.pack("<ii", width, height)
    return bytes(content)


def zip_of(images: dict[str, bytes], rows: list[dict] | None = None) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        names = list(images)
        zf.writestr("items.jsonl", jsonl(rows or [{"external_id": f"x{k}", "image": name, "caption": "c"}
                                                   for k, name in enumerate(names)]))
        for name, content in images.items():
            zf.writestr(name, content)
    return archive.getvalue()


def high_water_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_high_water() -> bool:
    """Linux: writing 5 to clear_refs resets the peak-RSS mark of this process."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@pytest.mark.parametrize("make", [giant_png, giant_gif, giant_jpeg, giant_bmp], ids=["png", "gif", "jpeg", "bmp"])
def test_giants_declared_in_the_header_are_refused_without_allocating_their_pixels(make, settings):
    settings.TRACELAB_MAX_IMAGE_PIXELS = 4_000_000
    side = 60_000 if make is not giant_gif else 65_535
    content = make(side, side)
    assert len(content) < 10_000
    project = make_project(kind="image_caption")
    measured = reset_high_water()
    before = high_water_mb()
    job = run_import(project, zip_of({"giant.img": content}), "giants.zip")
    grown = high_water_mb() - before
    assert job.status == "failed"
    (error,) = job.errors
    assert error["field"] == "image"
    assert re.search(r"too many pixels|decompression bomb", error["message"]), error["message"]
    assert f"{side:,}" in error["message"] or "bomb" in error["message"]
    if measured:  # 60,000² RGBA would be 14 GB; the refusal must come before any of it is allocated
        assert grown < 64, f"peak RSS grew by {grown:.0f} MB while refusing a header-only giant"
    assert Item.objects.count() == 0


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP"])
def test_truncated_files_of_each_format_are_refused_as_damaged(fmt):
    whole = png_bytes(size=(256, 256), color=(10, 200, 30), fmt=fmt)
    project = make_project(kind="image_caption")
    job = run_import(project, zip_of({f"cut.{fmt.lower()}": whole[: len(whole) // 2]}), "cut.zip")
    assert job.status == "failed"
    message = job.errors[0]["message"]
    assert "damaged or truncated" in message or "not an image" in message, message
    assert Item.objects.count() == 0


def test_extensions_never_decide_the_format():
    project = make_project(kind="image_caption")
    jpeg = png_bytes(size=(8, 8), fmt="JPEG")
    job = run_import(project, zip_of({"photo.png": jpeg}), "ok.zip")
    assert job.status == "succeeded", job.errors
    assert Item.objects.get().image.name.endswith(".jpg")  # stored under its real format

    tiff = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tiff, "TIFF")
    lies = {"page.png": b"<html><script>alert(1)</script></html>", "doc.jpg": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
            "scan.png": tiff.getvalue(), "icon.gif": b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"}
    rows = [{"external_id": f"lie{k}", "image": name, "caption": "c"} for k, name in enumerate(lies)]
    job = run_import(project, zip_of(lies, rows), "lies.zip")
    assert job.status == "failed"
    messages = {e["line"]: e["message"] for e in job.errors}
    assert messages[1] == messages[2] == messages[4] == "not an image (the content is not a recognised image format)"
    assert messages[3] == "unsupported image format TIFF; expected PNG, JPEG, GIF, WebP or BMP"
    assert Item.objects.count() == 1


@pytest.mark.parametrize("payload", [b"<script>alert(document.cookie)</script>", b"PK\x03\x04polyglot-zip-member",
                                     b"<?php system($_GET['c']); ?>"], ids=["html", "zip", "php"])
def test_polyglots_never_reach_storage_with_their_payload(payload):
    """A valid PNG with another file appended decodes fine; what is stored (and later served) must not
    carry the appended file: it is either refused or stored without the trailing bytes."""
    project = make_project(kind="image_caption")
    job = run_import(project, zip_of({"poly.png": png_bytes(size=(8, 8)) + payload}), "poly.zip")
    if job.status == "failed":
        assert job.errors[0]["field"] == "image" and job.errors[0]["message"]
        return
    stored = default_storage.open(Item.objects.get().image.name).read()
    assert payload not in stored, "the appended payload was stored and will be served as an image"
