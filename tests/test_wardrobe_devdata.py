"""The wardrobe phase on the real development garments (../shared/data/tryon/garments; skipped when absent):
every garment gets a mask of a sane size, the category matches the hand labels in bench/wardrobe.py, and
none is mistaken for a photo of a person, while people photos with a visible face are refused. Speed is
the benchmark's business (`python -m bench.wardrobe`), not this test's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.wardrobe import DEV_LABELS
from fakes_wardrobe import run_wardrobe
from infra.folder_store import FolderStore
from pipeline.backends.garment_mask import ClassicalGarmentSegmenter
from pipeline.errors import InvalidInput
from pipeline.wardrobe.contracts import GarmentAnalysis
from pipeline.wardrobe.phase import WardrobeBackends
from pipeline.wardrobe.stats import mask_stats

pytestmark = pytest.mark.devdata


@pytest.fixture(scope="module")
def analyses(dev_garments: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, GarmentAnalysis]:
    store = FolderStore(tmp_path_factory.mktemp("wardrobe-dev") / "bucket")
    backends = WardrobeBackends(segmenter=ClassicalGarmentSegmenter())
    found = {}
    for i, photo in enumerate(dev_garments):
        _, files = run_wardrobe(store, backends, photo.read_bytes(), name=f"dev{i}")
        found[photo.name] = GarmentAnalysis.model_validate_json(files["garment.json"])
    return found


def test_every_dev_garment_is_labelled(dev_garments: list[Path]) -> None:
    assert {p.name for p in dev_garments} == set(DEV_LABELS)


def test_every_dev_garment_gets_a_sane_mask(analyses: dict[str, GarmentAnalysis]) -> None:
    for name, analysis in analyses.items():
        assert 0.12 < analysis.mask.coverage < 0.65, (name, analysis.mask)
        assert analysis.mask.parts <= 2, (name, analysis.mask)
        x0, y0, x1, y1 = analysis.mask.box
        assert (x1 - x0) * (y1 - y0) > 0.2 * analysis.image.width * analysis.image.height, name


def test_the_category_matches_the_hand_labels(analyses: dict[str, GarmentAnalysis]) -> None:
    wrong = {n: (a.category.value, DEV_LABELS[n]) for n, a in analyses.items() if a.category.value != DEV_LABELS[n]}
    assert len(wrong) <= 2, wrong  # 42/42 when written; a margin for the few near the upper / full boundary


def test_dev_garments_get_colours_and_a_texture_crop(analyses: dict[str, GarmentAnalysis]) -> None:
    for name, analysis in analyses.items():
        colours = analysis.appearance.colours
        assert colours and abs(sum(c.share for c in colours) - 1) < 0.01, name
        x0, y0, x1, y1 = analysis.appearance.texture_box
        assert min(x1 - x0, y1 - y0) >= 24, (name, analysis.appearance.texture_box)


def test_people_with_a_visible_face_are_refused_and_no_garment_is(dev_people: list[Path],
                                                                   analyses: dict[str, GarmentAnalysis],
                                                                   tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "bucket")
    backends = WardrobeBackends(segmenter=ClassicalGarmentSegmenter())
    refused = 0
    for i, photo in enumerate(dev_people):
        try:
            run_wardrobe(store, backends, photo.read_bytes(), name=f"person{i}")
        except InvalidInput as exc:
            refused += "shows a person" in exc.reason or "no garment" in exc.reason
    assert refused >= len(dev_people) // 2  # 15 of 28 when written: the others are cropped below the face
    assert len(analyses) == len(DEV_LABELS)  # and every garment above went through


def test_the_segmenter_alone_matches_the_phase_mask(dev_garments: list[Path]) -> None:
    rgb = np.asarray(Image.open(dev_garments[0]).convert("RGB"))
    stats = mask_stats(ClassicalGarmentSegmenter().segment(rgb))
    assert stats is not None and stats.parts == 1 and not stats.touches_border
