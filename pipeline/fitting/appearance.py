"""The person's own colours where the photo says little: skin and hair tones, the back of the head, and bare arms
and legs where the person's old clothes showed.

- Skin: the median of the seen cheek and nose texels (the head, below the eyes, facing the camera), else of the
  seen hands.
- Hair: the head texels seen above the eyes split into two colour clusters (k-means in Lab); hair is the cluster
  farther from the skin, when it is clearly different (else the head is taken as bald: skin).
- Head: texels turned away from the camera get hair on the back of the head down to the ears' lower edge and
  on the crown, skin on the neck and the sides of the face; hairline and photo edges blend over a band of
  heights and facing angles, so no seam shows.
  The photo's colours at grazing angles are mostly hair edge and background, which made the patchwork.
- Limbs: where the new garment replaces the person's clothes (upper: arms; lower: legs; full: both), arm and
  leg texels outside the new garment whose colour is far from the skin tone (the old sleeves or trousers) turn
  to skin, blended by how far they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.fitting import regions
from pipeline.fitting.parsing import skin_range
from pipeline.wardrobe.appearance import kmeans

HEAD, HAND = regions.PARTS.index("head"), regions.PARTS.index("hand")
ARMS = (regions.PARTS.index("upper_arm"), regions.PARTS.index("forearm"), HAND)  # a sleeve's cuff reaches the hand
LEGS = (regions.PARTS.index("thigh"), regions.PARTS.index("shin"))
REPLACED = {"upper": ARMS, "lower": LEGS, "full": ARMS + LEGS}  # limbs whose old clothes the garment replaces
HEAD_PHOTO_FACING = (0.12, 0.35)  # head texels take the photo above the upper cosine, made-up colour below the lower
HAIR_BELOW_EYES_M = 0.06  # hair comes down the back of the head to this far below the eyes (the ears' lower edge)
HAIR_EDGE_M = 0.03  # the hairline at the nape and the temples blends over this height
HAT_FROM_M = 0.03  # the crown (hair, or a hat) from this far above the eyes
HAIR_BACK_FACING = (-0.05, 0.2)  # below the forehead, hair where the head faces away (cosine), skin towards the sides
NOT_SKIN_DELTA = (18.0, 32.0)  # Lab distance from the skin tone: kept below the first, skin above the second
MIN_SAMPLES = 20
LEG_END_M = 0.05  # the lowest legs the photo shows: this far above its lowest seen leg texel ...
LEG_END_SKIN = 0.3  # ... are bare when this share of them is skin
HAIR_SEED = 0  # the hair clusters' k-means++ starts: a fixed seed, so the same photo gives the same hair


@dataclass(frozen=True)
class Hair:
    """The hair the photo shows (`pipeline.fitting.photo.measure_hair`): its colour and how far below the eyes it
    falls and how wide it is, both in eye-to-shoulder lengths."""

    colour: np.ndarray  # (3,) float RGB
    drop: float  # 0: at the eyes, 1: down to the shoulders, 2: twice as far
    half_width: float
    volume: float = 0.0  # how far it stands past the fitted skull beside it, above the eyes (`pipeline.fitting.hair`)
    volume_top: float = 0.0  # ... and over its top
    hat: np.ndarray | None = None  # (3,) float RGB of a hat on the crown, the hair being what shows under it


@dataclass(frozen=True)
class Tones:
    skin: np.ndarray | None  # (3,) float RGB
    hair: np.ndarray | None  # (3,) float RGB; None when no hair is seen (then the head takes skin)


def lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    pixels = np.clip(np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0, 0, 1)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2Lab).reshape(-1, 3)


CHEEK_DELTA = 12.0  # Lab distance between the texels' face tone and the cheeks' over which the cheeks' is taken
CHEEK_SKIN_SHARE = 0.3  # the cheeks' box must be at least this share skin-coloured for its tone to be taken
MIN_CHEEK_PIXELS = 50


def cheek_box(shape: tuple[int, ...], keypoints_2d: np.ndarray) -> np.ndarray:
    """(H, W) bool: the face round the nose (COCO keypoints 0 to 2): below the eyes, down as far below the nose as
    it is below them, within an eye-to-eye distance of it."""
    kp = np.asarray(keypoints_2d, np.float64)
    nose, eyes = kp[0], kp[[1, 2]]
    eye_y, half = float(eyes[:, 1].mean()), max(float(abs(eyes[0, 0] - eyes[1, 0])), 4.0)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return np.asarray((rows > eye_y) & (rows < nose[1] + max(nose[1] - eye_y, 2.0)) & (np.abs(cols - nose[0]) < half))


def cheek_skin(rgb: np.ndarray, mask: np.ndarray, keypoints_2d: np.ndarray) -> np.ndarray | None:
    """(3,) float RGB: the skin of the face round the nose in the photo itself (`cheek_box`: the person's pixels
    there in the YCrCb skin range), or
    None when too little of it is skin (a back view, a mask). The texels' face tone (`tones`) follows the fitted
    head, which on a turned or bowed head samples hair, beard or shadow: a light face's arms came out dark brown."""
    kp = np.asarray(keypoints_2d, np.float64)
    if len(kp) < 3 or not np.isfinite(kp[:3]).all():
        return None
    pixels = np.asarray(rgb)[cheek_box(np.asarray(mask).shape, kp) & (np.asarray(mask) > 0.5)]
    skin = skin_range(pixels)
    if skin.sum() < MIN_CHEEK_PIXELS or skin.mean() < CHEEK_SKIN_SHARE:
        return None
    return np.median(pixels[skin], axis=0).astype(np.float64)


def off_skin(texels_tone: np.ndarray | None, cheeks: np.ndarray | None) -> bool:
    """Whether the cheeks' tone in the photo (`cheek_skin`) should replace the texels' face tone (`tones`): there is
    none, or they disagree by over CHEEK_DELTA Lab units. On standing studio photos the two agree within about 6
    units and the texels' stays (the views' faces, and their identity figures, unchanged); on the hard photos the
    misses were 12 to 36 (a turned head's hair, a grey beard, a hand on the cheek)."""
    if cheeks is None:
        return False
    if texels_tone is None:
        return True
    return float(np.linalg.norm(lab(texels_tone) - lab(cheeks))) > CHEEK_DELTA


def tones(colour: np.ndarray, seen: np.ndarray, facing: np.ndarray, part: np.ndarray, height: np.ndarray,
          eye_level: float | None) -> Tones:
    """Skin and hair colours from the texels the photo shows (see the module docstring)."""
    head = (part == HEAD) & seen
    skin = None
    if eye_level is not None:
        face = head & (facing > 0.6) & (height < eye_level - 0.01) & (height > eye_level - 0.07)
        if face.sum() >= MIN_SAMPLES:
            skin = np.median(colour[face], axis=0)
    hands = (part == HAND) & seen & (facing > 0.3)
    if skin is None and hands.sum() >= MIN_SAMPLES:
        skin = np.median(colour[hands], axis=0)
    hair = None
    if eye_level is not None:
        above = head & (facing > HEAD_PHOTO_FACING[0]) & (height > eye_level + 0.02)
        if above.sum() >= 2 * MIN_SAMPLES:
            hair = _hair_cluster(colour[above], skin)
    return Tones(skin, hair)


def _hair_cluster(samples: np.ndarray, skin: np.ndarray | None) -> np.ndarray | None:
    """The median colour of the cluster farther from the skin, when it differs clearly from the skin."""
    samples_lab = lab(samples)
    labels, centres = kmeans(samples_lab, 2, np.random.default_rng(HAIR_SEED), attempts=3, max_iter=20, eps=0.5)
    if skin is None:  # no skin to tell them apart: the darker cluster
        pick = int(np.argmin(centres[:, 0]))
    else:
        pick = int(np.argmax(np.linalg.norm(centres - lab(skin)[0], axis=1)))
        if np.linalg.norm(centres[pick] - lab(skin)[0]) < NOT_SKIN_DELTA[0]:
            return None
    members = samples[labels == pick]
    return np.median(members, axis=0) if len(members) >= MIN_SAMPLES else None


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def paint_head(colour: np.ndarray, known: np.ndarray, seen: np.ndarray, facing: np.ndarray, part: np.ndarray,
               height: np.ndarray, eye_level: float | None, found: Tones, drop_m: float | None = None,
               made: np.ndarray | None = None, hat: np.ndarray | None = None, shell: np.ndarray | None = None
               ) -> None:
    """In place: the head's texels turned from the camera take hair (above the ears' lower edge, or as far down
    as the photo's hair falls, `drop_m` below the eyes) or skin; with a `hat` (RGB), the crown takes the hat's
    colour and the hair shows under it. `shell` (N,): each texel's share of the hair's volume
    (`pipeline.fitting.hair.shell_share`): moved off the skull, the photo's colour there is not its own, so it
    takes the hair's in that share. `made` (N,), when given, is raised to the share of each texel's colour that was
    made up (`pipeline.fitting.unseen` gives those grain and shade)."""
    skin = found.skin if found.skin is not None else found.hair
    hair = found.hair if found.hair is not None else skin
    if skin is None or hair is None:  # neither tone was found
        return
    head = part == HEAD
    eye = eye_level if eye_level is not None else float(np.percentile(height[head], 60))
    reach = max(HAIR_BELOW_EYES_M, drop_m or 0.0)
    below_nape = _ramp(height, eye - reach - HAIR_EDGE_M / 2, eye - reach + HAIR_EDGE_M / 2)
    crown = _ramp(height, eye + HAT_FROM_M, eye + HAT_FROM_M + HAIR_EDGE_M)
    back = 1.0 - _ramp(facing, *HAIR_BACK_FACING)
    share = np.clip(np.maximum(crown, back * below_nape), 0.0, 1.0)
    if shell is not None:
        share = np.maximum(share, shell)
    share = share[:, None]
    made_up = share * hair[None, :] + (1 - share) * skin[None, :]
    if hat is not None:
        made_up = crown[:, None] * np.asarray(hat, np.float64)[None, :] + (1 - crown[:, None]) * made_up
    made_up = made_up.astype(np.float32)
    keep = np.where(seen, _ramp(facing, *HEAD_PHOTO_FACING), 0.0)
    if shell is not None:
        keep = keep * (1.0 - shell)
    keep = keep[:, None]
    colour[head] = keep[head] * colour[head] + (1 - keep[head]) * made_up[head]
    known[head] = True
    if made is not None:
        made[head] = np.maximum(made[head], 1 - keep[head, 0])


LONG_HAIR_FROM = 0.5  # hair seen falling this far (in eye-to-shoulder lengths) in front is long ...
LONG_HAIR_BEHIND = 0.7  # ... and falls this much further behind the shoulders, where the photo cannot see it


def back_drop(drop: float) -> float:
    """How far below the eyes the hair falls on the back, from how far the photo shows it falling in front."""
    return drop + LONG_HAIR_BEHIND if drop >= LONG_HAIR_FROM else drop


LONG_HAIR_FACING = (-0.1, 0.25)  # long hair covers the back where the surface faces away from the photo (cosine)


def paint_long_hair(colour: np.ndarray, known: np.ndarray, seen: np.ndarray, facing: np.ndarray, part: np.ndarray,
                    height: np.ndarray, x: np.ndarray, eye_level: float, hair: np.ndarray, drop_m: float,
                    half_width_m: float, made: np.ndarray | None = None, hat: bool = False) -> None:
    """In place: hair that falls below the head in the photo covers the back of the neck and torso the photo does
    not see, as far down as it falls and as wide as it is there, blended at its edges (the views show long hair at
    180 instead of a crop). Under a `hat` the crown is left as `paint_head` made it (the hat's colour)."""
    if drop_m <= HAIR_BELOW_EYES_M:
        return
    head = part == HEAD
    centre = float(np.median(x[head])) if head.any() else float(np.median(x))
    torso = np.isin(part, (HEAD, regions.PARTS.index("torso")))
    vertical = _ramp(height, eye_level - drop_m, eye_level - drop_m + HAIR_EDGE_M)
    across = 1.0 - _ramp(np.abs(x - centre), half_width_m, half_width_m + HAIR_EDGE_M)
    back = 1.0 - _ramp(facing, *LONG_HAIR_FACING)
    share = np.where(torso & ~seen, vertical * across * back, 0.0)
    if hat:
        share *= np.where(head, 1.0 - _ramp(height, eye_level + HAT_FROM_M, eye_level + HAT_FROM_M + HAIR_EDGE_M), 1.0)
    share = share[:, None]
    colour[:] = (1 - share) * colour + share * np.asarray(hair, np.float32)[None, :]
    known |= share[:, 0] > 0.5
    if made is not None:
        np.maximum(made, share[:, 0], out=made)


def legs_end_bare(colour: np.ndarray, seen: np.ndarray, part: np.ndarray, height: np.ndarray,
                  skin: np.ndarray | None) -> bool:
    """Whether the lowest legs the photo shows (within `LEG_END_M` of the lowest seen leg texel) are at least
    `LEG_END_SKIN` skin: bare legs below shorts or a skirt's hem, which a photo cut there would go on showing."""
    legs = seen & np.isin(part, LEGS)
    if skin is None or legs.sum() < MIN_SAMPLES:
        return False
    lowest = legs & (height <= height[legs].min() + LEG_END_M)
    delta = np.linalg.norm(lab(colour[lowest]) - lab(skin)[0], axis=1)
    return float((delta < NOT_SKIN_DELTA[0]).mean()) >= LEG_END_SKIN


def bare_limbs(colour: np.ndarray, known: np.ndarray, part: np.ndarray, on_garment: np.ndarray, category: str,
               found: Tones, made: np.ndarray | None = None) -> float:
    """In place: old clothes on the limbs the garment replaces turn to skin. Returns the share of those limb
    texels changed (for the manifest); `made` (N,), when given, is raised to the share of skin put in."""
    if found.skin is None:
        return 0.0
    limbs = np.isin(part, REPLACED[category]) & ~on_garment & known
    if not limbs.any():
        return 0.0
    delta = np.linalg.norm(lab(colour[limbs]) - lab(found.skin)[0], axis=1)
    amount = _ramp(delta, *NOT_SKIN_DELTA)[:, None]
    colour[limbs] = (1 - amount) * colour[limbs] + amount * found.skin[None, :].astype(np.float32)
    if made is not None:
        made[limbs] = np.maximum(made[limbs], amount[:, 0])
    return float((amount > 0.5).mean())
