"""Photos cut at the chest (head and shoulders, the hips below the frame) go through; the data says what was
assumed for the rest (issue 14, point 8). Real CPU models: mediapipe, dlib, anny.

The built-in sample person cropped at the chest is always available; the hard dev photos add a real one and a
photo cut off above the shoulders, still refused, when ../shared/data/tryon/hard is there.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_avatar import png_of, run_avatar
from test_cli import dropfit

from bench.devdata import DEV_DATA
from fakes_person import FakePersonLandmarker, standing_person
from infra.folder_store import FolderStore
from pipeline.avatar.contracts import AvatarRecord
from pipeline.avatar.phase import find_person
from pipeline.backends.mediapipe_person import (
    CHEST_CROP_NOTE,
    Detection,
    MediapipePersonLandmarker,
    padded_below,
    unpadded,
)
from pipeline.body.measure import HIPS_UNSEEN
from pipeline.errors import InvalidInput
from pipeline.phase_api import PhaseRegistry
from pipeline.registry import product_registry
from pipeline.sample import sample_garment, sample_person

HARD = DEV_DATA / "hard/people"
HAT = HARD / "omnitry_person_hat.jpg"  # head and shoulders, a T-shirt under an open shirt
# cut at the ribs: no head, no shoulders
NO_HEAD = HARD / "chatgarment_1dde6afed43187fe927089a615e3f744724ef3defdf3f2ae4a6cede5ad71dcea.jpg"


@pytest.fixture(scope="module")
def registry() -> PhaseRegistry:
    return product_registry()


@pytest.fixture(scope="module")
def landmarker() -> MediapipePersonLandmarker:
    return MediapipePersonLandmarker()


def chest_crop() -> np.ndarray:
    """The sample person (768x1024, shoulders at y ~240, hips at ~490) cut at mid-chest, 560 px wide."""
    with Image.open(io.BytesIO(sample_person())) as image:
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[:400, 104:664])


def hard_photo(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"the hard dev photos are absent ({HARD}); set DROPFIT_DEV_DATA to use them")
    return path


def test_padding_maps_back_to_the_photo_and_points_below_keep_their_place() -> None:
    rgb = np.zeros((100, 80, 3), np.uint8)
    padded, left = padded_below(rgb, 1.0, 0.25, "grey")
    assert padded.shape == (200, 120, 3) and left == 20 and padded[150, 60, 0] == 128
    marks = np.array([[30.0, 40.0, 0.9], [50.0, 170.0, 0.8], [5.0, 40.0, 0.9]] + [[60.0, 50.0, 1.0]] * 30, np.float32)
    back = unpadded(Detection(landmarks=marks, world=np.zeros((33, 3), np.float32),
                              mask=np.ones((200, 120), np.float32)), left, 80, 100)
    assert back.mask.shape == (100, 80)
    assert back.landmarks[0].tolist() == pytest.approx([10.0, 40.0, 0.9])
    assert back.landmarks[1].tolist() == pytest.approx([30.0, 170.0, 0.0])  # below the photo: kept, unseen
    assert back.landmarks[2, 2] == 0.0  # in the left pad


def cut_at(y: int, hide: tuple[int, ...] = ()) -> FakePersonLandmarker:
    """A standing person (768x1024 photo) as the landmarker gives a photo cut at row `y`: points below it keep
    their place, visibility 0; `hide` are more landmarks not seen."""
    person = standing_person()
    marks = person.landmarks.copy()
    marks[marks[:, 1] > y, 2] = 0.0
    marks[list(hide), 2] = 0.0
    return FakePersonLandmarker(replace(person, image_size=(768, y), landmarks=marks, mask=person.mask[:y]))


def test_the_avatar_refuses_only_where_the_garment_cannot_be_placed() -> None:
    rgb = np.zeros((1, 1, 3), np.uint8)  # the fake ignores it
    hips_y = float(standing_person().landmarks[23, 1])
    assert find_person(cut_at(int(hips_y) - 60), rgb) is not None  # cut at the chest, face seen
    assert find_person(cut_at(1024, hide=(0, 2, 5)), rgb) is not None  # whole body, no face: carries on
    cases = [(cut_at(int(hips_y) - 60, hide=(0, 2, 5)), "shows no face"),  # chest crop, no face
             (cut_at(1024, hide=(12,)), "shoulders are not both visible"),
             (cut_at(1024, hide=(23,)), "hips are hidden"),  # a hip in the frame, not seen
             (FakePersonLandmarker(None), "no person found")]
    for landmarker, reason in cases:
        with pytest.raises(InvalidInput) as caught:
            find_person(landmarker, rgb)
        assert reason in caught.value.reason and "cut at the chest will do" in caught.value.user_action


def test_a_photo_cut_at_the_chest_is_found_with_its_hips_below_the_frame(
        landmarker: MediapipePersonLandmarker) -> None:
    rgb = chest_crop()
    assert landmarker._search(rgb) == []  # the photo as it is: mediapipe finds nobody to count
    person = landmarker.find_person(rgb)
    assert person is not None and person.notes[0] == CHEST_CROP_NOTE
    assert person.mask.shape == rgb.shape[:2] and person.image_size == (560, 400)
    assert (person.landmarks[[11, 12], 2] >= 0.5).all() and (person.landmarks[[0, 2, 5], 2] >= 0.5).all()
    hips = person.landmarks[[23, 24]]
    assert (hips[:, 1] > 400).all() and (hips[:, 2] == 0).all()


def test_the_body_fits_a_chest_crop_with_the_hips_unseen_and_the_legs_at_rest(
        landmarker: MediapipePersonLandmarker) -> None:
    from pipeline.backends.anny_body import AnnyBodyFitter

    person = landmarker.find_person(chest_crop())
    assert person is not None
    fit = AnnyBodyFitter().fit(person, 1.7)
    names = list(fit.keypoint_names)
    assert fit.targets_2d[[names.index("left_hip"), names.index("right_hip")], 2].tolist() == [0.0, 0.0]
    assert fit.targets_2d[[names.index("left_shoulder"), names.index("right_shoulder")], 2].min() > 0.5
    legs = [b for b in fit.params if b.startswith("pose.") and ("leg" in b or "foot" in b)]
    assert len(legs) == 6 and all(np.linalg.norm(fit.params[b]) < 0.02 for b in legs), fit.params
    shoulders = fit.keypoints_2d[[names.index("left_shoulder"), names.index("right_shoulder")]]
    assert np.abs(shoulders - person.landmarks[[11, 12], :2]).max() < 12  # px, on a 560x400 photo


def test_the_avatar_of_a_chest_crop_fits_and_says_what_it_assumed(folder_store: FolderStore,
                                                                 registry: PhaseRegistry) -> None:
    _, files = run_avatar(folder_store, registry, png_of(chest_crop()))
    record = AvatarRecord.model_validate_json(files["avatar.json"])
    assert CHEST_CROP_NOTE in record.notes and record.face_found
    assert record.fit.reprojection_error_rel < 0.02 and record.fit.mask_iou > 0.7, record.fit
    for name in ("waist", "hip"):
        assert HIPS_UNSEEN in record.measurements[name]["basis"]
    assert HIPS_UNSEEN not in record.measurements["chest"]["basis"]
    assert record.measurements["waist"]["confidence"] < record.measurements["chest"]["confidence"]
    hips = json.loads(files["keypoints.json"])["photo"]["left_hip"]
    assert hips["visibility"] == 0


def test_a_chest_crop_without_a_face_is_refused_saying_why(folder_store: FolderStore,
                                                          registry: PhaseRegistry) -> None:
    rgb = chest_crop().copy()
    rgb[40:220, 150:410] = rgb[5, 5]  # paint the head out: shoulders and chest stay
    with pytest.raises(InvalidInput) as caught:
        run_avatar(folder_store, registry, png_of(rgb))
    assert "head and both shoulders" in caught.value.reason or "no face" in caught.value.reason
    assert "cut at the chest will do" in caught.value.user_action


def test_a_whole_job_on_a_chest_crop_succeeds_and_its_data_states_the_assumption(tmp_path: Path) -> None:
    (tmp_path / "p.png").write_bytes(png_of(chest_crop()))
    (tmp_path / "g.jpg").write_bytes(sample_garment())
    result = dropfit("run", "p.png", "g.jpg", "--bucket", "b", "--job-id", "chest", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    results = tmp_path / "b/results/chest"
    manifest = json.loads((results / "manifest.json").read_text())
    assert CHEST_CROP_NOTE in manifest["phases"]["avatar"]["data"]["notes"]
    report = json.loads((results / "fit_report.json").read_text())
    assert any(HIPS_UNSEEN in note for note in report["notes"]), report["notes"]
    assert len(list((results / "angles").glob("*.png"))) == 8
    with Image.open(results / "photo.png") as photo:
        assert photo.size == (560, 400)


@pytest.mark.devdata
def test_the_hard_head_and_shoulders_photo_goes_through(folder_store: FolderStore, registry: PhaseRegistry) -> None:
    _, files = run_avatar(folder_store, registry, hard_photo(HAT).read_bytes())
    record = AvatarRecord.model_validate_json(files["avatar.json"])
    assert CHEST_CROP_NOTE in record.notes and record.face_found
    assert record.fit.mask_iou > 0.7, record.fit
    assert HIPS_UNSEEN in record.measurements["hip"]["basis"]


@pytest.mark.devdata
def test_a_photo_cut_off_above_the_shoulders_is_refused_with_what_to_do(folder_store: FolderStore,
                                                                       registry: PhaseRegistry) -> None:
    with pytest.raises(InvalidInput) as caught:
        run_avatar(folder_store, registry, hard_photo(NO_HEAD).read_bytes())
    assert "head and both shoulders" in caught.value.reason
    assert "cut at the chest will do" in caught.value.user_action
