"""The background a loose person mask takes in at its edge, found by colour (`pipeline.fitting.background`)."""

from __future__ import annotations

import numpy as np

from pipeline.fitting.background import background_in_mask

H, W = 600, 400
GRASS, WALL, JEANS, SKIN = (70, 140, 50), (180, 170, 150), (40, 50, 90), (200, 150, 120)


def noisy(image: np.ndarray, seed: int = 0) -> np.ndarray:
    grain = np.random.default_rng(seed).normal(0.0, 6.0, image.shape)
    return np.clip(image.astype(np.float64) + grain, 0, 255).astype(np.uint8)


def standing(background: tuple[int, int, int], clothes: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A person (skin head and arms, legs in `clothes`) on a plain background, and where the person is."""
    photo = np.zeros((H, W, 3), np.uint8)
    photo[:] = background
    person = np.zeros((H, W), bool)
    person[60:140, 170:230] = True  # head
    person[140:330, 140:260] = True  # torso
    person[330:560, 150:250] = True  # legs
    photo[person] = clothes
    photo[60:140, 170:230] = SKIN
    return noisy(photo), person


def loose(person: np.ndarray, px: int) -> np.ndarray:
    import cv2

    return cv2.dilate(person.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def test_grass_the_mask_takes_in_round_the_legs_is_found_and_the_person_is_not() -> None:
    photo, person = standing(GRASS, JEANS)
    mask = loose(person, 8)  # the segmenter's edge, 8 px (1.3 % of the height) out into the grass
    found = background_in_mask(photo, mask)
    taken_in = mask & ~person
    assert found[taken_in].mean() > 0.9
    assert found[person].mean() < 0.01


def test_a_person_dressed_in_the_walls_colour_keeps_it() -> None:
    """Trousers the colour of the wall behind: nothing tells them apart by colour, so nothing of them goes."""
    photo, person = standing(WALL, WALL)
    found = background_in_mask(photo, loose(person, 8))
    assert found[person].mean() < 0.02


def test_a_tight_mask_loses_nothing_and_an_empty_one_finds_nothing() -> None:
    photo, person = standing(GRASS, JEANS)
    assert background_in_mask(photo, person)[person].mean() < 0.01
    assert not background_in_mask(photo, np.zeros((H, W), bool)).any()


def test_the_dressed_body_takes_no_grass_where_the_fitted_body_reaches_past_the_person() -> None:
    """The fitted cylinder is wider than the person in the photo, and the mask looser still: the strips of grass
    the cylinder's sides see inside the mask are not painted on the body (they are made up from the person)."""
    from test_dress import HEIGHT, cylinder, front_camera

    from pipeline.fitting.dress import GarmentLook, PersonPhoto, dress_body
    from pipeline.geometry import BodyMesh

    photo = np.zeros((600, 300, 3), np.uint8)
    photo[:] = GRASS
    photo[:, 140:161] = SKIN  # the person: narrower than the fitted body (x 135 .. 165)
    mask = np.zeros((600, 300), np.float32)
    mask[:, 128:173] = 1.0  # the segmenter's edge, 12 px out into the grass
    vertices, faces, uvs, face_uvs = cylinder()
    garment = np.zeros((100, 80, 4), np.uint8)
    garment[10:90, 10:70] = (30, 60, 210, 255)
    dressed = dress_body(BodyMesh(vertices, faces, uvs, face_uvs), PersonPhoto(noisy(photo), mask, front_camera()),
                         GarmentLook(garment, "upper"), {"chest": 0.0, "waist": 0.0, "hip": 0.0}, atlas_size=256)
    v = 1.0 - (np.arange(256) + 0.5) / 256
    body = ~dressed.garment_texels & ((v * HEIGHT > 0.05) & (v * HEIGHT < HEIGHT - 0.05))[:, None]
    grass = np.abs(dressed.atlas.astype(float) - GRASS).max(axis=2) < 40
    assert dressed.seen > 0.1 and grass[body].mean() < 0.01


def test_bench_look_counts_the_backgrounds_colour_on_the_figure_and_not_the_persons() -> None:
    """bench.look's figure: a view whose legs carry a patch of the photo's grass counts that patch only."""
    from types import SimpleNamespace

    from bench.look import background_colours, background_on_body, lab
    from pipeline.render.shade import BACKGROUND

    photo, person = standing(GRASS, JEANS)
    parsing = SimpleNamespace(person=person, rendered=person)
    background, own = background_colours(photo, parsing)
    view = np.zeros((H, W, 3), np.uint8)
    view[:] = BACKGROUND
    view[person] = photo[person]
    patch = np.zeros((H, W), bool)
    patch[500:540, 160:200] = True  # grass on the shins
    view[patch] = photo[:40, :40].reshape(-1, 3)
    found = background_on_body(view, background, own, lab(np.array([[[200, 0, 200]]], np.uint8)).reshape(-1, 3))
    assert found[patch].mean() > 0.9 and found[person & ~patch].mean() < 0.01
