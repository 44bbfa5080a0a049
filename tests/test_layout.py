"""The storage layout: every key builder round-trips through its parser, and bad ids never become keys."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from pipeline import layout
from pipeline.layout import CatalogKey, IncomingKey, InvalidKey, ResultKey, WorkKey

GOOD_IDS = ["job-1", "café job 1", "写真 2024", "a", "x" * layout.MAX_ID_LENGTH, "Order #42 (final)"]
BAD_IDS = {
    "empty": "",
    "reserved jobs": "jobs",
    "reserved batches": "batches",
    "hidden": ".x",
    "underscore": "_x",
    "slash": "a/b",
    "backslash": "a\\b",
    "too long": "x" * (layout.MAX_ID_LENGTH + 1),
    "NUL": "a\x00b",
    "newline": "a\nb",
    "tab": "a\tb",
    "DEL": "a\x7fb",
    "leading space": " a",
    "trailing space": "a ",
}


# ---- ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", GOOD_IDS)
def test_usable_ids_pass_check_id_unchanged(job_id: str) -> None:
    assert layout.is_valid_id(job_id)
    assert layout.check_id(job_id) == job_id


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_check_id_refuses_bad_ids_with_a_readable_message(bad: str) -> None:
    assert not layout.is_valid_id(bad)
    with pytest.raises(InvalidKey) as raised:
        layout.check_id(bad, "batch id")
    message = str(raised.value)
    assert message.startswith(f"batch id {bad!r} is not usable")
    assert str(layout.MAX_ID_LENGTH) in message and "'/'" in message and "jobs" in message
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_builders_refuse_bad_ids(bad: str) -> None:
    with pytest.raises(InvalidKey):
        layout.incoming_image_key(bad, "person", "jpg")
    with pytest.raises(InvalidKey):
        layout.incoming_spec_key(bad)
    with pytest.raises(InvalidKey):
        layout.batch_marker_key(bad)


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_parsers_ignore_keys_with_bad_ids(bad: str) -> None:
    assert layout.parse_incoming(f"incoming/{bad}/person.jpg") is None
    assert layout.parse_incoming(f"incoming/{bad}/job.json") is None
    assert layout.parse_catalog(f"catalog/{bad}/batch.json") is None
    assert layout.parse_catalog(f"catalog/{bad}/people/p.jpg") is None
    parsed = layout.parse_result(f"results/{bad}/manifest.json")
    # 'a/b' parses as job 'a' with file 'b/manifest.json': never as job 'a/b'
    assert parsed is None or (parsed.job_id != bad and parsed.name != "manifest.json")


# ---- incoming/ -------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", GOOD_IDS)
@pytest.mark.parametrize("role", ["person", "garment"])
def test_incoming_image_keys_round_trip(job_id: str, role: str) -> None:
    for ext in (*layout.IMAGE_EXTENSIONS, "JPG", ".png", "WebP"):
        key = layout.incoming_image_key(job_id, role, ext)  # type: ignore[arg-type]
        assert key == f"incoming/{job_id}/{role}.{ext.lower().lstrip('.')}"
        assert layout.parse_incoming(key) == IncomingKey(job_id, role)  # type: ignore[arg-type]


@pytest.mark.parametrize("job_id", GOOD_IDS)
def test_incoming_spec_key_round_trips(job_id: str) -> None:
    key = layout.incoming_spec_key(job_id)
    assert key == f"incoming/{job_id}/job.json"
    assert layout.parse_incoming(key) == IncomingKey(job_id, "spec")
    assert key.startswith(layout.incoming_prefix(job_id))


def test_incoming_image_key_refuses_unsupported_extensions() -> None:
    with pytest.raises(InvalidKey, match="gif"):
        layout.incoming_image_key("j", "person", "gif")


@pytest.mark.parametrize(
    "key",
    [
        "incoming/j/person.gif",
        "incoming/j/person",
        "incoming/j/person.jpg.png",
        "incoming/j/shoe.jpg",
        "incoming/j/notes.json",
        "incoming/j/sub/person.jpg",
        "incoming/person.jpg",
        "outgoing/j/person.jpg",
    ],
)
def test_parse_incoming_ignores_other_files(key: str) -> None:
    assert layout.parse_incoming(key) is None


def test_parse_incoming_accepts_upper_case_extensions() -> None:
    assert layout.parse_incoming("incoming/j/garment.JPEG") == IncomingKey("j", "garment")


# ---- catalog/ --------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_id", GOOD_IDS)
def test_catalog_keys_round_trip(batch_id: str) -> None:
    assert layout.parse_catalog(layout.batch_marker_key(batch_id)) == CatalogKey(batch_id, "marker")
    person = layout.catalog_people_prefix(batch_id) + "Alice Smith.JPG"
    garment = layout.catalog_garments_prefix(batch_id) + "red dress.webp"
    assert layout.parse_catalog(person) == CatalogKey(batch_id, "person", "Alice Smith.JPG")
    assert layout.parse_catalog(garment) == CatalogKey(batch_id, "garment", "red dress.webp")


@pytest.mark.parametrize(
    "key",
    [
        "catalog/b/people/readme.txt",
        "catalog/b/shoes/s.jpg",
        "catalog/b/people/x/y.jpg",
        "catalog/b/other.json",
    ],
)
def test_parse_catalog_ignores_other_files(key: str) -> None:
    assert layout.parse_catalog(key) is None


# ---- work/ -----------------------------------------------------------------------------------------


def test_work_keys_round_trip() -> None:
    run_key = layout.content_key("avatar", "x")
    cases = {
        layout.run_manifest_key("avatar", run_key): WorkKey("avatar", run_key, "_manifest.json"),
        layout.run_error_key("fitting", run_key): WorkKey("fitting", run_key, "_error.json"),
        layout.run_job_key("wardrobe", run_key, "café job 1"): WorkKey(
            "wardrobe", run_key, "_jobs/café job 1"
        ),
        layout.claim_key("intake", "job 1"): WorkKey("intake", "job 1", "_claim.json"),
        layout.plan_key("job 1"): WorkKey("jobs", "job 1", "plan.json"),
        layout.batch_plan_key("b 1"): WorkKey("batches", "b 1", "plan.json"),
        layout.run_prefix("fitting", run_key) + "angles/000.png": WorkKey(
            "fitting", run_key, "angles/000.png"
        ),
    }
    for key, expected in cases.items():
        assert layout.parse_work(key) == expected, key
    assert layout.run_job_key("avatar", run_key, "j").startswith(layout.run_jobs_prefix("avatar", run_key))


@pytest.mark.parametrize(
    "key", ["work/avatar/k", "work//k/_manifest.json", "work/avatar//x", "results/a/b/c"]
)
def test_parse_work_ignores_short_or_foreign_keys(key: str) -> None:
    assert layout.parse_work(key) is None


# ---- results/ --------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", GOOD_IDS)
def test_result_keys_round_trip(job_id: str) -> None:
    cases = {
        layout.result_manifest_key(job_id): "manifest.json",
        layout.result_error_key(job_id): "error.json",
        layout.result_event_key(job_id, "succeeded"): "_events/succeeded.json",
        layout.result_prefix(job_id) + "angles/045.png": "angles/045.png",
    }
    for key, name in cases.items():
        assert layout.parse_result(key) == ResultKey(job_id, name)


def test_batch_report_is_not_mistaken_for_a_job_result() -> None:
    assert layout.parse_result(layout.batch_report_key("b1")) is None


# ---- catalog job ids -------------------------------------------------------------------------------


def test_catalog_job_id_is_readable_and_deterministic() -> None:
    job_id = layout.catalog_job_id("spring", "Alice Smith.JPG", "red dress.png")
    assert job_id == "spring--Alice_Smith.jpg--red_dress.png"
    assert layout.catalog_job_id("spring", "Alice Smith.JPG", "red dress.png") == job_id
    assert layout.is_valid_id(job_id)


def test_catalog_job_id_shortens_long_names_with_a_hash() -> None:
    person, garment = "p" * 100 + ".jpg", "g" * 100 + ".jpg"
    job_id = layout.catalog_job_id("batch", person, garment)
    assert len(job_id) <= layout.MAX_ID_LENGTH and layout.is_valid_id(job_id)
    assert job_id.startswith("batch--ppp")
    assert job_id == layout.catalog_job_id("batch", person, garment)
    other = layout.catalog_job_id("batch", person, "g" * 100 + "x.jpg")  # differs only past the cut
    assert other != job_id and len(other) <= layout.MAX_ID_LENGTH


def test_catalog_job_ids_are_distinct_for_distinct_pairs() -> None:
    batches = ["b1", "b2", "spring sale"]
    people = ["alice.jpg", "bob.png", "Alice.jpg", "alice.webp", "p" * 120 + "1.jpg", "p" * 120 + "2.jpg"]
    garments = ["dress.jpg", "shirt.jpg", "g" * 120 + ".jpg"]
    ids = [layout.catalog_job_id(*triple) for triple in itertools.product(batches, people, garments)]
    assert len(set(ids)) == len(ids)
    assert all(layout.is_valid_id(i) for i in ids)


def test_catalog_job_ids_of_different_batches_never_collide() -> None:
    assert layout.catalog_job_id("a--b", "c.jpg", "g.jpg") != layout.catalog_job_id("a", "b--c.jpg", "g.jpg")


# ---- small helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", "jpg"),
        ("a.JPG", "jpg"),
        ("a.JpEg", "jpeg"),
        ("photo.PNG", "png"),
        ("x.WebP", "webp"),
        ("a.gif", None),
        ("noext", None),
        ("a.jpg.txt", None),
        ("jpg", None),
    ],
)
def test_image_extension_is_case_insensitive(name: str, expected: str | None) -> None:
    assert layout.image_extension(name) == expected


def test_content_key_is_stable_and_order_sensitive() -> None:
    assert layout.content_key("a", "b") == "f04cdced9736a69da6103f08"  # pinned: run keys must not drift
    assert layout.content_key("a", "b") == hashlib.sha256(b"a\x1fb").hexdigest()[:24]
    assert layout.content_key("a", "b") != layout.content_key("b", "a")
    assert layout.content_key("ab") != layout.content_key("a", "b")
    key = layout.content_key("avatar", "1", "person=abc")
    assert len(key) == 24 and int(key, 16) >= 0


def test_parse_incoming_knows_the_optional_size_chart_image() -> None:
    assert layout.parse_incoming("incoming/j/size_chart.png") == IncomingKey("j", "size_chart")
    assert layout.incoming_image_key("j", "size_chart", "jpg") == "incoming/j/size_chart.jpg"
