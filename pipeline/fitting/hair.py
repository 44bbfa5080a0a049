"""The hair's volume and a hat over it, from the photo, and the shell round the head that carries the volume round
the turntable.

- Volume (`volume_of`): how far the photo's hair stands past the fitted skull beside it above the eyes and over
  its top (an afro, curls, a bun), in eye-to-shoulder lengths: a high percentile of the hair pixels' distance to
  the skull's silhouette there.
- Hat (`hat_over`): the crown's colour (`pipeline.fitting.photo.crown_of`) far from the colour of what stands past
  the skull beside the face below it, and in a colour hair has not (`hair_coloured`): the crown is a hat and the
  hair is what shows under it (a red elf's hat over black curls). A hat in a hair colour (a black or grey beanie)
  or with no hair showing under it cannot be told from hair here and stays the hair's colour.
- Shell (`volume_offsets`): the head's vertices under the hair move out from the skull's centre by the volume:
  the crown and the sides and back of the head (as far down as the nape), not the face (the directions towards the
  photo's camera), smoothly between, so the views' silhouette follows the photo's hair at every angle and the
  texture (the hair's colour and strands, `pipeline.fitting.appearance`) rides on it. The body's topology and UVs
  are kept: the GLB and every downstream step draw the same mesh.

cv2 is imported inside functions only.
"""

from __future__ import annotations

import numpy as np

VOLUME_PERCENTILE = 90  # of the hair pixels' distances past the skull above the eyes ...
VOLUME_MIN = 0.06  # ... under this (eye-to-shoulder lengths, about 1.5 cm) the hair lies on the skull: no shell
VOLUME_MAX = 0.6  # ... and at most this (about 14 cm: a big afro); a loose mask or a wall is not more hair
VOLUME_FALLS, VOLUME_SHORT = 0.5, 0.15  # hair falling less than the first below the eyes stands at most the second
VOLUME_SIDE_FROM = 0.3  # beside the skull: its rows from this share of the way from its top to the eyes
HAT_DELTA = 45.0  # Lab units (8-bit scale): the crown this far from the hair beside the face below it is a hat,
HAIR_HUES = (38.0, 100.0)  # when its colour is none of hair's: hair's hues (Lab degrees: red-brown to yellow) ...
HAIR_CHROMA = (25.0, 65.0)  # ... at a chroma under the second (Lab), or any hue under the first (black, grey)
HAT_HAIR_FROM = -0.1  # the hair under a hat: what stands past the skull from this far above the eyes down (in
HAT_HAIR_MIN = 150  # eye-to-shoulder lengths), at least this many pixels of it
SHELL_FACING = (0.05, 0.35)  # the head's directions towards the photo's camera (cosine): full shell below the
# first, none above the second (the face and the forehead keep the fitted skull and the photo's pixels)
SHELL_CROWN_M = (0.0, 0.04)  # above the eyes the shell ramps in over this height (metres, rest pose) ...
SHELL_NAPE_M = (-0.06, -0.02)  # ... and on the sides and back of the head from the ears' lower edge up, where the
SHELL_BACK_FACING = (0.1, 0.4)  # head faces the photo's camera less than these (cosine)
SHELL_FALL = 1.5  # below the nape the shell fades out over this many times its thickness round the sides


def volume_of(hair: np.ndarray, skull: np.ndarray, eye_y: float, unit: float) -> tuple[float, float]:
    """How far the hair (bool (H, W)) stands past the fitted skull (bool (H, W)) beside it above the eyes and over its
    top, in eye-to-shoulder lengths of `unit` pixels (each 0 when it lies on the skull there)."""
    import cv2

    if not skull.any():
        return 0.0, 0.0
    rows = np.arange(hair.shape[0])[:, None]
    top = float(np.nonzero(skull)[0].min())
    distance = cv2.distanceTransform((~skull).astype(np.uint8), cv2.DIST_L2, 5)
    past = hair & ~skull

    def thickness(where: np.ndarray) -> float:
        if where.sum() < 30:
            return 0.0
        volume = float(np.percentile(distance[where], VOLUME_PERCENTILE)) / unit
        return 0.0 if volume < VOLUME_MIN else min(volume, VOLUME_MAX)

    beside = past & (rows >= top + VOLUME_SIDE_FROM * (eye_y - top)) & (rows < eye_y)
    return thickness(beside), thickness(past & (rows < top))


def short_volume(volume: tuple[float, float], drop: float) -> tuple[float, float]:
    """The (side, top) volume, at most `VOLUME_SHORT` each for hair that does not fall past the eyes (`drop` under
    `VOLUME_FALLS`, eye-to-shoulder lengths): big hair falls beside the face too; short hair's "volume" beside a
    skull is a raised sleeve, a hood or a barbell's plates of its colour."""
    if drop >= VOLUME_FALLS:
        return volume
    return min(volume[0], VOLUME_SHORT), min(volume[1], VOLUME_SHORT)


def hat_over(crown: np.ndarray, outside: np.ndarray, lab: np.ndarray, eye_y: float, unit: float
             ) -> np.ndarray | None:
    """(H, W) bool: the hair under a hat, when the crown (bool (H, W)) is one: what stands past the skull beside
    the face (`outside`, from `HAT_HAIR_FROM` above the eyes down) far from the crown's colour (Lab image `lab`)
    and alike itself. None when the crown is the hair (its colour runs on down beside the face, or nothing does)."""
    rows = np.arange(crown.shape[0])[:, None]
    crown_lab = np.median(lab[crown], axis=0)
    if hair_coloured(crown_lab):  # a grey beanie over grey hair, or auburn hair past a dull wall: the hair's
        return None
    below = outside & ~crown & (rows >= eye_y + HAT_HAIR_FROM * unit)
    under = below & (np.linalg.norm(lab - crown_lab, axis=2) > HAT_DELTA)
    if under.sum() < HAT_HAIR_MIN or under.sum() < 0.5 * below.sum():
        return None
    return under & (np.linalg.norm(lab - np.median(lab[under], axis=0), axis=2) < HAT_DELTA / 2)


def hair_coloured(lab8: np.ndarray) -> bool:
    """Whether a colour (Lab, 8-bit scale: L * 2.55, a + 128, b + 128) is one hair has: black, grey, white, browns,
    blonde, auburn and ginger; not a red elf's hat, a blue or a green one."""
    a, b = float(lab8[1]) - 128.0, float(lab8[2]) - 128.0
    chroma, hue = float(np.hypot(a, b)), float(np.degrees(np.arctan2(b, a)))
    return chroma < HAIR_CHROMA[0] or (HAIR_HUES[0] <= hue <= HAIR_HUES[1] and chroma < HAIR_CHROMA[1])


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def skull_centre(vertices: np.ndarray, height: np.ndarray, head: np.ndarray, eye_level: float) -> np.ndarray | None:
    """(3,) the middle of the head's vertices (`head` (V,) bool) above the nape (rest heights `height`), the point the
    shell grows out from; None when the head has too few."""
    skull = head & (height > eye_level + SHELL_NAPE_M[0])
    if skull.sum() < 10:
        return None
    v = np.asarray(vertices, dtype=np.float64)[skull]
    return np.asarray((v.min(axis=0) + v.max(axis=0)) / 2)


def _outward(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    out = np.asarray(points, dtype=np.float64) - centre
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def shell_share(points: np.ndarray, height: np.ndarray, centre: np.ndarray, camera_centre: np.ndarray,
                eye_level: float, side_m: float = 0.0) -> np.ndarray:
    """(N,) in [0, 1]: how much of the shell's volume the head's points (posed (N, 3), rest heights `height`) take:
    1 where the hair is (the crown above the eyes, the sides and back of the head down to the nape, fading out
    below it over `SHELL_FALL` times the volume round the sides, `side_m`: voluminous hair falls round the head as
    a bell, not a helmet's rim), 0 where the head faces the photo's camera at `camera_centre` (the face), blended
    between."""
    out = _outward(points, centre)
    towards = np.asarray(camera_centre, dtype=np.float64) - centre
    facing = out @ (towards / max(float(np.linalg.norm(towards)), 1e-9))
    above = np.asarray(height, dtype=np.float64) - eye_level
    crown = _ramp(above, *SHELL_CROWN_M)
    nape = _ramp(above, SHELL_NAPE_M[0] - SHELL_FALL * side_m, SHELL_NAPE_M[1])
    back = nape * (1.0 - _ramp(facing, *SHELL_BACK_FACING))  # the sides and back, down to the nape
    return np.asarray(np.maximum(crown, back) * (1.0 - _ramp(facing, *SHELL_FACING)))


def volume_offsets(vertices: np.ndarray, height: np.ndarray, head: np.ndarray, camera_centre: np.ndarray,
                   eye_level: float, side_m: float, top_m: float) -> np.ndarray:
    """(V, 3) offsets that grow the head's hair into a shell: each head vertex (`head` (V,) bool) moves out from the
    skull's centre (`skull_centre`) by its `shell_share` of the volume, `side_m` round the sides and back and
    `top_m` over the top (blended by how upward it points)."""
    v = np.asarray(vertices, dtype=np.float64)
    offsets = np.zeros_like(v)
    centre = skull_centre(v, height, head, eye_level)
    if max(side_m, top_m) <= 0 or centre is None:
        return offsets
    out = _outward(v[head], centre)
    share = shell_share(v[head], height[head], centre, camera_centre, eye_level, side_m)
    upward = np.clip(out[:, 2], 0.0, 1.0) ** 2
    offsets[head] = out * (share * (side_m + (top_m - side_m) * upward))[:, None]
    return offsets
