"""The garment's back at the neck and under a placed print (`pipeline.fitting.neck`), on synthetic product photos,
and on the dev set's T-shirt when it is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.fitting.neck import back_cutout, inside_back

LILAC, INSIDE, PRINT = (193, 178, 210), (58, 42, 65), (40, 40, 40)


def tee(inside: bool = True, busy_top: bool = False) -> np.ndarray:
    """A 400 x 300 RGBA T-shirt front on transparency: a lilac body with fine weave noise, a dark inside of the
    back seen through a round neck opening (or none), or a busy dark print at the top instead."""
    rng = np.random.default_rng(3)
    rgba = np.zeros((400, 300, 4), np.uint8)
    rgba[40:380, 40:260, 3] = 255
    rgb = np.clip(np.array(LILAC, np.float32) + rng.normal(0, 1.5, (400, 300, 1)), 0, 255)
    rows, cols = np.mgrid[0:400, 0:300]
    opening = ((cols - 150) / 45.0) ** 2 + ((rows - 40) / 40.0) ** 2 < 1.0
    if inside:
        rgb[opening & (rows >= 46)] = INSIDE
    if busy_top:  # a dark, busy motif in the same place: a print, not an inside
        checker = ((rows // 3 + cols // 3) % 2 == 0) & opening & (rows >= 46)
        rgb[checker] = (20, 20, 20)
        rgb[opening & (rows >= 46) & ~checker] = (120, 60, 60)
    rgba[..., :3] = rgb.astype(np.uint8)
    return rgba


def test_the_inside_of_the_back_is_found_and_becomes_fabric_below_the_back_collar() -> None:
    rgba = tee()
    found = inside_back(rgba)
    opening = np.all(rgba[..., :3] == INSIDE, axis=-1)
    assert found[opening].mean() > 0.95
    assert not found[200:, :].any()  # nothing of the body below
    back = back_cutout(rgba)
    lightness_gap = np.abs(back[60:75, 130:170, :3].astype(float) - LILAC).max()
    assert lightness_gap < 12  # the inside under the collar band reads as the fabric
    assert np.array_equal(back[40:47], rgba[40:47])  # the back collar's band (2 % of the height) stays as it is
    assert np.array_equal(back[..., 3], rgba[..., 3])


def test_a_top_with_no_inside_or_a_busy_dark_print_there_is_left_as_it_is() -> None:
    plain = tee(inside=False)
    assert back_cutout(plain) is plain
    busy = tee(inside=False, busy_top=True)
    assert not inside_back(busy).any()
    assert back_cutout(busy) is busy


def test_a_placed_print_is_filled_with_the_fabric_round_it_and_its_light() -> None:
    rgba = tee(inside=False)
    shade = np.linspace(0.85, 1.0, 300)[None, :, None]  # the light falls off to the left
    rgba[..., :3] = np.clip(rgba[..., :3] * shade, 0, 255).astype(np.uint8)
    printed = rgba.copy()
    printed[150:220, 90:210, :3] = PRINT
    back = back_cutout(printed, (90, 150, 210, 220))
    assert np.abs(back[150:220, 90:210, :3].astype(float) - rgba[150:220, 90:210, :3]).max() < 10
    assert np.array_equal(back[:140], printed[:140])  # nothing outside the print's box and rim moves


DEV_TEE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tryon" / "garments" / "00055_00.jpg"


@pytest.mark.skipif(not DEV_TEE.exists(), reason="the dev set's garments are not here (../shared/data/tryon)")
def test_the_dev_tees_inside_back_is_found_at_the_neck_only() -> None:
    from PIL import Image

    from pipeline.wardrobe.mask import segment_garment

    rgb = np.asarray(Image.open(DEV_TEE).convert("RGB"))
    alpha = (np.clip(segment_garment(rgb), 0, 1) * 255).astype(np.uint8)
    found = inside_back(np.dstack([rgb, alpha]))
    rows, cols = np.nonzero(found)
    garment_rows = np.nonzero(alpha > 127)[0]
    assert found.sum() > 5000
    assert rows.max() < garment_rows.min() + 0.15 * (garment_rows.max() - garment_rows.min())
    assert 250 < cols.mean() < 520  # the middle of the 768 px photo: the neck


def test_the_front_squeezes_the_inside_out_to_a_collar_band_at_the_top_and_a_print_below_keeps_its_shape() -> None:
    from pipeline.fitting.neck import front_cutout

    rgba = tee()
    rgba[300:340, 100:200, :3] = PRINT  # a placed print well below the neck
    inside = inside_back(rgba)
    front = front_cutout(rgba, inside, (100, 300, 200, 340))
    assert np.array_equal(front[..., 3], rgba[..., 3])  # the outline stays the photo's
    below = front[52:70, 140:160, :3].astype(float)
    assert np.abs(below - LILAC).max(axis=-1).mean() < 12  # under the front collar: fabric, not the inside
    collar = front[40:44, 140:160, :3].astype(float)  # the crescent's thinnest part stays at the top: the ribbing
    assert np.abs(collar - INSIDE).max(axis=-1).mean() < 12
    assert np.array_equal(front[296:, :], rgba[296:, :])  # the print and all below it as they were
    assert front_cutout(rgba, np.zeros_like(inside)) is rgba
    assert front_cutout(rgba, inside, (100, 70, 200, 340)) is rgba  # a print starting at the collar: left
