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


def face_photo(face_rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 200 x 200 photo with a face of `face_rgb` round the nose at (100, 110), the eyes at row 90, and grey hair
    and beard beside and below it; the mask covers the head."""
    photo = np.full((200, 200, 3), (190, 188, 186), np.uint8)  # grey hair and beard everywhere on the head
    photo[92:125, 80:120] = face_rgb  # the cheeks and the nose
    mask = np.zeros((200, 200), np.float32)
    mask[40:180, 50:150] = 1.0
    keypoints = np.zeros((17, 2))
    keypoints[0], keypoints[1], keypoints[2] = (100, 110), (115, 90), (85, 90)
    return photo, mask, keypoints


def test_the_cheeks_tone_is_the_faces_skin_round_the_nose_not_the_beard_beside_it() -> None:
    photo, mask, keypoints = face_photo((120, 80, 60))
    tone = appearance.cheek_skin(photo, mask, keypoints)
    assert tone is not None and np.allclose(tone, (120, 80, 60))
    grey, mask, keypoints = face_photo((190, 188, 186))  # no skin to see (a back view, a balaclava)
    assert appearance.cheek_skin(grey, mask, keypoints) is None


def test_the_cheeks_replace_the_texels_tone_only_when_they_disagree_clearly() -> None:
    texels = np.array([200.0, 150.0, 120.0])
    assert not appearance.off_skin(texels, None)
    assert not appearance.off_skin(texels, texels + 4)  # a studio photo: the two agree; the texels' stays
    assert appearance.off_skin(texels, np.array([110.0, 70.0, 50.0]))  # the texels sampled hair or shadow
    assert appearance.off_skin(None, texels)
