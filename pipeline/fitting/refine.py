"""The full-figure pass over phase 3's views: make each whole view photoreal, keep the face and the background,
and keep the refined view only where identity held.

`refine_requests` turns the views into `RefineRequest`s (the view's depth from the rasterizer, the person's photo
cropped to the person, a keep mask of the face box and every pixel that does not see the body, a prompt that says
which way the person faces); `refine_with_identity` runs them as one batch through a `ViewRefiner`, checks
identity per angle against the job's face bank, and keeps for each angle the refined view only where its identity
is no worse than the unrefined view's (`no_worse`), recording both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipeline.avatar.contracts import FaceBank
from pipeline.backends.protocols import FaceEmbedder, RefineRequest, ViewRefiner
from pipeline.fitting.identity import AngleIdentity, identity_per_angle
from pipeline.fitting.tryon import face_box, face_keep_mask
from pipeline.render.views import View

STRENGTH = 0.35  # low: the render's colours, the try-on's garment and the pose carry through (docs/gpu.md)
PERSON_MARGIN = 0.05  # the person photo is cropped to its mask's box grown by this fraction of its size


@dataclass(frozen=True)
class RefinedViews:
    """The pass over the angles, in the views' order."""

    views: list[View]  # the refined view where it was kept, else the view as it came
    identity: list[AngleIdentity]  # identity of the view kept
    record: dict[str, object]  # fitting.json's `dressing.refine`


def view_prompt(angle_deg: int) -> str:
    """Which way the person faces, in the words a photo caption would use."""
    away = min(angle_deg % 360, 360 - angle_deg % 360)
    if away < 45:
        return "seen from the front"
    if away < 90:
        return "three-quarter view"
    return "seen from the side" if away == 90 else "seen from the back"


def person_crop(photo: np.ndarray, mask: np.ndarray, margin: float = PERSON_MARGIN) -> np.ndarray:
    """(h, w, 3) uint8: the photo cropped to the person mask's box (grown by `margin`); the whole photo when the
    mask is empty."""
    ys, xs = np.nonzero(np.asarray(mask) > 0.5)
    if len(xs) == 0:
        return photo
    height, width = photo.shape[:2]
    dx, dy = margin * (xs.max() - xs.min() + 1), margin * (ys.max() - ys.min() + 1)
    x0, y0 = max(0, int(xs.min() - dx)), max(0, int(ys.min() - dy))
    x1, y1 = min(width, int(np.ceil(xs.max() + 1 + dx))), min(height, int(np.ceil(ys.max() + 1 + dy)))
    return np.ascontiguousarray(photo[y0:y1, x0:x1])


def keep_mask(view: View, face: tuple[int, int, int, int] | None) -> np.ndarray:
    """(H, W) float32: 1 on the face box (grown as the try-on's) and wherever the view does not see the body."""
    height, width = view.image.shape[:2]
    keep = face_keep_mask((width, height), face)
    keep[~np.asarray(view.mask, dtype=bool)] = 1.0
    return keep


def refine_requests(faces: FaceEmbedder, views: Sequence[View], depths: Sequence[np.ndarray], person: np.ndarray,
                    seed: int = 0, strength: float = STRENGTH) -> list[RefineRequest]:
    """One request per view, seeds `seed`, `seed + 1`, ..."""
    if len(depths) != len(views):
        raise ValueError(f"{len(depths)} depth maps for {len(views)} views")
    return [RefineRequest(render=view.image, depth=depth, person=person,
                          keep_mask=keep_mask(view, face_box(faces, view.image)), prompt=view_prompt(view.angle_deg),
                          seed=seed + i, strength=strength)
            for i, (view, depth) in enumerate(zip(views, depths, strict=True))]


def no_worse(after: AngleIdentity, before: AngleIdentity) -> bool:
    """Is the refined view's identity no worse than the unrefined one's? A face the refined view loses is worse;
    a face it shows where there was none counts only if it matches; no face on either side (the back, or no
    reference to compare with) is no worse."""
    if before.distance is None:
        return after.distance is None or after.status == "match"
    return after.distance is not None and after.distance <= before.distance


def refine_with_identity(refiner: ViewRefiner, faces: FaceEmbedder, bank: FaceBank, views: Sequence[View],
                         before: Sequence[AngleIdentity], requests: Sequence[RefineRequest]) -> RefinedViews:
    """Refine every angle in one batch, check identity per angle, keep each refined view that is `no_worse`."""
    if not len(views) == len(before) == len(requests):
        raise ValueError(f"{len(views)} views, {len(before)} identities and {len(requests)} requests")
    images = refiner.refine(list(requests))
    refined = [replace(view, image=image) for view, image in zip(views, images, strict=True)]
    after = identity_per_angle(faces, bank, refined)
    kept_views, kept_identity, angles = [], [], {}
    for view, new, old, new_id, request in zip(views, refined, before, after, requests, strict=True):
        kept = no_worse(new_id, old)
        kept_views.append(new if kept else view)
        kept_identity.append(new_id if kept else old)
        angles[f"{view.angle_deg:03d}"] = {
            "status": "kept" if kept else "rejected: identity worse than the unrefined view's",
            "seed": request.seed, "identity_before": old.distance, "identity_after": new_id.distance, "kept": kept}
    record: dict[str, object] = {"status": "refined", "backend": f"{refiner.name} {refiner.version}",
                                 "strength": requests[0].strength if requests else STRENGTH,
                                 "kept": sum(1 for a in angles.values() if a["kept"]), "angles": angles}
    return RefinedViews(views=kept_views, identity=kept_identity, record=record)
