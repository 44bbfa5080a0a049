"""Identity on each rendered angle: the face found in the render against the job's face bank."""

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


def identity_per_angle(embedder: FaceEmbedder, bank: FaceBank, views: list[View]) -> list[AngleIdentity]:
    if not bank.references:
        why = f"skipped: {bank.skipped_reason or 'no face reference'}"
        return [AngleIdentity(v.angle_deg, None, why) for v in views]
    references = np.asarray([r.embedding for r in bank.references], dtype=np.float32)
    found = []
    for view in views:
        faces = embedder.faces(view.image)
        if not faces:
            found.append(AngleIdentity(view.angle_deg, None, "not visible"))
            continue
        distance = float(np.linalg.norm(references - faces[0].embedding[None, :], axis=1).min())
        status = "match" if distance < bank.threshold else "mismatch"
        found.append(AngleIdentity(view.angle_deg, round(distance, 4), status))
    return found
