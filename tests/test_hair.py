"""The hair the photo shows (`pipeline.fitting.photo.measure_hair`), on a synthetic head-and-shoulders photo and
its parsing: its colour from the crown, and how far it falls."""

from __future__ import annotations

import numpy as np

from pipeline.fitting.hair import volume_offsets
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


RED = (200, 30, 35)


def test_an_afro_stands_far_past_the_skull_and_short_hair_lies_near_it() -> None:
    afro = ellipse(150, 90, 90, 90) & ~ellipse(150, 104, 36, 44) & (np.arange(H)[:, None] < SHOULDER - 10)
    photo, parsing = scene(afro, BLACK, [])
    big = measure_hair(photo, parsing, EYE, SHOULDER)
    photo, parsing = scene(short_hair(), BLACK, [])
    short = measure_hair(photo, parsing, EYE, SHOULDER)
    assert big is not None and short is not None
    assert big.volume > 0.4 and short.volume < 0.5 * big.volume  # 52 px past the skull's side: 0.65
    assert big.hat is None


def test_a_hat_on_the_crown_is_not_the_hair_under_it() -> None:
    """A red hat over the skull's top and black curls down beside the face: the hair is black, the hat red."""
    rows, cols = np.mgrid[0:H, 0:W]
    hat = ellipse(150, 70, 50, 45) & (rows < 75)
    curls = (rows >= 60) & (rows < 170) & (((cols >= 95) & (cols < 116)) | ((cols >= 184) & (cols < 205)))
    photo, parsing = scene(curls, BLACK, [(hat, RED)])
    hair = measure_hair(photo, parsing, EYE, SHOULDER)
    assert hair is not None and hair.hat is not None
    assert np.abs(hair.colour - BLACK).max() < 10 and np.abs(hair.hat - RED).max() < 10


def test_blonde_lengths_lighter_than_their_roots_are_not_a_hat() -> None:
    rows, cols = np.mgrid[0:H, 0:W]
    lengths = (rows >= 60) & (rows < 230) & (((cols >= 92) & (cols < 114)) | ((cols >= 186) & (cols < 208)))
    photo, parsing = scene(short_hair(), (150, 115, 60), [(lengths, (185, 150, 95))])
    hair = measure_hair(photo, parsing, EYE, SHOULDER)
    assert hair is not None and hair.hat is None


def sphere(radius: float = 0.1, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(n, 3))
    return radius * points / np.linalg.norm(points, axis=1, keepdims=True) + np.array([0.0, 0.0, 1.6])


def test_the_shell_grows_the_crown_and_back_of_the_head_not_the_face() -> None:
    """A round head at eye level 1.6 m, the photo's camera in front (-y): the crown and the back move out from the
    head's centre by the volume, the face (towards the camera) stays."""
    head = sphere()
    offsets = volume_offsets(head, head[:, 2], np.ones(len(head), bool), np.array([0.0, -4.0, 1.6]), 1.6, 0.05, 0.05)
    moved = np.linalg.norm(offsets, axis=1)
    out = (head - np.array([0.0, 0.0, 1.6])) / 0.1
    crown, back, face = (out[:, 2] > 0.9) & (out[:, 1] > -0.02), (out[:, 1] > 0.9) & (out[:, 2] > 0.3), out[:, 1] < -0.9
    np.testing.assert_allclose(moved[crown], 0.05, atol=1e-3)
    np.testing.assert_allclose(moved[back], 0.05, atol=1e-3)
    assert moved[face].max() < 1e-9
    assert (np.einsum("ij,ij->i", offsets, out) >= -1e-12).all()  # outwards only
    assert not volume_offsets(head, head[:, 2], np.ones(len(head), bool), np.array([0.0, -4.0, 1.6]), 1.6,
                              0.0, 0.0).any()


def test_the_shell_takes_the_top_and_the_sides_own_thickness_and_fades_below_the_nape() -> None:
    """Curls beside the face under a hat that lies on the skull: the sides and back grow, the top does not, and the
    back of the neck below the nape takes less of it, fading out (a bell, not a helmet's rim)."""
    head = sphere()
    camera = np.array([0.0, -4.0, 1.6])
    offsets = volume_offsets(head, head[:, 2], np.ones(len(head), bool), camera, 1.6, 0.06, 0.0)
    moved = np.linalg.norm(offsets, axis=1)
    out = (head - np.array([0.0, 0.0, 1.6])) / 0.1
    top, back = out[:, 2] > 0.97, (out[:, 1] > 0.95) & (np.abs(out[:, 2]) < 0.3)
    low = (out[:, 1] > 0.5) & (head[:, 2] < 1.6 - 0.07) & (head[:, 2] > 1.6 - 0.08)
    assert moved[top].max() < 0.01 and np.allclose(moved[back], 0.06, atol=0.01)
    assert 0.005 < moved[low].mean() < 0.05


def test_short_hair_beside_a_dark_sleeve_raised_to_the_head_has_little_volume() -> None:
    """A black sleeve raised beside the head, joined to short black hair: it stands far past the skull above the
    eyes, but the hair does not fall past them, so it is not big hair."""
    rows, cols = np.mgrid[0:H, 0:W]
    sleeve = (rows >= 30) & (rows < 95) & (cols >= 60) & (cols < 112)
    photo, parsing = scene(short_hair(), BLACK, [(sleeve, BLACK)])
    hair = measure_hair(photo, parsing, EYE, SHOULDER)
    assert hair is not None and hair.drop < 0.5
    assert hair.volume <= 0.15 and hair.volume_top <= 0.15
