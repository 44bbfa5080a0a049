"""photo.png under a new top: a dress's skirt becomes a plain lower garment; trousers of the top's colour stay."""

from __future__ import annotations

import numpy as np

from pipeline.fitting.onepiece import PLAIN_LOWER, OnePiece, plain_lower, replacement
from pipeline.fitting.parsing import PART, Parsing, lab8
from pipeline.fitting.worn import decide

H, W = 400, 300
HIP, SHOULDER = 200.0, 80.0
DRESS, SKIN, BACK = (30, 30, 32), (200, 150, 120), (235, 235, 235)


def body() -> tuple[np.ndarray, np.ndarray]:
    """The fitted body's parts and silhouette: a torso, two legs with a gap between them."""
    part = np.full((H, W), -1)
    part[60:200, 100:200] = PART["torso"]
    part[200:380, 100:145] = PART["thigh"]
    part[200:380, 155:200] = PART["thigh"]
    return part, part >= 0


def parse(photo: np.ndarray, person: np.ndarray, part: np.ndarray, rendered: np.ndarray) -> Parsing:
    """The person past the body takes the nearest part (here: the gap between the legs is thigh)."""
    part = part.copy()
    part[person & (part < 0)] = PART["thigh"]
    skin = person & (np.abs(photo.astype(int) - SKIN).max(axis=2) < 10)
    return Parsing(part=np.where(person, part, -1), rendered=rendered, skin=skin, clothes=person & ~skin,
                   person=person, body_iou=1.0)


def one_piece_below(photo: np.ndarray, parsing: Parsing, old: np.ndarray, new: np.ndarray, hip: float,
                    shoulder: float) -> OnePiece | None:
    """What photo.png makes of the old garment below the hips: the decision, then its replacement."""
    worn = decide(photo, parsing, old, None, hip, shoulder)
    if worn.below is None or worn.centres is None:
        return None
    return replacement(photo, worn.below, worn.centres, worn.lower, new)


def old_top() -> np.ndarray:
    old = np.zeros((H, W), bool)
    old[60:200, 100:200] = True
    return old


def test_a_dress_skirt_under_a_new_top_is_found_and_becomes_a_plain_unlike_colour() -> None:
    part, rendered = body()
    photo = np.full((H, W, 3), BACK, np.uint8)
    person = rendered.copy()
    person[200:300, 90:210] = True  # the skirt: over both legs and the gap between them, a little wider
    photo[person] = DRESS
    photo[300:380] = np.where(person[300:380, :, None], SKIN, BACK)  # bare legs below the hem
    new = np.zeros((H, W), bool)
    new[60:180, 100:200] = True  # the new top ends above the hips
    piece = one_piece_below(photo, parse(photo, person, part, rendered), old_top(), new, HIP, SHOULDER)
    assert piece is not None
    assert piece.below[205:295, 95:205].all(), "the whole skirt, the gap between the legs included"
    assert not piece.below[:180].any() and not piece.below[305:].any(), "not the new top, not the bare legs"
    distance = np.linalg.norm(lab8(piece.colour.reshape(1, 1, 3).astype(np.uint8))[0, 0] - lab8(
        np.asarray(DRESS, np.uint8).reshape(1, 1, 3))[0, 0])
    assert distance >= 30, "the plain lower garment is unlike the dress"


def test_trousers_of_the_tops_colour_are_the_persons_own() -> None:
    part, rendered = body()
    photo = np.full((H, W, 3), BACK, np.uint8)
    photo[rendered] = DRESS  # a black top and black trousers: the gap between the legs is background
    new = np.zeros((H, W), bool)
    new[60:180, 100:200] = True
    parsing = parse(photo, rendered.copy(), part, rendered)
    assert one_piece_below(photo, parsing, old_top(), new, HIP, SHOULDER) is None


def test_a_skirt_unlike_the_old_top_is_the_persons_own() -> None:
    part, rendered = body()
    photo = np.full((H, W, 3), BACK, np.uint8)
    person = rendered.copy()
    person[200:300, 90:210] = True
    photo[person] = (150, 40, 40)  # a red skirt
    photo[60:200, 100:200] = DRESS  # under a black top
    photo[300:380] = np.where(person[300:380, :, None], SKIN, BACK)
    new = np.zeros((H, W), bool)
    new[60:180, 100:200] = True
    assert one_piece_below(photo, parse(photo, person, part, rendered), old_top(), new, HIP, SHOULDER) is None


def test_the_plain_colour_avoids_the_old_and_the_new_garments_colours() -> None:
    charcoal = lab8(np.asarray(PLAIN_LOWER[0][1], np.uint8).reshape(1, 1, 3)).reshape(1, 3)
    navy = lab8(np.asarray(PLAIN_LOWER[1][1], np.uint8).reshape(1, 1, 3)).reshape(1, 3)
    assert plain_lower(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))[0] == PLAIN_LOWER[0][0]
    name, _ = plain_lower(charcoal, navy)
    assert name not in (PLAIN_LOWER[0][0], PLAIN_LOWER[1][0])


def test_the_bench_takes_the_skin_tone_from_the_cheeks_not_the_hair() -> None:
    from bench.look import cheeks

    part = np.full((H, W), -1)
    part[20:120, 100:200] = PART["head"]
    person = part >= 0
    parsing = Parsing(part=part, rendered=person, skin=person, clothes=~person, person=person, body_iou=1.0)
    keypoints = np.zeros((17, 2))
    keypoints[0] = (150, 80)  # the nose
    keypoints[1], keypoints[2] = (135, 65), (165, 65)  # the eyes
    face = cheeks(parsing, keypoints, PART["head"])
    assert face[70:90, 140:160].all(), "below the eyes, round the nose"
    assert not face[:65].any(), "not the forehead or the hair above the eyes"
    assert not face[:, :120].any() and not face[:, 181:].any(), "not the hair beside the face"


def test_a_crop_top_over_trousers_cut_at_the_hips_is_not_a_dress() -> None:
    part, rendered = body()
    photo = np.full((H, W, 3), BACK, np.uint8)
    person = rendered.copy()
    person[200:300, 90:210] = True  # wide trousers, legs together: the outline stands past the legs
    photo[person] = DRESS
    photo[60:150, 100:200] = (150, 30, 40)  # a red crop top; the trousers' waistband reaches above the hips
    new = np.zeros((H, W), bool)
    new[60:140, 100:200] = True
    old = old_top()
    parsing = parse(photo, person, part, rendered)
    assert one_piece_below(photo, parsing, old, new, HIP, SHOULDER) is None


def test_the_bench_tells_skin_from_a_cap_or_black_hair() -> None:
    from pipeline.fitting.parsing import skin_range as skin_like  # what bench.look tests skin with

    pixels = np.asarray([[224, 172, 140], [141, 85, 36], [90, 56, 40], [20, 20, 22], [60, 60, 150]], np.uint8)
    assert skin_like(pixels).tolist() == [True, True, True, False, False]


TROUSERS = (110, 90, 60)


def coat_photo() -> tuple[np.ndarray, Parsing]:
    """A dark long coat over the torso and down to the calves, closing the gap between the legs; brown trousers
    on both legs below its hem."""
    part, rendered = body()
    photo = np.full((H, W, 3), BACK, np.uint8)
    person = rendered.copy()
    person[200:320, 90:210] = True  # the coat's tails, wider than the legs and across the gap
    photo[person] = DRESS
    photo[320:380] = np.where(person[320:380, :, None], TROUSERS, BACK)
    return photo, parse(photo, person, part, rendered)


def test_a_long_coat_over_trousers_is_a_coat_and_its_legs_continue_the_trousers() -> None:
    photo, parsing = coat_photo()
    worn = decide(photo, parsing, old_top(), None, HIP, SHOULDER)
    assert worn.kind == "coat" and not worn.long_skirt
    assert worn.lower is not None and np.abs(worn.lower - TROUSERS).max() < 3
    new = np.zeros((H, W), bool)
    new[60:180, 100:200] = True
    assert worn.below is not None and worn.centres is not None
    piece = replacement(photo, worn.below, worn.centres, worn.lower, new)
    assert piece is not None and piece.coat and piece.name == "trousers"


def test_a_dress_over_bare_legs_is_a_one_piece_not_a_coat() -> None:
    part, rendered = body()
    photo = np.full((H, W, 3), BACK, np.uint8)
    person = rendered.copy()
    person[200:300, 90:210] = True
    photo[person] = DRESS
    photo[300:380] = np.where(person[300:380, :, None], SKIN, BACK)
    worn = decide(photo, parse(photo, person, part, rendered), old_top(), None, HIP, SHOULDER)
    assert worn.kind == "one_piece" and worn.lower is None


def test_black_trousers_under_a_black_top_are_separates() -> None:
    part, rendered = body()
    photo = np.full((H, W, 3), BACK, np.uint8)
    photo[rendered] = DRESS
    worn = decide(photo, parse(photo, rendered.copy(), part, rendered), old_top(), None, HIP, SHOULDER)
    assert worn.kind == "separates" and worn.below is None and not worn.long_skirt


def test_a_coats_tails_off_the_legs_are_background_continued_across() -> None:
    from pipeline.fitting.onepiece import background_across, coat_tails

    photo, parsing = coat_photo()
    photo[:, :90] = (200, 200, 200)  # a background darker on the left than on the right
    photo[:, 210:] = (240, 240, 240)
    coat = np.zeros((H, W), bool)
    coat[200:320, 90:210] = True
    tails = coat_tails(parsing, coat, HIP)
    assert tails[200:320, 145:155].all(), "between the legs"
    assert tails[200:320, 90:100].all() and tails[200:320, 200:210].all(), "beside the legs"
    assert not tails[200:320, 100:145].any() and not tails[200:320, 155:200].any(), "not the legs"
    across = background_across(photo, parsing.person, tails)
    middle = across[260, 150]
    assert 205 < middle[0] < 235, "between the two sides' background"
    assert across[260, 92, 0] < across[260, 208, 0], "nearer each side's own"
