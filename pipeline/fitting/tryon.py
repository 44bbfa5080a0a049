"""The generative pass over phase 3's renders: repaint the garment on each angle, keep the face, check identity.

`tryon_requests` turns the 8 rendered views into try-on requests (the garment region to paint, grown as
CatVTON-FLUX's training masks were, so that its outline does not dictate the garment's shape; the face to keep;
the garment photo; the view and the fit cues as prompt); `repaint_with_identity` runs them as one batch through a
`TryOnPainter`, checks identity per angle against the job's face bank, and runs again only the angles whose face
drifted from the person's, with a new seed each time, keeping each angle's best attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipeline.avatar.contracts import FaceBank
from pipeline.backends.gpu.tryon_framing import agnostic_region
from pipeline.backends.protocols import FaceEmbedder, TryOnPainter, TryOnRequest
from pipeline.fitting.identity import AngleIdentity, identity_per_angle
from pipeline.render.views import View
from pipeline.spec import Category

Box = tuple[int, int, int, int]

RETRY_SEED_STEP = 1000  # try k of an angle runs with seed + k * RETRY_SEED_STEP
FACE_MARGIN = 0.35  # the kept face region: the detector's box grown by this fraction of its size on every side
GROW_FRAC = 0.015  # the paint mask: the garment region grown by this fraction of the image height (looser fits)
# The wardrobe phase has one garment photo, its front. Views that show the person's side or back say so, and say
# that the photo is the front: the model should not copy a front print onto a back, nor take the photo for one.
SIDE_CUE = "the model is seen from the side; the product shot shows the garment's front"
BACK_CUE = "the model is seen from the back; the product shot shows the garment's front, not its back"


@dataclass(frozen=True)
class RepaintedViews:
    """The try-on pass over the angles, in the views' order."""

    images: list[np.ndarray]  # (H, W, 3) uint8: the kept attempt of each angle
    tries: list[int]  # attempts each angle took (1 when the first was kept without a retry)
    seeds: list[int]  # the seed of the kept attempt
    identity: list[AngleIdentity]  # identity of the kept attempt

    @property
    def distances(self) -> list[float | None]:
        return [i.distance for i in self.identity]


# ---- requests --------------------------------------------------------------------------------------------------


def face_keep_mask(size: tuple[int, int], box: Box | None, margin: float = FACE_MARGIN) -> np.ndarray:
    """(H, W) float32 for `size` = (W, H): 1 inside `box` grown by `margin` of its size per side; zeros if no box."""
    width, height = size
    keep = np.zeros((height, width), dtype=np.float32)
    if box is None:
        return keep
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    left, top = max(0, int(np.floor(x0 - dx))), max(0, int(np.floor(y0 - dy)))
    right, bottom = min(width, int(np.ceil(x1 + dx))), min(height, int(np.ceil(y1 + dy)))
    keep[top:bottom, left:right] = 1.0
    return keep


def garment_paint_mask(region: np.ndarray, grow_px: int) -> np.ndarray:
    """(H, W) float32 in {0, 1}: the garment region grown by `grow_px`, room for a looser silhouette."""
    import cv2

    binary = (np.asarray(region) > 0.5).astype(np.uint8)
    if grow_px > 0:
        binary = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1,) * 2))
    return binary.astype(np.float32)


def view_cue(angle_deg: int) -> str | None:
    """What the prompt says about the view: nothing for the front and three-quarter front (the photo's side),
    SIDE_CUE at 90 and 270 degrees, BACK_CUE past them (the back and three-quarter back)."""
    turn = angle_deg % 360
    away = min(turn, 360 - turn)  # 0 faces the camera, 180 shows the back
    if away < 90:
        return None
    return SIDE_CUE if away == 90 else BACK_CUE


def tryon_request(view: View, garment_region: np.ndarray, garment: np.ndarray, cues: Sequence[str],
                  face_box: Box | None, seed: int, grow_frac: float = GROW_FRAC,
                  agnostic: bool = False, category: Category | None = None) -> TryOnRequest:
    """One angle's request: paint the garment region (grown), keep the face (when one is visible); the prompt is
    the view's cue (side, back) and the fit cues. `agnostic`: grow the region as CatVTON grows its agnostic masks
    (convex hull, blur, dilation; `tryon_framing`) instead of by `grow_frac`, for a tight region (a render's
    garment); a region that is generous already (the photo's agnostic mask) is grown only by `grow_frac`.
    `category`: the wardrobe's garment category (upper, lower, full) for the painter (None: it guesses)."""
    height, width = view.image.shape[:2]
    if garment_region.shape != (height, width):
        raise ValueError(f"the garment region is {garment_region.shape}, the {view.angle_deg:03d} view is "
                         f"{(height, width)}")
    keep = face_keep_mask((width, height), face_box)
    if agnostic:
        paint = agnostic_region(garment_region, keep)
    else:
        paint = garment_paint_mask(garment_region, round(grow_frac * height))
    return TryOnRequest(
        render=view.image,
        paint_mask=paint,
        keep_mask=keep,
        garment=garment,
        prompt="; ".join(part for part in (view_cue(view.angle_deg), fit_cues(cues)) if part),
        seed=seed,
        category=category,
    )


def fit_cues(cues: Sequence[str]) -> str:
    return ", ".join(c.strip() for c in cues if c.strip())


def garment_on_white(rgba: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8: the wardrobe's RGBA cutout over white, as the painter expects the garment photo."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def face_box(faces: FaceEmbedder, image: np.ndarray) -> Box | None:
    """The box of the largest face in `image`, or None."""
    found = faces.faces(image)
    return found[0].box if found else None


def tryon_requests(faces: FaceEmbedder, views: Sequence[View], garment_regions: Sequence[np.ndarray],
                   garment: np.ndarray, cues: Sequence[str], seed: int = 0,
                   category: Category | None = None) -> list[TryOnRequest]:
    """One request per view, seeds `seed`, `seed + 1`, ...; `cues` is `FitReport.prompt_cues`; each garment region
    grown as CatVTON's agnostic masks (`tryon_request(agnostic=True)`)."""
    if len(garment_regions) != len(views):
        raise ValueError(f"{len(garment_regions)} garment regions for {len(views)} views")
    return [tryon_request(view, region, garment, cues, face_box(faces, view.image), seed + i, agnostic=True,
                          category=category)
            for i, (view, region) in enumerate(zip(views, garment_regions, strict=True))]


# ---- repaint, check, retry -------------------------------------------------------------------------------------


def repaint_with_identity(painter: TryOnPainter, faces: FaceEmbedder, bank: FaceBank, views: Sequence[View],
                          requests: Sequence[TryOnRequest], max_tries: int = 3) -> RepaintedViews:
    """Repaint every angle in one batch; while an angle's face is a "mismatch" against `bank`, repaint that angle
    again (only the failing angles, in one batch, seed + k * RETRY_SEED_STEP on try k), up to `max_tries`
    attempts in all. Each angle keeps its attempt with the smallest face distance (the first on ties)."""
    if len(requests) != len(views):
        raise ValueError(f"{len(requests)} requests for {len(views)} views")
    if max_tries < 1:
        raise ValueError(f"max_tries must be at least 1, got {max_tries}")
    count = len(views)
    images = painter.repaint(list(requests))
    identity = identity_per_angle(faces, bank, with_images(views, images, range(count)))
    tries, seeds = [1] * count, [r.seed for r in requests]
    for attempt in range(1, max_tries):
        failing = [i for i in range(count) if identity[i].status == "mismatch"]
        if not failing:
            break
        retry = [replace(requests[i], seed=requests[i].seed + attempt * RETRY_SEED_STEP) for i in failing]
        again = painter.repaint(retry)
        checked = identity_per_angle(faces, bank, with_images(views, again, failing))
        for i, image, found, request in zip(failing, again, checked, retry, strict=True):
            tries[i] += 1
            if better(found, identity[i]):
                images[i], identity[i], seeds[i] = image, found, request.seed
    return RepaintedViews(images=images, tries=tries, seeds=seeds, identity=identity)


def with_images(views: Sequence[View], images: Sequence[np.ndarray], index: Sequence[int]) -> list[View]:
    """The views at `index`, each showing the matching image of `images` instead of its render."""
    return [replace(views[i], image=image) for i, image in zip(index, images, strict=True)]


def better(candidate: AngleIdentity, current: AngleIdentity) -> bool:
    if candidate.distance is None:
        return False
    return current.distance is None or candidate.distance < current.distance
