"""Garment photos that are not a garment on its own: a shoe or a bag is flagged from its outline, a person
wearing the top (cropped below the chin, so no face to find) from the bare skin at the neckline. The job goes
on, and the result says what was assumed."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.badinput import bag_photo, person_below_the_chin, shoe_photo
from fakes_wardrobe import DRESS, SKIRT, TROUSERS, encode, paint, polygon_mask, run_wardrobe, tshirt_mask
from infra.folder_store import FolderStore
from pipeline.backends.garment_mask import ClassicalGarmentSegmenter
from pipeline.wardrobe.category import accessory_shape, shape_features
from pipeline.wardrobe.contracts import GarmentAnalysis
from pipeline.wardrobe.person import check_wearer, skin
from pipeline.wardrobe.phase import WardrobeBackends
from pipeline.wardrobe.photo import decode_photo

SHOE_NOTE = ("the garment's outline looks like a shoe, not clothing worn on the body; it was dressed as an upper "
             "garment (a top): if that is wrong, upload a photo of a top, trousers, a skirt or a dress")
BAG_NOTE = SHOE_NOTE.replace("a shoe", "a bag")
WORN_NOTE = re.compile(r"the garment photo seems to show the garment worn by a person \(bare skin at the neckline\): "
                       r"their bare skin and what they hold \((\d+)% of the photo\) were taken out of the garment's "
                       r"mask; for the best result, upload a product photo of the garment alone \(flat-lay or on a "
                       r"ghost mannequin\) on a plain background")


def analysis_of(files: dict[str, bytes]) -> GarmentAnalysis:
    return GarmentAnalysis.model_validate_json(files["garment.json"])


@pytest.fixture(scope="module")
def backends() -> WardrobeBackends:
    return WardrobeBackends(segmenter=ClassicalGarmentSegmenter())


@pytest.mark.parametrize(("make", "flag", "note"), [(shoe_photo, "not_clothing", SHOE_NOTE),
                                                    (bag_photo, "not_clothing", BAG_NOTE)], ids=["shoe", "bag"])
def test_a_shoe_or_a_bag_is_dressed_with_a_flag_that_says_so(folder_store: FolderStore, backends: WardrobeBackends,
                                                             make: Callable[[], bytes], flag: str, note: str) -> None:
    result, files = run_wardrobe(folder_store, backends, make())
    assert result.data["flags"] == [flag]
    assert note in result.data["notes"] and note in analysis_of(files).notes


def test_a_person_wearing_the_top_below_the_chin_is_flagged(folder_store: FolderStore,
                                                             backends: WardrobeBackends) -> None:
    pytest.importorskip("pipeline.sample")
    photo = person_below_the_chin()
    result, files = run_wardrobe(folder_store, backends, photo)
    assert "worn_by_person" in result.data["flags"]
    said = [m for m in map(WORN_NOTE.fullmatch, analysis_of(files).notes) if m]
    assert len(said) == 1 and int(said[0].group(1)) >= 1
    # the wearer's skin is out of the garment's mask: what is left of the mask is hardly skin-coloured
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    mask = np.asarray(Image.open(io.BytesIO(files["mask.png"]))) > 127
    assert mask.any() and (skin(rgb) & mask).sum() < 0.05 * mask.sum()


@pytest.mark.parametrize("colour", [(40, 90, 200), (222, 184, 150)], ids=["blue", "skin-toned beige"])
def test_a_plain_t_shirt_carries_no_flag(folder_store: FolderStore, backends: WardrobeBackends,
                                         colour: tuple[int, int, int]) -> None:
    result, _ = run_wardrobe(folder_store, backends, encode(paint(tshirt_mask(), colour, (255, 255, 255))))
    assert result.data["flags"] == []


@pytest.mark.parametrize("shape", [TROUSERS, SKIRT, DRESS], ids=["trousers", "skirt", "dress"])
def test_clothing_outlines_are_not_accessories(shape: list[tuple[int, int]]) -> None:
    assert accessory_shape(shape_features(polygon_mask(shape).astype(np.float32))) is None
    assert accessory_shape(shape_features(tshirt_mask().astype(np.float32))) is None


def test_a_beige_garment_is_not_bare_skin() -> None:
    truth = tshirt_mask()
    image = paint(truth, (222, 184, 150), (255, 255, 255))
    assert not check_wearer(image, truth.astype(np.float32)).bare_skin


@pytest.mark.devdata
def test_no_development_garment_photo_is_flagged_as_an_accessory(dev_garments: list[Path]) -> None:
    segmenter = ClassicalGarmentSegmenter()
    flagged = []
    for path in dev_garments:
        photo = decode_photo(path.read_bytes())
        alpha = photo.alpha if photo.alpha is not None else segmenter.segment(photo.rgb)
        if accessory_shape(shape_features(alpha)) or check_wearer(photo.rgb, alpha).bare_skin:
            flagged.append(path.name)
    assert flagged == []


def test_the_generated_cases_are_real_photos() -> None:
    for make in (shoe_photo, bag_photo):
        with Image.open(io.BytesIO(make())) as image:
            assert image.format == "JPEG" and image.size == (768, 1024)
