"""Identity on each rendered angle: the face found in the render against the job's face bank.

Faces are compared only on the angles that see the face as the photo did, give or take `MAX_TURN_DEG` (000, 045
and 315): the bank holds the face as the photo shows it, and an embedding compares like with like only over a
small turn. At 090 and 270 the dev photos' profiles measured 0.61 to 0.88 from their own bank (a "mismatch" on
every job that said nothing about the try-on), and the GPU try-on repainted such an angle again and again for a
match it could not reach. Those angles are "skipped: ..." with the turn named."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.avatar.contracts import FaceBank
from pipeline.backends.protocols import FaceEmbedder
from pipeline.render.views import View


@dataclass(frozen=True)
class AngleIdentity:
    angle_deg: int
    distance: float | None  # smallest L2 distance to a bank reference; None when no face is visible
    status: str  # "match", "mismatch", "not visible" or "skipped: <why>"

    def as_dict(self) -> dict[str, object]:
        return {"angle": f"{self.angle_deg:03d}", "distance": self.distance, "status": self.status}


MAX_TURN_DEG = 45  # faces are compared on the angles within this turn from the photo's view


def turn_from_photo(angle_deg: int) -> int:
    """How far (degrees, 0..180) an angle of the turntable turns from the photo's view (000)."""
    return min(angle_deg % 360, 360 - angle_deg % 360)


def identity_per_angle(embedder: FaceEmbedder, bank: FaceBank, views: list[View]) -> list[AngleIdentity]:
    if not bank.references:
        why = f"skipped: {bank.skipped_reason or 'no face reference'}"
        return [AngleIdentity(v.angle_deg, None, why) for v in views]
    references = np.asarray([r.embedding for r in bank.references], dtype=np.float32)
    found = []
    for view in views:
        turn = turn_from_photo(view.angle_deg)
        if turn > MAX_TURN_DEG:
            found.append(AngleIdentity(view.angle_deg, None, f"skipped: the view turns {turn} degrees from the "
                                       f"photo's (faces are compared within {MAX_TURN_DEG})"))
            continue
        faces = embedder.faces(view.image)
        if not faces:
            found.append(AngleIdentity(view.angle_deg, None, "not visible"))
            continue
        distance = float(np.linalg.norm(references - faces[0].embedding[None, :], axis=1).min())
        status = "match" if distance < bank.threshold else "mismatch"
        found.append(AngleIdentity(view.angle_deg, round(distance, 4), status))
    return found
