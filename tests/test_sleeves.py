"""Sleeve reach from synthetic garment masks drawn with known geometry, and the arm positions it maps to."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.fitting import regions
from pipeline.fitting.sleeves import sleeve_reach

H, W = 200, 200


def torso(mask: np.ndarray, x0: int = 70, x1: int = 130, top: int = 20, bottom: int = 180) -> np.ndarray:
    mask[top:bottom, x0:x1] = 255
    return mask


def blank() -> np.ndarray:
    return np.zeros((H, W), np.uint8)


def test_sleeveless_top_reads_zero() -> None:
    found = sleeve_reach(torso(blank()))
    assert found is not None and found.reach == 0.0 and "sleeveless" in found.basis


def test_short_sleeves_reach_their_length() -> None:
    mask = torso(blank())
    mask[20:60, 40:70] = 255  # 30 px out, 40 px down from the shoulder corner (70, 20): reach = hypot(30, 40) = 50
    mask[20:60, 130:160] = 255
    found = sleeve_reach(mask)
    assert found is not None
    assert found.reach == pytest.approx(np.hypot(31, 39) / 160, abs=0.02)  # farthest pixel (39, 59) from (70, 20)


def test_long_hanging_sleeves_read_long() -> None:
    mask = torso(blank())
    mask[20:40, 45:70] = 255  # shoulders
    mask[20:40, 130:155] = 255
    mask[40:170, 45:62] = 255  # sleeves hanging with a gap to the body
    mask[40:170, 138:155] = 255
    found = sleeve_reach(mask)
    assert found is not None and found.reach > 0.8


def test_a_body_wider_than_its_hem_is_not_a_sleeve() -> None:
    mask = blank()
    mask[20:170, 60:140] = 255  # the body, wider than
    mask[170:180, 75:125] = 255  # its hem band
    found = sleeve_reach(mask)
    assert found is not None and found.reach == 0.0


def test_empty_mask_has_no_reading() -> None:
    assert sleeve_reach(blank()) is None


def test_sleeve_length_maps_to_arm_positions() -> None:
    levels = {"upper_arm_m": 0.3, "forearm_m": 0.25}
    assert regions.sleeve_position(levels, 0.0) == 0.0
    assert regions.sleeve_position(levels, 0.15) == pytest.approx(0.5)
    assert regions.sleeve_position(levels, 0.3 + 0.125) == pytest.approx(1.5)
    assert regions.sleeve_position(levels, 2.0) == 2.0  # capped at the wrist
