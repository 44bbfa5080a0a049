"""The hair the photo shows (`pipeline.fitting.photo.measure_hair`), on a synthetic head-and-shoulders photo and
its parsing: its colour from the crown, and how far it falls."""

from __future__ import annotations

import numpy as np

from pipeline.fitting.parsing import PART, SKIN_DELTA, Parsing, skin_delta
from pipeline.fitting.photo import falls_beside_face, measure_hair

H, W = 400, 300
EYE, SHOULDER = 100.0, 180.0  # rows: one eye-to-shoulder length is 80 px
SKIN, WALL, SHIRT = (200, 150, 120), (120, 130, 150), (235, 235, 235)
BLACK, AUBURN, BROWN_WALL = (25, 22, 20), (170, 70, 35), (90, 80, 70)


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    rows, cols = np.mgrid[0:H, 0:W]
    return ((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1.0


def scene(hair: np.ndarray, hair_rgb: tuple[int, int, int], extra: list[tuple[np.ndarray, tuple[int, int, int]]],
          wall: tuple[int, int, int] = WALL) -> tuple[np.ndarray, Parsing]:
    """The photo (wall, shirt, neck, face, then `hair` and the `extra` patches painted over) and its parsing: the
    fitted body is the skull, the neck and the torso; the person is all of it plus the hair and the patches."""
    skull = ellipse(150, 95, 38, 52)
    rows = np.arange(H)[:, None]
    neck = (rows >= 130) & (rows < SHOULDER) & (np.abs(np.arange(W) - 150) < 22)[None, :]
    torso = (rows >= SHOULDER) & (np.abs(np.arange(W) - 150) < 110)[None, :]
    photo = np.zeros((H, W, 3), np.uint8)
    photo[:] = wall
    photo[torso] = SHIRT
    photo[neck | skull] = SKIN
    photo[hair] = hair_rgb
    person = skull | neck | torso | hair
    for patch, rgb in extra:
        photo[patch] = rgb
        person |= patch
    rendered = skull | neck | torso
    part = np.where(person, np.where(rows < SHOULDER, PART["head"], PART["torso"]), -1)
    delta = skin_delta(photo, np.asarray(SKIN, np.float64))
    parsing = Parsing(part=part, rendered=rendered, skin=(delta < SKIN_DELTA) & person, clothes=(delta > 34) & person,
                      person=person, body_iou=1.0)
    return photo, parsing


def short_hair() -> np.ndarray:
    """A cap of hair over the skull's top, standing a little past it, down to the temples."""
    return ellipse(150, 88, 44, 56) & ~ellipse(150, 104, 36, 44) & (np.arange(H)[:, None] < EYE + 8)


def test_headphones_round_the_neck_are_not_long_hair() -> None:
    """Black headphones round the neck, joined to the black hair by a thin dark cable down the cheek: the hair
    is short (it does not run down beside the face), and its colour is the hair's."""
    rows, cols = np.mgrid[0:H, 0:W]
    headphones = (rows >= 150) & (rows < 178) & (np.abs(cols - 150) < 45)
    cable = (rows >= EYE) & (rows < 152) & (cols == 108)
    photo, parsing = scene(short_hair(), BLACK, [(headphones, BLACK), (cable, BLACK)])
    hair = measure_hair(photo, parsing, EYE, SHOULDER)
    assert hair is not None and hair.drop < 0.5  # not long: nothing is painted on the back
    assert np.abs(hair.colour - BLACK).max() < 10


def test_long_hair_down_beside_the_face_falls_past_the_shoulders() -> None:
    rows, cols = np.mgrid[0:H, 0:W]
    sides = (rows >= 60) & (rows < 230) & (((cols >= 92) & (cols < 114)) | ((cols >= 186) & (cols < 208)))
    photo, parsing = scene(short_hair() | sides, BLACK, [])
    hair = measure_hair(photo, parsing, EYE, SHOULDER)
    assert hair is not None and hair.drop > 1.2 and hair.half_width > 0.6


def test_auburn_hair_takes_its_colour_from_the_crown_not_the_wall_the_mask_took_in() -> None:
    """The mask reaches well past the hair into a dull wall beside the head (more of it than of the hair standing
    past the skull): the colour is the crown's."""
    loose = ellipse(150, 90, 62, 70) & ~ellipse(150, 88, 44, 56) & (np.arange(H)[:, None] < SHOULDER)
    photo, parsing = scene(short_hair(), AUBURN, [(loose, BROWN_WALL)], wall=BROWN_WALL)
    hair = measure_hair(photo, parsing, EYE, SHOULDER)
    assert hair is not None and np.abs(hair.colour - AUBURN).max() < 15


def test_hair_falls_beside_the_face_only_where_it_is_wide_enough() -> None:
    mask = np.zeros((H, W), bool)
    mask[100:140, 100] = True  # a cable
    assert not falls_beside_face(mask, EYE, 80.0)
    mask[100:140, 100:106] = True  # a lock of hair
    assert falls_beside_face(mask, EYE, 80.0)
