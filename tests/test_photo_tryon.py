"""photo.png's old-garment region on synthetic parsings: strays the part map gave to the legs, sheer sleeves, cuffs
over the hands, a wide sleeve's sides."""

from __future__ import annotations

import numpy as np

from pipeline.fitting.old_region import collar_of, cuffs_of, holes_filled, sleeve_beyond, strays_of, whole_sleeves
from pipeline.fitting.parsing import PART, Parsing
from pipeline.fitting.photo import bared_chest, neck_teeth, photo_light

H, W = 400, 300
SHIRT, JEANS, SKIN = (60, 110, 220), (40, 50, 70), (200, 150, 120)


def parsing(part: np.ndarray, clothes: np.ndarray) -> Parsing:
    person = part >= 0
    return Parsing(part=part, rendered=person, skin=person & ~clothes, clothes=clothes & person, person=person,
                   body_iou=1.0)


def shirt_over_jeans() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo, its part map and its parsed old garment: a shirt on the torso down to the hips (row 200), jeans on
    the thighs below."""
    photo = np.full((H, W, 3), 230, np.uint8)
    part = np.full((H, W), -1)
    part[50:200, 80:220] = PART["torso"]
    part[200:380, 80:220] = PART["thigh"]
    photo[50:200, 80:220] = SHIRT
    photo[200:380, 80:220] = JEANS
    old = np.zeros((H, W), bool)
    old[50:200, 80:220] = True
    return photo, part, old


def test_a_shirt_patch_labelled_as_legs_is_old_garment_and_the_jeans_are_not() -> None:
    photo, part, old = shirt_over_jeans()
    photo[200:230, 80:130] = SHIRT  # a shirt tail the part map calls thigh
    strays = strays_of(photo, parsing(part, part >= 0), old, "upper")
    assert strays[203:227, 85:125].all(), "the shirt tail over the legs is the old garment"
    assert not strays[260:380].any(), "the jeans stay"
    assert not strays[50:200].any(), "what was old already is not a stray"


def test_a_tops_lit_hem_below_the_hips_is_old_garment_but_only_in_the_band_below_them() -> None:
    lit = (80, 130, 235)  # the hem's folds catch the light: 19 Lab units off the shirt, past a stray's 12
    photo, part, old = shirt_over_jeans()
    photo[200:225, 80:220] = lit  # the hem, which the parsing cut at the hips (row 200)
    photo[234:238, 90:120] = lit  # the same colour on the legs, apart from the hem: a print, a reflection
    assert not strays_of(photo, parsing(part, part >= 0), old, "upper")[205:220].any(), "without the hips: not a stray"
    strays = strays_of(photo, parsing(part, part >= 0), old, "upper", hip_y=200.0)
    assert strays[202:223, 85:215].all(), "the lit hem just below the hips is the old top"
    assert not strays[230:380].any(), "the jeans, and the top's colour on them apart from the hem, stay"


def test_a_lace_sleeve_is_filled_whole_not_left_as_speckle() -> None:
    part = np.full((H, W), -1)
    part[60:300, 40:80] = PART["forearm"]
    part[60:300, 100:200] = PART["torso"]
    lace = np.zeros((H, W), bool)
    lace[60:300, 40:80] = (np.add.outer(np.arange(240), np.arange(40)) // 3) % 2 == 0  # skin shows between threads
    closed = whole_sleeves(parsing(part, lace), lace, "upper", np.zeros((H, W), bool))
    assert closed[70:290, 45:75].all()
    assert not closed[:, 100:200].any(), "only the arms are closed"
    assert (whole_sleeves(parsing(part, lace), lace, "lower", np.zeros((H, W), bool)) == lace).all()


def test_a_fill_keeps_the_photos_light_not_a_flat_colour() -> None:
    luma = np.linspace(60, 200, W, dtype=np.float32)
    photo = np.repeat(np.repeat(luma[None, :, None], H, axis=0), 3, axis=2).astype(np.uint8)
    region = np.zeros((H, W), bool)
    region[100:300, 50:250] = True
    light = photo_light(photo, region)
    assert light[200, 60] < 0.9 < 1.1 < light[200, 240], "darker where the photo was darker"
    assert np.allclose(photo_light(photo, np.zeros((H, W), bool)), 1.0)


def test_only_what_reaches_above_the_eyes_counts_as_hair() -> None:
    from pipeline.fitting.photo import scalp_joined

    mask = np.zeros((H, W), bool)
    mask[20:120, 60:80] = True  # long hair beside the face, from the scalp down
    mask[150:170, 100:200] = True  # headphones round the neck
    joined = scalp_joined(mask, eye_y=60)
    assert joined[20:120, 60:80].all() and not joined[150:170].any()


def test_a_jackets_cuff_over_the_hand_is_the_old_sleeve_not_the_hand() -> None:

    photo = np.full((H, W, 3), 230, np.uint8)
    part = np.full((H, W), -1)
    part[60:200, 40:80] = PART["forearm"]
    part[200:240, 40:80] = PART["hand"]
    photo[60:215, 40:80] = JEANS  # the jacket's sleeve runs on over the wrist
    photo[215:240, 40:80] = SKIN
    clothes = np.zeros((H, W), bool)
    clothes[60:215, 40:80] = True
    old = (part == PART["forearm"]) & clothes
    cuffs = cuffs_of(photo, parsing(part, clothes), old)
    assert cuffs[200:215, 40:80].all(), "the cuff over the wrist"
    assert not cuffs[215:].any() and not cuffs[:200].any(), "not the hand's skin, not the sleeve already old"


def test_a_wide_sleeve_round_a_fitted_arm_is_not_a_fat_arm_but_a_missed_arm_stays_whole() -> None:

    part = np.full((H, W), -1)
    part[60:300, 30:100] = PART["forearm"]  # a coat's wide sleeve, the arm fitted in its middle
    part[60:300, 200:260] = PART["forearm"]  # a sleeve the fitted arm misses (a raised arm elsewhere)
    rendered = np.zeros((H, W), bool)
    rendered[60:300, 55:75] = True
    person = part >= 0
    parse = Parsing(part=part, rendered=rendered, skin=np.zeros_like(person), clothes=person, person=person,
                    body_iou=1.0)
    beyond = sleeve_beyond(parse, person)
    assert beyond[100:250, 30:45].all() and beyond[100:250, 85:100].all(), "the sleeve's sides: background"
    assert not beyond[:, 52:78].any(), "the fitted arm and its ease stay arm"
    assert not beyond[:, 200:260].any(), "a sleeve the fitted arm misses is the arm's best guess"


def test_a_stray_shirt_tail_is_refilled_whole_but_a_ring_of_strays_does_not_take_the_legs() -> None:

    patch = np.zeros((H, W), bool)
    patch[200:240, 80:140] = True
    patch[210:220, 100:110] = False  # a print's hole in the shirt tail
    assert holes_filled(patch)[210:220, 100:110].all()
    ring = np.zeros((H, W), bool)
    ring[100:380, 40:260] = True
    ring[110:370, 50:250] = False  # strays all round the legs: what they enclose is not theirs
    assert not holes_filled(ring)[150:350, 60:240].any()


def test_an_arm_reaches_as_wide_as_an_adult_arm_round_its_line_at_the_photos_scale() -> None:
    from pipeline.fitting.old_region import ARM_HALF_WIDTH_M, arm_reach, pixels_per_metre
    from pipeline.geometry import Camera

    keypoints = np.zeros((17, 2))
    keypoints[[5, 7, 9]] = [(100, 100), (100, 300), (100, 500)]  # the left arm hanging straight down
    keypoints[[6, 8, 10]] = [(400, 100), (400, 300), (400, 500)]
    reach = arm_reach(keypoints, 1000.0, (600, 500))
    for row, half in ((100, ARM_HALF_WIDTH_M[0]), (300, ARM_HALF_WIDTH_M[1]), (500, ARM_HALF_WIDTH_M[2])):
        width = int(reach[row, :250].sum())
        assert abs(width - (2 * half * 1000 + 1)) <= 3  # at the shoulder, the elbow and the wrist
    assert not reach[:, 200:300].any()  # nothing between the arms
    camera = Camera(focal_px=800.0, cx=0.0, cy=0.0, rotation=np.eye(3), translation=np.array([0.0, 0.0, 4.0]),
                    image_size=(10, 10))
    assert abs(pixels_per_metre(camera, np.zeros((3, 3))) - 200.0) < 1e-9  # 800 px focal, 4 m away
    assert pixels_per_metre(camera, np.zeros((0, 3))) == 0.0


def test_a_cuffs_band_is_the_sleeve_even_where_the_whole_hand_was_parsed_as_clothes() -> None:
    photo = np.full((H, W, 3), 230, np.uint8)
    part = np.full((H, W), -1)
    part[60:200, 40:80] = PART["forearm"]
    part[200:300, 40:80] = PART["hand"]
    photo[60:212, 40:80] = JEANS  # the sleeve and its knitted cuff's band, 12 px over the wrist
    photo[204:206, 40:80] = (52, 62, 86)  # the ribbing's lighter stitches
    photo[212:300, 40:80] = (110, 75, 55)  # a dark hand, parsed as clothes with the cuff: one piece, mostly hand
    clothes = np.zeros((H, W), bool)
    clothes[60:300, 40:80] = True
    old = (part == PART["forearm"]) & clothes
    cuffs = cuffs_of(photo, parsing(part, clothes), old)
    assert cuffs[200:212, 40:80].mean() > 0.95, "the cuff's band, its lighter stitches included"
    assert not cuffs[214:].any(), "not the hand"


def neck_photo(collar_rgb: tuple[int, int, int]) -> tuple[np.ndarray, Parsing, np.ndarray]:
    """A head over a shirt whose collar, in `collar_rgb`, stands on the neck (rows 120-150), which the part map gives
    to the head; the eyes at row 60, the shoulders at 160."""
    photo = np.full((H, W, 3), 230, np.uint8)
    part = np.full((H, W), -1)
    part[20:150, 110:190] = PART["head"]
    part[150:350, 60:240] = PART["torso"]
    photo[20:150, 110:190] = SKIN
    photo[150:350, 60:240] = SHIRT
    photo[120:150, 115:185] = collar_rgb
    photo[130:132, 115:185] = (250, 250, 250)  # a check's white line, neither skin nor clothes
    clothes = (part >= 0) & np.all(photo != SKIN, axis=2)
    clothes[130:132] = False
    parse = parsing(part, clothes)
    parse = Parsing(part=parse.part, rendered=parse.rendered, skin=parse.skin & np.all(photo == SKIN, axis=2),
                    clothes=parse.clothes, person=parse.person, body_iou=1.0)
    return photo, parse, (part == PART["torso"]) & clothes


def test_a_shirts_collar_on_the_neck_is_the_old_garment_but_not_the_face_nor_hair_of_its_colour() -> None:
    photo, parse, old = neck_photo((50, 100, 210))  # the shirt's blue
    collar = collar_of(photo, parse, old, 60.0, 160.0)
    assert collar[121:150, 116:184].mean() > 0.97, "the collar, its white line included"
    assert not collar[:110].any() and not (collar & parse.skin).any(), "not the face or skin"
    assert not collar_of(photo, parse, old, 60.0, 160.0, hair_rgb=np.array(SHIRT)).any(), \
        "hair of the shirt's colour: the collar is not told from it"
    photo, parse, old = neck_photo((200, 40, 40))  # a red scarf on a blue shirt: an accessory, kept
    assert not collar_of(photo, parse, old, 60.0, 160.0)[121:150].any()


def test_the_head_parts_teeth_at_the_neck_are_kept_with_it_and_only_above_the_shoulders() -> None:
    part = np.full((H, W), -1)
    part[20:300, 60:240] = PART["torso"]
    keep = np.zeros((H, W), bool)
    keep[20:140, 100:200] = True
    for x in range(100, 200, 8):  # the head's sawtooth edge: 4 px teeth with 4 px gaps
        keep[140:146, x:x + 4] = True
    teeth = neck_teeth(keep, parsing(part, part >= 0), shoulder_y=170.0)
    assert teeth[140:144, 110:190].any(axis=0).sum() >= 30, "the gaps between the teeth are kept"
    assert not teeth[150:].any(), "nothing below the teeth"
    assert not neck_teeth(keep, parsing(part, part >= 0), shoulder_y=130.0).any(), "nothing below the shoulders"


def test_a_bared_chest_is_skin_and_a_bared_waist_continues_the_lower_garment() -> None:
    torso = np.zeros((H, W), bool)
    torso[100:300, 60:240] = True
    chest = bared_chest(torso, shoulder_y=100.0, hip_y=300.0)
    assert chest[100:200, 60:240].all() and not chest[200:].any()
    assert not bared_chest(torso, None, 300.0).any()


def test_no_skin_to_test_is_no_skin_not_an_opencv_error() -> None:
    from pipeline.fitting.parsing import skin_range

    assert skin_range(np.zeros((0, 3), np.uint8)).shape == (0,)
