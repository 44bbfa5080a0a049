"""A closed-form starting point for the fit, so a few dozen gradient steps finish it: plain numpy.

The camera's rotation comes from the torso: upright along the image's hip-to-shoulder line, turned as
mediapipe's world landmarks (whose axes are the camera's) turn the shoulders and hips; each limb bone
starts at the smallest rotation that turns its rest direction onto mediapipe's 3D direction for it; the
camera's translation then follows from the 2D keypoints by linear least squares (the pinhole equations
are linear in the translation once the rotation is known).
"""

from __future__ import annotations

import numpy as np

TORSO = np.array([5, 6, 11, 12])  # COCO shoulders and hips
# Limb bones, each with the COCO keypoints its segment runs between and the bone it hangs from (or None).
LIMB_BONES = (
    ("upperarm01.L", 5, 7, None), ("lowerarm01.L", 7, 9, "upperarm01.L"),
    ("upperarm01.R", 6, 8, None), ("lowerarm01.R", 8, 10, "upperarm01.R"),
    ("upperleg01.L", 11, 13, None), ("lowerleg01.L", 13, 15, "upperleg01.L"),
    ("upperleg01.R", 12, 14, None), ("lowerleg01.R", 14, 16, "upperleg01.R"),
)  # fmt: skip


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle (3,) -> rotation matrix (3, 3)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The axis-angle vector of the smallest rotation that turns direction `a` onto direction `b`."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis)
    if sin < 1e-9:
        return np.zeros(3)  # parallel (or opposite: rare for limbs; leave it to the optimizer)
    return axis / sin * np.arctan2(sin, float(a @ b))


def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The rotation R minimising sum_i w_i |R (s_i - s0) - (t_i - t0)|^2 over centred point sets."""
    w = weights / weights.sum()
    s = source - w @ source
    t = target - w @ target
    u, _, vt = np.linalg.svd((t * w[:, None]).T @ s)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def torso_rotation(world: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Body -> camera rotation of the torso (COCO order, (K, 3) world and (K, 2) pixel keypoints).

    The body's up axis is the image's hip-to-shoulder direction with no tilt towards or away from the
    camera (mediapipe's depth of the shoulders against the hips is its least reliable guess, and people in
    photos mostly stand upright before a level camera); the left axis is mediapipe's 3D shoulder and hip
    lines, which give the body's turn, made perpendicular to it.
    """
    ls, rs, lh, rh = TORSO
    up2d = (pixels[ls] + pixels[rs] - pixels[lh] - pixels[rh]) / 2
    up = np.array([up2d[0], up2d[1], 0.0]) / max(np.linalg.norm(up2d), 1e-9)
    left = world[ls] - world[rs] + world[lh] - world[rh]
    left = left - (left @ up) * up
    if np.linalg.norm(left) < 1e-9:
        left = np.array([1.0, 0.0, 0.0]) - up[0] * up
    left /= np.linalg.norm(left)
    return np.column_stack([left, np.cross(up, left), up])


def limb_rotvecs(rest_keypoints: np.ndarray, directions: np.ndarray, usable: np.ndarray) -> dict[str, np.ndarray]:
    """Initial axis-angle rotation of each limb bone (anny 'local-ref': world axes, chained to the parent).

    `directions` (len(LIMB_BONES), 3) are the wanted unit directions of the bones' segments in the body
    frame; a bone whose `usable` entry is False keeps its rest rotation.
    """
    rotations: dict[str, np.ndarray] = {}
    for (bone, a, b, parent), direction, ok in zip(LIMB_BONES, directions, usable, strict=True):
        if not ok:
            continue
        parent_rotation = rotvec_to_matrix(rotations[parent]) if parent in rotations else np.eye(3)
        rotations[bone] = swing(rest_keypoints[b] - rest_keypoints[a], parent_rotation.T @ direction)
    return rotations


def solve_translation(points: np.ndarray, targets: np.ndarray, focal: float, centre: tuple[float, float]) -> np.ndarray:
    """Camera translation t so that the rotated points (N, 3) + t project onto the targets (N, 3: x, y, w).

    From u = f (X + tx) / (Z + tz) + cx: f tx - (u - cx) tz = (u - cx) Z - f X, and likewise for y.
    """
    w = np.sqrt(np.clip(targets[:, 2], 0.0, None))
    du, dv = targets[:, 0] - centre[0], targets[:, 1] - centre[1]
    zeros, f = np.zeros_like(du), np.full_like(du, focal)
    rows = np.concatenate([np.stack([f, zeros, -du], 1), np.stack([zeros, f, -dv], 1)])
    rhs = np.concatenate([du * points[:, 2] - focal * points[:, 0], dv * points[:, 2] - focal * points[:, 1]])
    weights = np.concatenate([w, w])
    t, *_ = np.linalg.lstsq(rows * weights[:, None], rhs * weights, rcond=None)
    return t
