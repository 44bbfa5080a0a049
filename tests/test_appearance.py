"""Skin and hair tones, the back of the head, and bared limbs, on hand-made texel arrays."""

from __future__ import annotations

import numpy as np

from pipeline.fitting import appearance
from pipeline.fitting.appearance import HEAD, Tones

SKIN, HAIR, SLEEVE = np.array([200.0, 150, 120]), np.array([40.0, 30, 25]), np.array([20.0, 20, 90])
EYE = 1.6


def head_texels(n: int = 400) -> tuple[np.ndarray, ...]:
    """A head: texels below the eyes facing the camera are skin, those above are half hair, half skin."""
    rng = np.random.default_rng(0)
    height = rng.uniform(EYE - 0.1, EYE + 0.1, n)
    facing = rng.uniform(-1, 1, n)
    colour = np.where((height > EYE + 0.02)[:, None] & (np.arange(n) % 2 == 0)[:, None], HAIR, SKIN)
    return colour.astype(np.float32), facing, np.full(n, HEAD), height


def test_tones_find_skin_and_hair() -> None:
    colour, facing, part, height = head_texels()
    found = appearance.tones(colour, facing > 0.15, facing, part, height, EYE)
    assert found.skin is not None and np.allclose(found.skin, SKIN)
    assert found.hair is not None and np.allclose(found.hair, HAIR)


def test_bald_head_has_no_hair() -> None:
    colour, facing, part, height = head_texels()
    colour[:] = SKIN
    assert appearance.tones(colour, facing > 0.15, facing, part, height, EYE).hair is None


def test_back_of_head_takes_hair_and_the_nape_skin() -> None:
    colour, facing, part, height = head_texels()
    seen = facing > 0.15
    known = seen.copy()
    colour[~seen] = 0
    appearance.paint_head(colour, known, seen, facing, part, height, EYE, Tones(SKIN, HAIR))
    assert known.all()
    back_top = (facing < -0.3) & (height > EYE)
    nape = (facing < -0.3) & (height < EYE - appearance.HAIR_BELOW_EYES_M - 0.02)
    assert np.allclose(colour[back_top], HAIR, atol=1) and np.allclose(colour[nape], SKIN, atol=1)
    front = facing > 0.6
    assert np.allclose(colour[front & (height < EYE)], SKIN)  # the photo's own colour kept where it faces us


def test_old_sleeves_turn_to_skin_and_skin_stays() -> None:
    part = np.array([1] * 10 + [2] * 10)  # upper arm, forearm
    colour = np.vstack([np.tile(SKIN, (10, 1)), np.tile(SLEEVE, (10, 1))]).astype(np.float32)
    on_garment = np.zeros(20, bool)
    on_garment[:3] = True
    changed = appearance.bare_limbs(colour, np.ones(20, bool), part, on_garment, "upper", Tones(SKIN, None))
    assert np.allclose(colour, SKIN, atol=1) and changed == 10 / 17  # of the 17 limb texels off the garment
    colour[:] = SLEEVE
    assert appearance.bare_limbs(colour, np.ones(20, bool), part, on_garment, "lower", Tones(SKIN, None)) == 0.0
    assert np.allclose(colour, SLEEVE)  # a lower garment leaves the arms alone


def test_a_hat_covers_the_crown_and_the_hair_shows_under_it_at_the_back() -> None:
    colour, facing, part, height = head_texels()
    seen = facing > 0.15
    known = seen.copy()
    colour[~seen] = 0
    hat = np.array([200.0, 20, 30])
    appearance.paint_head(colour, known, seen, facing, part, height, EYE, Tones(SKIN, HAIR), hat=hat)
    crown = ~seen & (height > EYE + 0.03 + appearance.HAIR_EDGE_M)
    back_low = (facing < -0.3) & (height < EYE + 0.02) & (height > EYE - appearance.HAIR_BELOW_EYES_M + 0.02)
    assert np.allclose(colour[crown], hat, atol=1) and np.allclose(colour[back_low], HAIR, atol=1)
