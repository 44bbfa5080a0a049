"""The avatar's debug overlay: what the phase saw, drawn over the photo so a person can judge it at a glance.

Green tint: the person mask. Yellow outline: the fitted body's silhouette. White lines: the photo's
skeleton (mediapipe). Red dots: the body's fitted keypoints, joined to their targets. Blue: the face.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pipeline.avatar.contracts import AvatarRecord
from pipeline.backends.protocols import Face, PersonObservation
from pipeline.geometry import BodyFit

SKELETON = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32), (0, 7), (0, 8),
)


def draw_overlay(rgb: np.ndarray, person: PersonObservation, face: Face | None, fit: BodyFit,
                 body_mask: np.ndarray, record: AvatarRecord) -> np.ndarray:
    image = tint(rgb, person.mask)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    scale = max(1, round(max(canvas.size) / 512))
    draw_outline(draw, body_mask, (255, 220, 0), scale)
    draw_skeleton(draw, person.landmarks, scale)
    draw_keypoints(draw, fit, scale)
    if face is not None:
        draw.rectangle(tuple(int(v) for v in face.box), outline=(60, 140, 255), width=2 * scale)
    caption = (f"people {record.people_found}  face {'yes' if record.face_found else 'no'}  "
               f"height {record.height_cm:.0f} cm ({record.height_source})  "
               f"reproj {record.fit.reprojection_error_px:.1f} px  IoU {record.fit.mask_iou:.2f}")
    draw.rectangle((0, 0, canvas.size[0], 14 * scale), fill=(0, 0, 0))
    draw.text((4, 2), caption, fill=(255, 255, 255), font_size=11 * scale)
    return np.asarray(canvas)


def tint(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Darken the background and tint the person mask green, keeping the photo readable."""
    m = np.clip(mask, 0.0, 1.0)[..., None]
    base = rgb.astype(np.float32) * (0.45 + 0.55 * m)
    green = np.array([40.0, 200.0, 80.0], dtype=np.float32)
    return np.clip(base * (1 - 0.25 * m) + green * 0.25 * m, 0, 255).astype(np.uint8)


def draw_outline(draw: ImageDraw.ImageDraw, mask: np.ndarray, colour: tuple[int, int, int], scale: int) -> None:
    import cv2

    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in contours:
        points = [tuple(int(v) for v in p[0]) for p in contour]
        if len(points) > 2:
            draw.line([*points, points[0]], fill=colour, width=2 * scale)


def draw_skeleton(draw: ImageDraw.ImageDraw, landmarks: np.ndarray, scale: int) -> None:
    for a, b in SKELETON:
        if min(landmarks[a, 2], landmarks[b, 2]) >= 0.5:
            draw.line([tuple(landmarks[a, :2]), tuple(landmarks[b, :2])], fill=(255, 255, 255), width=scale)


def draw_keypoints(draw: ImageDraw.ImageDraw, fit: BodyFit, scale: int) -> None:
    r = 3 * scale
    for (x, y), (tx, ty, w) in zip(fit.keypoints_2d, fit.targets_2d, strict=True):
        if w <= 0:
            continue
        draw.line([(tx, ty), (x, y)], fill=(255, 80, 80), width=scale)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 40, 40))
