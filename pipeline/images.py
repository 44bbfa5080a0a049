"""Checks on uploaded photos before any work is planned: a clear refusal beats a crash three phases later.

Cheap on purpose: the header's size is checked before any pixel is decoded (a decompression bomb is refused
from its first bytes), and a large JPEG is decoded at 1/8 scale to prove it is whole. Every refusal says what
the file is and what to do, in words a user knows (docs/inputs.md).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pipeline.errors import InvalidInput

MIN_SIDE = 64
MAX_SIDE = 8192
MAX_PIXELS = 8192 * 6144  # 50 megapixels: a 3:4 photo at the side limit
MAX_BYTES = 40 * 1024 * 1024
MIB = 1024 * 1024
FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}  # MPO: a camera's JPEG with extra frames
ACCEPTED = "a JPEG, PNG or WebP photo"

# the first bytes of files people mistake for photos -> what the file is
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
_SIGNATURES = ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"))


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int


def inspect_image(data: bytes, what: str) -> ImageFacts:
    """Read a photo's header and decode it cheaply enough to trust it, or raise InvalidInput naming `what`
    (e.g. 'person photo'): empty, too large, not a photo (and what it is), damaged, too small."""
    action = f"upload the {what} again as {ACCEPTED}"
    if not data:
        raise InvalidInput(f"the {what} is an empty file", action)
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the {what} is {len(data) / MIB:.1f} MiB; the largest file accepted is "
                           f"{MAX_BYTES // MIB} MiB", _resize(what))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits come first
            with Image.open(io.BytesIO(data)) as image:
                facts = ImageFacts("JPEG" if image.format == "MPO" else image.format or "?", *image.size)
                _check_header(facts, what)
                if facts.format == "JPEG":  # every byte is still read; the pixels come out at 1/8 scale
                    image.draft(image.mode, (max(1, facts.width // 8), max(1, facts.height // 8)))
                image.load()  # a truncated or corrupt file fails here, not in a phase
    except InvalidInput:
        raise
    except UnidentifiedImageError as exc:  # no image format we know: say what the file is, if we can tell
        kind = non_image_kind(data)
        if kind is None:
            raise InvalidInput(*_unreadable(what, exc, data)) from exc
        raise InvalidInput(f"the {what} is not a readable image: it is {kind}, not {ACCEPTED}",
                           _convert_action(what, kind)) from exc
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"the {what} claims to be over {2 * (Image.MAX_IMAGE_PIXELS or 0) // 10**6} megapixels, "
                           "far beyond any photo (a damaged file, or one made to exhaust memory)",
                           _resize(what)) from exc
    except Exception as exc:  # noqa: BLE001 - any failure to decode means the file is not a usable photo
        raise InvalidInput(*_unreadable(what, exc, data)) from exc
    if min(facts.width, facts.height) < MIN_SIDE:
        raise InvalidInput(
            f"the {what} is {facts.width}x{facts.height}; it must be at least {MIN_SIDE} pixels on each side",
            f"upload a larger {what} (768x1024 or more works best)",
        )
    return facts


def _check_header(facts: ImageFacts, what: str) -> None:
    """Format, side and pixel limits, from the header alone (nothing decoded yet)."""
    if facts.format not in FORMATS:
        raise InvalidInput(f"the {what} is a {facts.format} image; only JPEG, PNG and WebP are accepted",
                           f"save the {what} as a JPEG or PNG and upload it again")
    resize = _resize(what)
    if max(facts.width, facts.height) > MAX_SIDE:
        raise InvalidInput(f"the {what} is {facts.width}x{facts.height}; the largest side allowed is {MAX_SIDE}",
                           resize)
    if facts.width * facts.height > MAX_PIXELS:
        raise InvalidInput(f"the {what} is {facts.width}x{facts.height} ({facts.width * facts.height / 1e6:.0f} "
                           f"megapixels); at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted", resize)


def _resize(what: str) -> str:
    return (f"resize the {what} to at most 2048 pixels on the long side (the most the pipeline works at) "
            "and upload it again")


def non_image_kind(data: bytes) -> str | None:
    """What a file that is no photo at all is ('an SVG drawing', 'a HEIC photo', 'a text file', ...), from its
    first bytes; None when it may be an image (then decoding decides)."""
    head = data[:4096]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "a HEIC photo (the iPhone's own format)"
        if brand in (b"avif", b"avis"):
            return "an AVIF image"
        return "a video or other media file"
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    text = _as_text(head)
    if text is None:
        return None
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
        return "an SVG drawing"
    if lowered.startswith(("<!doctype html", "<html")):
        return "a web page (HTML)"
    if lowered.startswith(("{", "[")):
        return "a JSON text file"
    return "a text file"


def _as_text(head: bytes) -> str | None:
    """The bytes as text when they read as UTF-8 (a cut-off last character allowed) with no control bytes."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            return None
        text = head[: exc.start].decode("utf-8")
    if not text or any(ord(c) < 32 and c not in "\t\r\n\f" for c in text):
        return None
    return text


def _convert_action(what: str, kind: str) -> str:
    if "HEIC" in kind:
        return (f"convert the {what} to JPEG (on an iPhone: Settings > Camera > Formats > Most Compatible, or "
                "share it as JPEG) and upload it again")
    if "image" in kind or "drawing" in kind:
        return f"export the {what} as a JPEG or PNG and upload it again"
    return f"upload the photo itself ({ACCEPTED}) as the {what}"


def _unreadable(what: str, exc: Exception, data: bytes) -> tuple[str, str]:
    """(reason, action) for a file that looks like an image but does not decode, without decoder jargon."""
    message = str(exc)
    fmt = _claimed_format(data)
    unreadable = f"the {what} is not a readable image"
    if "MAX_TEXT_CHUNK" in message:
        return (f"{unreadable}: the PNG carries more embedded text (metadata) than is safe to read",
                f"save the {what} again without its metadata (export it as a new PNG or JPEG) and upload it")
    if "truncated" in message or "broken data stream" in message:
        return (f"{unreadable}: the {fmt or 'image'} file ends early (the upload was cut short, or the file is "
                "damaged)", f"upload the complete {what} again")
    if fmt is not None:
        return (f"{unreadable}: the {fmt} file's picture data is damaged",
                f"open the {what} in an image editor, save it again as a JPEG or PNG, and upload it")
    return (f"{unreadable}: it is not {ACCEPTED}, or the file is damaged", f"upload the {what} again as {ACCEPTED}")


def _claimed_format(data: bytes) -> str | None:
    """'JPEG' / 'PNG' / 'WebP' from the signature, whatever the rest of the file holds."""
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None
