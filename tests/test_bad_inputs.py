"""The bad-input corpus, case by case: every bad input gets its exact readable answer, nothing is retried forever.

Each case is generated here (no binaries in the repo). Photos: files that are no photo, damaged ones, huge ones,
16-bit greyscale. job.json and batch.json: nesting, encodings, field errors, cross-field errors. Intake: several
photos for one part, overrides for photos that do not exist, an exception on every attempt.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from conftest import job_finished
from events.outbound import StoreEventLog
from events.router import pending_tasks
from fakes import RunLog, make_fake_registry, photo
from functions.handlers import Handlers
from functions.runtime import LocalRuntime
from infra.folder_store import FolderStore
from pipeline import layout
from pipeline.codec import decode_upload, open_upright
from pipeline.errors import InvalidInput
from pipeline.images import inspect_image
from pipeline.intake import incoming_files, intake_due, parse_batch_spec, plan_batch, plan_incoming_job
from pipeline.manifests import BatchReport, JobError
from pipeline.spec import check_job_spec, nesting_depth, parse_job_spec
from pipeline.state import load_plan, read_model

RED, BLUE = (200, 40, 40), (40, 40, 200)
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
SVG = b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>'


def refusal(data: bytes, what: str = "person photo") -> tuple[str, str]:
    with pytest.raises(InvalidInput) as raised:
        inspect_image(data, what)
    return raised.value.reason, raised.value.user_action


def png_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (a decompression bomb's first bytes)."""
    buf = io.BytesIO()
    Image.new("L", (100, 100)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def png_with_metadata(size: int) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * size, zip=True)
    buf = io.BytesIO()
    Image.new("RGB", (100, 100), RED).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def grey16_png(grey: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.uint16) * 257).save(buf, format="PNG")
    return buf.getvalue()


# ---- photos: what the file is, in words ------------------------------------------------------------


NOT_PHOTOS = {
    "text": (b"this is not a photo\n", "a text file", "upload the photo itself (a JPEG, PNG or WebP photo) as the "
             "person photo"),
    "json": (b'{"person": "me"}', "a JSON text file", "upload the photo itself (a JPEG, PNG or WebP photo) as the "
             "person photo"),
    "SVG": (SVG, "an SVG drawing", "export the person photo as a JPEG or PNG and upload it again"),
    "HTML": (b"<!DOCTYPE html><html><body>hi</body></html>", "a web page (HTML)",
             "upload the photo itself (a JPEG, PNG or WebP photo) as the person photo"),
    "HEIC": (HEIC, "a HEIC photo (the iPhone's own format)",
             "convert the person photo to JPEG (on an iPhone: Settings > Camera > Formats > Most Compatible, or share "
             "it as JPEG) and upload it again"),
    "PDF": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document",
            "upload the photo itself (a JPEG, PNG or WebP photo) as the person photo"),
}


@pytest.mark.parametrize("case", NOT_PHOTOS.values(), ids=NOT_PHOTOS.keys())
def test_a_file_that_is_no_photo_is_named_for_what_it_is(case: tuple[bytes, str, str]) -> None:
    data, kind, action = case
    reason, user_action = refusal(data)
    assert reason == f"the person photo is not a readable image: it is {kind}, not a JPEG, PNG or WebP photo"
    assert user_action == action
    assert "BytesIO" not in reason


def test_a_truncated_jpeg_ends_early() -> None:
    data = photo(RED, (300, 300))
    assert refusal(data[: len(data) // 2]) == (
        "the person photo is not a readable image: the JPEG file ends early (the upload was cut short, or the file "
        "is damaged)", "upload the complete person photo again")


def test_random_bytes_are_neither_a_photo_nor_jargon() -> None:
    assert refusal(bytes(range(256)) * 8) == (
        "the person photo is not a readable image: it is not a JPEG, PNG or WebP photo, or the file is damaged",
        "upload the person photo again as a JPEG, PNG or WebP photo")


def test_a_png_with_a_huge_metadata_chunk_says_so_without_naming_pillow() -> None:
    reason, action = refusal(png_with_metadata(2_000_000))
    assert reason == ("the person photo is not a readable image: the PNG carries more embedded text (metadata) "
                      "than is safe to read")
    assert action == "save the person photo again without its metadata (export it as a new PNG or JPEG) and upload it"
    assert "MAX_TEXT_CHUNK" not in reason


RESIZE = "resize the person photo to at most 2048 pixels on the long side (the most the pipeline works at) and " \
         "upload it again"


def test_a_file_over_the_size_limit_says_mib_and_to_resize() -> None:
    assert refusal(b"\xff\xd8" + bytes(41 * 1024 * 1024)) == (
        "the person photo is 41.0 MiB; the largest file accepted is 40 MiB", RESIZE)


@pytest.mark.parametrize(("size", "reason"), [
    ((9000, 100), "the person photo is 9000x100; the largest side allowed is 8192"),
    ((7000, 7500), "the person photo is 7000x7500 (52 megapixels); at most 50 megapixels are accepted"),
    ((100_000, 100_000), "the person photo claims to be over 178 megapixels, far beyond any photo (a damaged file, "
                         "or one made to exhaust memory)"),
])
def test_a_huge_header_is_refused_before_any_pixel_is_decoded(size: tuple[int, int], reason: str) -> None:
    assert refusal(png_header(*size)) == (reason, RESIZE)


def test_a_gif_is_named_with_what_to_do() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (96, 128), BLUE).save(buf, format="GIF")
    assert refusal(buf.getvalue(), "garment photo") == (
        "the garment photo is a GIF image; only JPEG, PNG and WebP are accepted",
        "save the garment photo as a JPEG or PNG and upload it again")


def test_a_cameras_mpo_is_a_jpeg() -> None:
    frames = [Image.new("RGB", (200, 150), RED), Image.new("RGB", (200, 150), BLUE)]
    buf = io.BytesIO()
    frames[0].save(buf, format="MPO", save_all=True, append_images=frames[1:])
    assert inspect_image(buf.getvalue(), "person photo").format == "JPEG"
    assert decode_upload(buf.getvalue()).shape == (150, 200, 3)


def test_a_16_bit_greyscale_png_decodes_as_its_picture_not_white() -> None:
    grey = np.tile(np.linspace(0, 255, 256).astype(np.uint8), (128, 1))
    data = grey16_png(grey)
    assert open_upright(data).mode == "L"  # 16-bit PNGs open as I;16
    inspect_image(data, "person photo")
    decoded = decode_upload(data)
    assert decoded.shape == (128, 256, 3)
    assert np.abs(decoded[..., 0].astype(int) - grey).max() <= 1  # was all 255 before


def test_a_16_bit_greyscale_photo_of_the_sample_person_reaches_the_avatar_as_a_person() -> None:
    """The avatar phase decodes with decode_upload: the 16-bit photo comes out as the 8-bit one does."""
    sample = pytest.importorskip("pipeline.sample")
    person = np.asarray(Image.open(io.BytesIO(sample.sample_person())).convert("L"))
    rgb = decode_upload(grey16_png(person))
    assert rgb.shape[:2] == person.shape and np.abs(rgb[..., 1].astype(int) - person).max() <= 1
    assert rgb.mean() < 240  # not white


# ---- job.json ---------------------------------------------------------------------------------------


def spec_refusal(data: bytes) -> tuple[str, str]:
    with pytest.raises(InvalidInput) as raised:
        check_job_spec(parse_job_spec(data))
    return raised.value.reason, raised.value.user_action


@pytest.mark.parametrize("data", [b"[" * 100_000 + b"]" * 100_000, b'{"person": ' * 50_000 + b"1" + b"}" * 50_000])
def test_deep_nesting_is_refused_before_parsing(data: bytes) -> None:
    reason, action = spec_refusal(data)
    depth = nesting_depth(data.decode())
    assert depth in (100_000, 50_000)
    assert reason == f"job.json nests objects and lists {depth} levels deep; at most 12 are allowed"
    assert action == "job.json needs a few levels at most: fix job.json and upload it again"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert nesting_depth('{"a": "' + "[{" * 50 + '", "b": [1]}') == 2


def test_a_byte_order_mark_is_accepted_in_job_json() -> None:
    assert parse_job_spec(b'\xef\xbb\xbf{"person": {"height_cm": 170}}').person.height_cm == 170


@pytest.mark.parametrize(("data", "reason"), [
    ('{"a": 1}'.encode("utf-16"), "job.json is not valid JSON: it is saved as UTF-16 text, and JSON must be UTF-8"),
    ('{"a": 1}'.encode("utf-16-le"), "job.json is not valid JSON: it is saved as UTF-16 text, and JSON must be UTF-8"),
    (b'{"a": "caf\xe9"}', "job.json is not valid JSON: byte 11 (0xE9) is not UTF-8 text (the file was saved in "
                          "another encoding, such as Latin-1 or Windows-1252)"),
])
def test_other_encodings_are_named_plainly(data: bytes, reason: str) -> None:
    assert spec_refusal(data) == (
        reason, "save job.json as UTF-8 (in most editors: Save As, Encoding: UTF-8) and upload it again")


@pytest.mark.parametrize(("spec", "reason", "action"), [
    ({"garment": {"size": "XL", "size_chart": [{"label": "S", "chest_cm": 90}, {"label": "M", "chest_cm": 96}]}},
     "job.json: garment.size is 'XL', but garment.size_chart has no row with that label (its labels: S, M)",
     "set garment.size to one of the chart's labels, or add a row for it to garment.size_chart"),
    ({"subscribers": [{"url": "not a url at all"}]},
     "job.json: subscribers.0.url 'not a url at all' is not a web address (it must start with https://)",
     "give each subscriber a full web address, e.g. https://example.com/hooks/dropfit"),
    ({"subscribers": [{"url": "https://"}, {"url": "https:// example.com"}]},
     "job.json: subscribers.0.url 'https://' has no host name",
     "give each subscriber a full web address, e.g. https://example.com/hooks/dropfit"),
    ({"person": {"height_cm": 400}}, "job.json is invalid: person.height_cm: input should be less than or equal to "
     "230 (got 400)", "correct those fields (see README, 'job.json')"),
    ({"persn": {}}, "job.json is invalid: persn: unknown field (misspelt?)",
     "correct those fields (see README, 'job.json')"),
])
def test_field_errors_say_which_field_and_what_to_do(spec: dict, reason: str, action: str) -> None:
    assert spec_refusal(json.dumps(spec).encode()) == (reason, action)


def test_a_size_in_the_chart_passes_whatever_its_case() -> None:
    check_job_spec(parse_job_spec(json.dumps({"garment": {"size": " m", "size_chart": [{"label": "M"}]}}).encode()))


def test_a_huge_job_json_is_refused_by_size() -> None:
    assert spec_refusal(b" " * (5 * 1024 * 1024) + b"{}") == (
        "job.json is 5.0 MiB; the largest accepted is 4 MiB", "job.json holds settings only: remove what is not a "
        "setting")


def test_an_empty_job_json_says_it_is_empty() -> None:
    assert spec_refusal(b"") == ("job.json is not valid JSON: the file is empty",
                                 "write the settings into job.json ({} for none) and upload it again")


# ---- batch.json ------------------------------------------------------------------------------------


def batch_refusal(data: bytes) -> str:
    with pytest.raises(InvalidInput) as raised:
        parse_batch_spec(data)
    return raised.value.reason


def test_batch_json_accepts_a_byte_order_mark_as_job_json_does() -> None:
    assert parse_batch_spec(b'\xef\xbb\xbf{"spec": {"person": {"height_cm": 180}}}').spec.person.height_cm == 180
    assert parse_batch_spec(b"\xef\xbb\xbf").spec.person.height_cm is None  # a marker with only a BOM: empty


def test_batch_json_errors_are_readable_not_pydantics_dump() -> None:
    reason = batch_refusal(json.dumps({"people": {"alice.jpg": {"height_cm": 20}}, "garmnets": {}}).encode())
    assert reason == ('batch.json is invalid: people["alice.jpg"].height_cm: input should be greater than or equal '
                      "to 100 (got 20); garmnets: unknown field (misspelt?)")
    assert "errors.pydantic.dev" not in reason and "validation error" not in reason


def test_a_nested_batch_json_is_refused_by_depth() -> None:
    assert batch_refusal(b"[" * 100_000 + b"]" * 100_000) == \
        "batch.json nests objects and lists 100000 levels deep; at most 12 are allowed"


def drop_batch(store: FolderStore, batch_id: str, marker: bytes, people: tuple[str, ...] = ("alice.jpg",),
               garments: tuple[str, ...] = ("shirt.jpg",)) -> None:
    for name in people:
        store.put(f"{layout.catalog_people_prefix(batch_id)}{name}", photo(RED))
    for name in garments:
        store.put(f"{layout.catalog_garments_prefix(batch_id)}{name}", photo(BLUE))
    store.put(layout.batch_marker_key(batch_id), marker)


def test_an_override_for_a_photo_the_batch_does_not_have_refuses_the_batch(folder_store: FolderStore) -> None:
    drop_batch(folder_store, "b1", json.dumps({"people": {"alise.jpg": {"height_cm": 170}}}).encode(),
               people=("alice.jpg", "bob.jpg"))
    with pytest.raises(InvalidInput) as raised:
        plan_batch(folder_store, "b1")
    assert raised.value.reason == ("batch.json has settings for people/alise.jpg, but people/ has no such photo "
                                   "(it has: alice.jpg, bob.jpg)")
    assert raised.value.user_action == ("correct the file names in batch.json (they are case-sensitive and include "
                                        "the extension)")


def test_a_garment_size_missing_from_its_chart_refuses_that_garments_jobs_only(folder_store: FolderStore) -> None:
    chart = [{"label": "S", "chest_cm": 90}, {"label": "M", "chest_cm": 96}]
    marker = {"garments": {"shirt.jpg": {"size": "XXL", "size_chart": chart}, "tee.jpg": {"size": "M",
                                                                                          "size_chart": chart}}}
    drop_batch(folder_store, "b2", json.dumps(marker).encode(), garments=("shirt.jpg", "tee.jpg"))
    planned = plan_batch(folder_store, "b2")
    assert planned is not None
    errors = {plan.job_id: plan.error.reason if plan.error else None for plan in planned[2]}
    assert errors == {
        "b2--alice.jpg--shirt.jpg": "batch.json, for alice.jpg with shirt.jpg: garment.size is 'XXL', but "
                                    "garment.size_chart has no row with that label (its labels: S, M)",
        "b2--alice.jpg--tee.jpg": None,
    }


# ---- intake: which file is meant ---------------------------------------------------------------------


def test_three_person_photos_in_one_job_are_refused_naming_them(folder_store: FolderStore) -> None:
    for name in ("person.jpg", "person.png", "Person.webp"):
        folder_store.put(f"incoming/j/{name}", photo(RED, fmt="PNG"))
    folder_store.put("incoming/j/garment.jpg", photo(BLUE))
    plan = plan_incoming_job(folder_store, "j")
    assert plan is not None and plan.error is not None
    assert plan.error.reason == ("incoming/j/ has 3 person photos (Person.webp, person.jpg, person.png); it is not "
                                 "clear which one to use")
    assert plan.error.user_action == "keep one and delete the others: the job then starts with the one kept"
    folder_store.put(layout.plan_key("j"), plan.to_bytes())
    assert not intake_due(folder_store, "j")  # refused once, not re-planned by every sweep
    folder_store.delete("incoming/j/person.png")
    folder_store.delete("incoming/j/Person.webp")
    assert intake_due(folder_store, "j")  # one kept: the job is planned again
    replanned = plan_incoming_job(folder_store, "j")
    assert replanned is not None and replanned.error is None


def test_an_upper_case_name_is_read(folder_store: FolderStore) -> None:
    folder_store.put("incoming/j/Person.JPG", photo(RED))
    folder_store.put("incoming/j/GARMENT.png", photo(BLUE, fmt="PNG"))
    folder_store.put("incoming/j/Job.JSON", b'{"person": {"height_cm": 181}}')
    assert set(incoming_files(folder_store, "j")) == {"person", "garment", "spec"}
    plan = plan_incoming_job(folder_store, "j")
    assert plan is not None and plan.error is None and plan.spec.person.height_cm == 181


def test_a_nested_job_json_ends_as_a_refused_plan_not_an_exception(folder_store: FolderStore) -> None:
    folder_store.put("incoming/j/job.json", b"[" * 100_000 + b"]" * 100_000)
    folder_store.put("incoming/j/person.jpg", photo(RED))
    folder_store.put("incoming/j/garment.jpg", photo(BLUE))
    plan = plan_incoming_job(folder_store, "j")
    assert plan is not None and plan.error is not None
    assert plan.error.reason == "job.json nests objects and lists 100000 levels deep; at most 12 are allowed"


# ---- an intake that raises on every attempt ends refused, once ---------------------------------------


class UnreadableStore(FolderStore):
    """A folder bucket whose reads under `prefix` raise, as a bug or a broken disk would: intake fails on every
    attempt."""

    def __init__(self, root: Path, prefix: str) -> None:
        super().__init__(root)
        self.prefix = prefix

    def get(self, key: str) -> bytes:
        if key.startswith(self.prefix):
            raise RuntimeError(f"cannot read {key}")
        return super().get(key)


def run_to_rest(store: FolderStore, tmp_path: Path, done: Callable[[], bool]) -> None:
    """The local runtime with test phases, two attempts a step, until `done` and idle."""
    handlers = Handlers(store, make_fake_registry(RunLog(tmp_path / "runs.log")), StoreEventLog(store), lease_s=5)
    runtime = LocalRuntime(handlers, workers=2, max_attempts=2, retry_base_s=0.01)
    store.subscribe(runtime.submit_event)
    with runtime:
        assert runtime.run_until(done, timeout=30)
        assert runtime.wait_idle(10)


def test_an_intake_that_fails_every_attempt_ends_with_a_readable_error(tmp_path: Path) -> None:
    store = UnreadableStore(tmp_path / "bucket", "incoming/j/garment")
    store.put("incoming/j/person.jpg", photo(RED))
    store.put("incoming/j/garment.jpg", photo(BLUE))
    run_to_rest(store, tmp_path, lambda: job_finished(store, "j"))
    error = read_model(store, layout.result_error_key("j"), JobError)
    assert error is not None and error.phase == "intake"
    assert error.reason == ("intake could not check these files: it failed 2 times (RuntimeError: cannot read "
                            "incoming/j/garment.jpg)")
    assert error.user_action == "upload the files again; if it keeps failing, report the job id to the operator"
    assert json.loads(store.get("results/j/_events/failed.json"))["data"]["reason"] == error.reason
    assert pending_tasks(store) == []  # the sweeper has nothing left to retry
    store.prefix = "nothing/"
    store.put("incoming/j/garment.jpg", photo((40, 160, 60)))  # uploaded again: planned afresh
    assert intake_due(store, "j")


def test_a_batch_whose_planning_fails_every_attempt_is_reported_refused(tmp_path: Path) -> None:
    store = UnreadableStore(tmp_path / "bucket", "catalog/b/garments/")
    drop_batch(store, "b", b"{}")
    run_to_rest(store, tmp_path, lambda: store.head(layout.batch_report_key("b")) is not None)
    report = read_model(store, layout.batch_report_key("b"), BatchReport)
    assert report is not None and report.total == 0
    assert report.error == ("intake could not check these files: it failed 2 times (RuntimeError: cannot read "
                            "catalog/b/garments/shirt.jpg). upload the files again; if it keeps failing, report the "
                            "batch id to the operator")
    assert pending_tasks(store) == []
    assert load_plan(store, "b--alice.jpg--shirt.jpg") is None


def test_a_bad_subscriber_in_batch_json_refuses_the_batch(folder_store: FolderStore) -> None:
    drop_batch(folder_store, "b3", json.dumps({"spec": {"subscribers": [{"url": "hooks.example.com"}]}}).encode())
    with pytest.raises(InvalidInput) as raised:
        plan_batch(folder_store, "b3")
    assert raised.value.reason == ("batch.json, spec: subscribers.0.url 'hooks.example.com' is not a web address (it "
                                   "must start with https://)")
    assert parse_batch_spec(folder_store.get(layout.batch_marker_key("b3"))).spec.subscribers  # still readable
