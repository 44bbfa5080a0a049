"""Plans: run keys come from the content of each run's inputs, so only what changed re-runs."""

from __future__ import annotations

import hashlib
import random

from pipeline import layout
from pipeline.phases import PHASES
from pipeline.plan import InputRef, JobPlan, build_batch_plan, build_plan
from pipeline.spec import GarmentSpec, JobSpec, PersonSpec, SubscriberSpec

ALL_PHASES = {p.name for p in PHASES}


def ref(job_id: str, role: str, content: bytes) -> InputRef:
    return InputRef(
        key=layout.incoming_image_key(job_id, role, "jpg"),  # type: ignore[arg-type]
        etag=hashlib.md5(content).hexdigest(),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def plan(
    person: bytes = b"person-1",
    garment: bytes = b"garment-1",
    spec: JobSpec | None = None,
    job_id: str = "j1",
) -> JobPlan:
    inputs = {"person": ref(job_id, "person", person), "garment": ref(job_id, "garment", garment)}
    return build_plan(job_id, inputs, spec or JobSpec())


def keys(p: JobPlan) -> dict[str, str]:
    return {name: run.key for name, run in p.runs.items()}


def changed(a: JobPlan, b: JobPlan) -> set[str]:
    return {name for name in ALL_PHASES if a.run(name).key != b.run(name).key}


def test_plan_has_one_run_per_phase_with_its_needs() -> None:
    p = plan()
    assert set(p.runs) == ALL_PHASES
    assert p.run("avatar").needs == {"person": p.inputs["person"].sha256}
    assert p.run("wardrobe").needs == {"garment": p.inputs["garment"].sha256}
    assert p.run("fitting").needs == {"avatar": p.run("avatar").key, "wardrobe": p.run("wardrobe").key}
    assert p.run("viewer3d").needs == {"fitting": p.run("fitting").key}
    assert len(set(keys(p).values())) == len(ALL_PHASES)
    assert p.error is None


def test_run_keys_and_plan_hash_are_deterministic() -> None:
    assert keys(plan()) == keys(plan())
    assert plan().plan_hash == plan().plan_hash
    assert plan() == plan()


def test_same_bytes_in_another_job_share_every_run() -> None:
    one, other = plan(job_id="j1"), plan(job_id="j2")
    assert one.inputs["person"].key != other.inputs["person"].key
    assert keys(one) == keys(other)
    assert one.plan_hash != other.plan_hash


def test_new_garment_reruns_wardrobe_and_downstream_not_avatar() -> None:
    assert changed(plan(), plan(garment=b"garment-2")) == {"wardrobe", "fitting", "viewer3d"}


def test_new_person_reruns_avatar_and_downstream_not_wardrobe() -> None:
    assert changed(plan(), plan(person=b"person-2")) == {"avatar", "fitting", "viewer3d"}


def test_person_height_reruns_avatar_and_downstream_not_wardrobe() -> None:
    tall = JobSpec(person=PersonSpec(height_cm=190))
    short = JobSpec(person=PersonSpec(height_cm=160))
    assert changed(plan(spec=tall), plan(spec=short)) == {"avatar", "fitting", "viewer3d"}
    assert changed(plan(), plan(spec=tall)) == {"avatar", "fitting", "viewer3d"}


def test_garment_spec_reruns_wardrobe_and_downstream_not_avatar() -> None:
    medium = JobSpec(garment=GarmentSpec(size="M"))
    large = JobSpec(garment=GarmentSpec(size="L"))
    assert changed(plan(spec=medium), plan(spec=large)) == {"wardrobe", "fitting", "viewer3d"}


def test_subscribers_change_no_run_key_but_change_the_plan_hash() -> None:
    quiet = plan()
    told = plan(spec=JobSpec(subscribers=(SubscriberSpec(url="https://example.com/hook"),)))
    assert keys(told) == keys(quiet)
    assert told.plan_hash != quiet.plan_hash


def plan_with(backends: dict[str, str | None]) -> JobPlan:
    inputs = {"person": ref("j1", "person", b"person-1"), "garment": ref("j1", "garment", b"garment-1")}
    return build_plan("j1", inputs, JobSpec(), profile="test", backends=backends)


def test_a_backend_reruns_the_phases_that_use_it_and_what_follows() -> None:
    cpu = {"FaceEmbedder": "dlib-resnet", "TryOnPainter": None, "MeshBuilder": None, "GarmentSegmenter": "classical"}
    assert changed(plan_with(cpu), plan_with(cpu)) == set()
    assert changed(plan_with(cpu), plan_with(cpu | {"MeshBuilder": "hunyuan3d-2mv"})) == {"viewer3d"}
    assert changed(plan_with(cpu), plan_with(cpu | {"TryOnPainter": "flux-fill-tryon"})) == {"fitting", "viewer3d"}
    assert changed(plan_with(cpu), plan_with(cpu | {"FaceEmbedder": "insightface"})) == {"avatar", "fitting",
                                                                                          "viewer3d"}
    assert changed(plan_with(cpu), plan_with(cpu | {"GarmentSegmenter": "sam"})) == {"wardrobe", "fitting",
                                                                                      "viewer3d"}
    assert plan_with(cpu).backends == cpu and plan_with(cpu).profile == "test"


def test_the_phase_table_names_real_protocols() -> None:
    from pipeline.backends.table import BACKENDS, PROTOCOLS

    for phase in PHASES:
        assert phase.backends and set(phase.backends.values()) <= set(PROTOCOLS), phase.name
    roles = {p for phase in PHASES for p in phase.backends.values()}
    parts = {key for row in BACKENDS.rows for key in row.uses}
    for protocol in set(PROTOCOLS) - roles:  # served only inside another backend (YOLO and SAM in the person finder)
        assert all(row.key in parts for row in BACKENDS.rows if protocol in row.serves and
                   set(row.serves) <= set(PROTOCOLS) - roles), protocol


def test_plan_survives_a_round_trip_through_json() -> None:
    p = plan(spec=JobSpec(person=PersonSpec(height_cm=180)))
    assert JobPlan.model_validate_json(p.to_bytes()) == p


# ---- batches ---------------------------------------------------------------------------------------

PEOPLE = ["alice.jpg", "Bob Smith.png", "carol.webp"]
GARMENTS = ["red dress.jpg", "shirt.jpg", "jeans.png", "coat.webp"]


def test_batch_plan_has_one_unique_job_per_pair() -> None:
    batch = build_batch_plan("spring", "etag-1", PEOPLE, GARMENTS)
    assert len(batch.jobs) == len(PEOPLE) * len(GARMENTS)
    assert {(j.person, j.garment) for j in batch.jobs} == {(p, g) for p in PEOPLE for g in GARMENTS}
    ids = [j.job_id for j in batch.jobs]
    assert len(set(ids)) == len(ids)
    assert all(layout.is_valid_id(i) for i in ids)
    assert batch.error is None


def test_batch_plan_is_deterministic_whatever_the_listing_order() -> None:
    first = build_batch_plan("spring", "etag-1", PEOPLE, GARMENTS)
    people, garments = PEOPLE[:], GARMENTS[:]
    random.Random(3).shuffle(people)
    random.Random(4).shuffle(garments)
    assert build_batch_plan("spring", "etag-1", people, garments) == first


def test_batch_plan_hash_follows_the_marker() -> None:
    first = build_batch_plan("spring", "etag-1", PEOPLE, GARMENTS)
    again = build_batch_plan("spring", "etag-2", PEOPLE, GARMENTS)
    assert [j.job_id for j in again.jobs] == [j.job_id for j in first.jobs]
    assert again.plan_hash != first.plan_hash


def test_names_that_slug_alike_still_get_distinct_jobs() -> None:
    batch = build_batch_plan("b", "e", ["a b.jpg", "a_b.jpg"], ["g.jpg"])
    ids = [j.job_id for j in batch.jobs]
    assert len(set(ids)) == 2
    assert all(layout.is_valid_id(i) for i in ids)


def test_long_names_give_valid_job_ids() -> None:
    batch = build_batch_plan("b", "e", ["p" * 150 + "1.jpg", "p" * 150 + "2.jpg"], ["g" * 150 + ".jpg"])
    ids = [j.job_id for j in batch.jobs]
    assert len(set(ids)) == 2
    assert all(layout.is_valid_id(i) for i in ids)


def test_long_names_that_slug_alike_still_give_valid_job_ids() -> None:
    batch = build_batch_plan("b", "e", ["p" * 120 + " x.jpg", "p" * 120 + "_x.jpg"], ["g.jpg"])
    ids = [j.job_id for j in batch.jobs]
    assert len(set(ids)) == 2
    assert all(len(i) <= layout.MAX_ID_LENGTH and layout.is_valid_id(i) for i in ids)


def test_an_uploaded_size_chart_reruns_wardrobe_and_downstream_only() -> None:
    base = plan()
    chart = ref("j1", "size_chart", b"chart-1")
    with_chart = build_plan("j1", {**base.inputs, "size_chart": chart}, JobSpec())
    assert changed(base, with_chart) == {"wardrobe", "fitting", "viewer3d"}
    assert with_chart.run("wardrobe").needs == {"garment": base.inputs["garment"].sha256, "size_chart": chart.sha256}
    assert "size_chart" not in with_chart.run("avatar").needs
