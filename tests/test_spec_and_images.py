"""job.json parsing and photo checks: good input passes, bad input fails with a reason and an action."""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from fakes import photo
from pipeline.errors import InvalidInput
from pipeline.images import MIN_SIDE, ImageFacts, inspect_image
from pipeline.spec import JobSpec, parse_job_spec

FULL_SPEC = {
    "schema_version": 1,
    "person": {"height_cm": 172.5},
    "garment": {
        "category": "upper",
        "size": "M",
        "size_chart": [{"label": "M", "chest_cm": 100, "waist_cm": 88, "length_cm": 70}],
        "stretch": 0.2,
        "thickness_mm": 1.5,
    },
    "subscribers": [{"url": "https://example.com/hooks/tryon"}],
    "profile": "cpu",
}


def refused(exc: pytest.ExceptionInfo[InvalidInput]) -> InvalidInput:
    error = exc.value
    assert error.reason and error.user_action
    assert str(error) == error.reason
    return error


# ---- job.json --------------------------------------------------------------------------------------


def test_empty_object_is_the_default_spec() -> None:
    assert parse_job_spec(b"{}") == JobSpec()


def test_full_spec_is_parsed() -> None:
    spec = parse_job_spec(json.dumps(FULL_SPEC).encode())
    assert spec.person.height_cm == 172.5
    assert spec.garment.category == "upper" and spec.garment.size == "M"
    assert spec.garment.size_chart[0].label == "M" and spec.garment.size_chart[0].chest_cm == 100
    assert spec.garment.stretch == 0.2 and spec.garment.thickness_mm == 1.5
    assert [s.url for s in spec.subscribers] == ["https://example.com/hooks/tryon"]
    assert spec.profile == "cpu"
    assert parse_job_spec(spec.model_dump_json().encode()) == spec


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe{}", b'{"person": {}'], ids=repr)
def test_non_json_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_job_spec(data)
    assert "not valid JSON" in refused(exc).reason


@pytest.mark.parametrize("data", [b"[]", b"null", b'"person"', b"42"])
def test_non_object_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_job_spec(data)
    assert "JSON object" in refused(exc).reason


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"persn": {"height_cm": 170}}, "persn"),
        ({"person": {"heigth_cm": 170}}, "person.heigth_cm"),
        ({"garment": {"categroy": "upper"}}, "garment.categroy"),
        ({"garment": {"size_chart": [{"label": "M", "chset_cm": 90}]}}, "garment.size_chart.0.chset_cm"),
    ],
)
def test_misspelt_field_is_refused_by_name(spec: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_job_spec(json.dumps(spec).encode())
    error = refused(exc)
    assert field in error.reason
    assert "job.json" in error.user_action


@pytest.mark.parametrize("height", [50, 99.9, 230.1, 400, -170])
def test_out_of_range_height_is_refused(height: float) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_job_spec(json.dumps({"person": {"height_cm": height}}).encode())
    assert "person.height_cm" in refused(exc).reason


@pytest.mark.parametrize("height", [100, 230])
def test_height_bounds_are_inclusive(height: float) -> None:
    assert parse_job_spec(json.dumps({"person": {"height_cm": height}}).encode()).person.height_cm == height


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"garment": {"category": "shoes"}}, "garment.category"),
        ({"garment": {"stretch": 1.5}}, "garment.stretch"),
        ({"profile": "tpu"}, "profile"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_other_invalid_values_are_refused_by_name(spec: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_job_spec(json.dumps(spec).encode())
    assert field in refused(exc).reason


# ---- photos ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "expected"), [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP")])
def test_accepted_formats(fmt: str, expected: str) -> None:
    assert inspect_image(photo((200, 40, 40), (96, 128), fmt), "person photo") == ImageFacts(
        expected, 96, 128
    )


def test_smallest_accepted_size() -> None:
    assert inspect_image(photo((10, 20, 30), (MIN_SIDE, MIN_SIDE)), "person photo").width == MIN_SIDE


def noisy_jpeg(size: tuple[int, int] = (256, 256)) -> bytes:
    pixels = random.Random(0).randbytes(size[0] * size[1] * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 128), (0, 128, 0)).save(buf, format="GIF")
    return buf.getvalue()


BAD_PHOTOS = {
    "empty": (lambda: b"", "empty"),
    "random bytes": (lambda: random.Random(1).randbytes(4096), "not a readable image"),
    "truncated JPEG": (lambda: (d := noisy_jpeg())[: len(d) // 2], "not a readable image"),
    "GIF": (gif, "GIF"),
    "32x32": (lambda: photo((200, 40, 40), (32, 32)), "32x32"),
    "too narrow": (lambda: photo((200, 40, 40), (MIN_SIDE - 1, 512)), f"{MIN_SIDE - 1}x512"),
}


@pytest.mark.parametrize("case", BAD_PHOTOS.values(), ids=BAD_PHOTOS.keys())
def test_bad_photos_are_refused_naming_what(case) -> None:
    make, says = case
    what = "garment photo red dress.jpg"
    with pytest.raises(InvalidInput) as exc:
        inspect_image(make(), what)
    error = refused(exc)
    assert what in error.reason
    assert says in error.reason
    assert what in error.user_action


def test_a_whole_noisy_jpeg_is_accepted() -> None:
    assert inspect_image(noisy_jpeg(), "person photo") == ImageFacts("JPEG", 256, 256)
