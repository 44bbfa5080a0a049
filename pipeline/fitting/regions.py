"""Which part of the body a garment covers: soft per-vertex weights from the body's own geometry.

Body parts come from the rest pose (anny's A-pose, where the arms hang clear of the torso): every rest vertex is
labelled with the nearest of a few bone segments (torso, upper arm, forearm, hand, thigh, shin, foot, head)
drawn between the COCO keypoints. The keypoints are fitted on the posed body; their rest positions are the mean
rest position of the posed vertices nearest to each. Without keypoints, standard proportions of the body's height
stand in (shoulders at 0.82, hips at 0.53, knees at 0.285, ankles at 0.04) and every vertex counts as torso.

Coverage per category (decided here; heights are rest-pose z, T = shoulder height - hip height):
- upper: the torso from 0.12 T below the hips to 0.05 T above the shoulders, plus the sleeves: as far down the
  arm as the garment photo's sleeves reach (`pipeline.fitting.sleeves`), else 45 % of the upper arm;
- lower: the torso below the waist (0.3 T above the hips), thighs and shins down to 0.05 T above the ankles;
- full: the torso below the shoulders, the sleeves as measured (else a cap sleeve, 15 % of the upper arm),
  thighs and shins down to 0.1 T below the knees.
Arm positions run 0 -> 1 along the upper arm (shoulder to elbow) and 1 -> 2 along the forearm (elbow to wrist);
a sleeve of length L metres covers the arm up to that position, whatever the garment's height band says.
Edges are soft (a smoothstep 3 cm wide, then a few rounds of averaging over the mesh's edges), so the ease
offset fades out instead of stepping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARTS = ("torso", "upper_arm", "forearm", "hand", "thigh", "shin", "foot", "head")
EDGE_BAND_M = 0.03  # width of the soft edge of a region
SMOOTHING_ROUNDS = 4
_FALLBACK_HEIGHTS = {"shoulder": 0.82, "hip": 0.53, "knee": 0.285, "ankle": 0.04}
_SLEEVE = {"upper": 0.45, "lower": -1.0, "full": 0.15}  # arm position covered when unmeasured (negative: none)
_ARM_M = {"upper_arm_m": 0.29, "forearm_m": 0.25}  # adult bone lengths, used without keypoints


@dataclass(frozen=True)
class BodyParts:
    """Per-vertex part labels and the coordinates the region edges are drawn in (rest pose)."""

    label: np.ndarray  # (V,) int index into PARTS
    height: np.ndarray  # (V,) rest z, metres
    arm_position: np.ndarray  # (V,) 0 at the shoulder, 1 at the elbow, 2 at the wrist (arm vertices; else 0)
    levels: dict[str, float]  # rest z of "shoulder", "hip", "knee", "ankle" (and "eye" with keypoints); also
    # "upper_arm_m" and "forearm_m", the mean bone lengths (metres)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of (N, 3) points to the segment a-b, and the unclamped position along it (0 at a, 1 at b)."""
    axis = b - a
    s = (points - a) @ axis / max(float(axis @ axis), 1e-12)
    nearest = a + np.clip(s, 0.0, 1.0)[:, None] * axis
    return np.linalg.norm(points - nearest, axis=1), s


def rest_keypoints(posed: np.ndarray, rest: np.ndarray, keypoints: np.ndarray, k: int = 24) -> np.ndarray:
    """(K, 3) rest-pose positions of posed keypoints: the mean rest position of the k nearest posed vertices."""
    out = np.empty_like(np.asarray(keypoints, dtype=np.float64))
    for i, point in enumerate(np.asarray(keypoints, dtype=np.float64)):
        nearest = np.argpartition(np.linalg.norm(posed - point, axis=1), k)[:k]
        out[i] = rest[nearest].mean(axis=0)
    return out


def _segments(kp: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(part index, start, end) per bone segment, from COCO-23 keypoints."""
    mid_sh, mid_hip = (kp[5] + kp[6]) / 2, (kp[11] + kp[12]) / 2
    head = (kp[3] + kp[4]) / 2
    segs = [(0, mid_hip, mid_sh), (7, mid_sh + 0.3 * (head - mid_sh), head + 0.5 * (head - mid_sh))]
    for sh, el, wr, hip, kn, an, toe in ((5, 7, 9, 11, 13, 15, 17), (6, 8, 10, 12, 14, 16, 18)):
        segs += [(0, mid_sh, kp[sh]), (0, mid_hip, kp[hip]), (1, kp[sh], kp[el]), (2, kp[el], kp[wr]),
                 (3, kp[wr], kp[wr] + 0.6 * (kp[wr] - kp[el])), (4, kp[hip], kp[kn]), (5, kp[kn], kp[an]),
                 (6, kp[an], kp[toe])]
    return segs


def body_parts(rest: np.ndarray, rest_kp: np.ndarray | None) -> BodyParts:
    """Label every rest vertex with its nearest bone segment; without keypoints, proportions and all torso."""
    rest = np.asarray(rest, dtype=np.float64)
    z = rest[:, 2]
    if rest_kp is None:
        low, tall = z.min(), np.ptp(z)
        levels = {name: float(low + share * tall) for name, share in _FALLBACK_HEIGHTS.items()} | _ARM_M
        return BodyParts(np.zeros(len(rest), np.int64), z, np.zeros(len(rest)), levels)
    segs = _segments(rest_kp)
    dist = np.empty((len(segs), len(rest)))
    along = np.empty((len(segs), len(rest)))
    for i, (_, a, b) in enumerate(segs):
        dist[i], along[i] = _segment_distance(rest, a, b)
    best = dist.argmin(axis=0)
    label = np.array([part for part, _, _ in segs])[best]
    position = np.clip(along[best, np.arange(len(rest))], 0.0, 1.0)
    arm = np.select([label == 1, label == 2, label == 3], [position, 1.0 + position, 2.0 + position], 0.0)
    bone = np.linalg.norm
    raw_levels = {"shoulder": (rest_kp[5, 2] + rest_kp[6, 2]) / 2, "hip": (rest_kp[11, 2] + rest_kp[12, 2]) / 2,
                  "knee": (rest_kp[13, 2] + rest_kp[14, 2]) / 2, "ankle": (rest_kp[15, 2] + rest_kp[16, 2]) / 2,
                  "eye": (rest_kp[1, 2] + rest_kp[2, 2]) / 2,
                  "upper_arm_m": (bone(rest_kp[5] - rest_kp[7]) + bone(rest_kp[6] - rest_kp[8])) / 2,
                  "forearm_m": (bone(rest_kp[7] - rest_kp[9]) + bone(rest_kp[8] - rest_kp[10])) / 2}
    return BodyParts(label, z, arm, {k: float(v) for k, v in raw_levels.items()})


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below -band/2, 1 above +band/2, smooth between (x in metres, positive = inside)."""
    t = np.clip(x / EDGE_BAND_M + 0.5, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _bounds(category: str, levels: dict[str, float]) -> tuple[float, float]:
    """(bottom, top) rest heights of the region."""
    sh, hip, knee, ankle = levels["shoulder"], levels["hip"], levels["knee"], levels["ankle"]
    torso = sh - hip
    if category == "upper":
        return hip - 0.12 * torso, sh + 0.05 * torso
    if category == "lower":
        return ankle + 0.05 * torso, hip + 0.3 * torso
    if category == "full":
        return knee - 0.1 * torso, sh + 0.05 * torso
    raise ValueError(f"unknown garment category {category!r}")


def smooth_over_mesh(values: np.ndarray, faces: np.ndarray, rounds: int = SMOOTHING_ROUNDS) -> np.ndarray:
    """Average each vertex's value with its neighbours' (over the faces' edges), `rounds` times."""
    f = np.asarray(faces, dtype=np.int64)
    src = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    dst = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    degree = np.bincount(dst, minlength=len(values)).astype(np.float64)
    out = np.asarray(values, dtype=np.float64)
    for _ in range(rounds):
        out = (out + np.bincount(dst, out[src], minlength=len(out))) / (1.0 + degree)
    return out


def region_height_m(category: str, levels: dict[str, float]) -> float:
    """Metres from the region's bottom to its top (the garment photo's height maps onto this)."""
    bottom, top = _bounds(category, levels)
    return top - bottom


def sleeve_position(levels: dict[str, float], sleeve_m: float) -> float:
    """The arm position (0 shoulder, 1 elbow, 2 wrist) a sleeve `sleeve_m` metres long reaches."""
    upper, fore = levels["upper_arm_m"], levels["forearm_m"]
    if sleeve_m <= upper:
        return max(sleeve_m, 0.0) / upper
    return min(1.0 + (sleeve_m - upper) / fore, 2.0)


def garment_weights(parts: BodyParts, faces: np.ndarray, category: str, sleeve_m: float | None = None) -> np.ndarray:
    """(V,) in [0, 1]: how much each vertex belongs to the garment of `category` (soft at the edges).
    `sleeve_m`: how far down the arm the sleeves reach (metres from the shoulder); None = the category's default,
    0 = sleeveless. Lower garments have no sleeves whatever it says."""
    bottom, top = _bounds(category, parts.levels)
    below_top = _smoothstep(top - parts.height)
    band = _smoothstep(parts.height - bottom) * below_top
    label = parts.label
    body = {"upper": (0,), "lower": (0, 4, 5), "full": (0, 4, 5)}[category]
    weight = np.where(np.isin(label, body), band, 0.0)
    reach = _SLEEVE[category] if sleeve_m is None or category == "lower" else sleeve_position(parts.levels, sleeve_m)
    if reach > 0:
        arm_m = parts.levels["upper_arm_m"]  # turns arm positions into metres for the soft edge
        weight = np.where(np.isin(label, (1, 2)), below_top * _smoothstep((reach - parts.arm_position) * arm_m),
                          weight)
    return np.clip(smooth_over_mesh(weight, faces), 0.0, 1.0)


def ease_per_vertex(parts: BodyParts, ease_cm_by_region: dict[str, float]) -> np.ndarray:
    """(V,) ease in cm: chest / waist / hip eases placed at their rest heights, linear between, held beyond."""
    known = {k: float(v) for k, v in ease_cm_by_region.items() if k in ("chest", "waist", "hip")}
    if not known:
        return np.zeros(len(parts.height))
    sh, hip = parts.levels["shoulder"], parts.levels["hip"]
    torso = sh - hip
    at = {"hip": hip - 0.05 * torso, "waist": hip + 0.4 * torso, "chest": sh - 0.25 * torso}
    names = sorted(known, key=lambda n: at[n])
    return np.interp(parts.height, [at[n] for n in names], [known[n] for n in names])
