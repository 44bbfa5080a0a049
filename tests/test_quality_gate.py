"""Phase 3's quality gate: identity at 000, the garment's front coverage, and the optional vision-LLM verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from pipeline.avatar.contracts import FaceBank
from pipeline.backends.protocols import QualityJudge, TryOnVerdict, VisionLLMError
from pipeline.errors import RetryableError
from pipeline.fitting.dress import DressedBody
from pipeline.fitting.identity import AngleIdentity
from pipeline.fitting.phase import quality_flags, vision_gate
from pipeline.geometry import Camera
from pipeline.render.views import View

CAMERA = Camera(focal_px=100.0, cx=16.0, cy=16.0, rotation=np.eye(3), translation=np.zeros(3), image_size=(32, 32))
VIEWS = [View(a, CAMERA, np.full((32, 32, 3), a % 250, np.uint8), np.ones((32, 32), bool), 0.0)
         for a in range(0, 360, 45)]
CUTOUT = np.zeros((20, 10, 4), np.uint8)
CUTOUT[5:15, 2:8] = (200, 10, 10, 255)


@dataclass
class FakeJudge:
    """Answers with a set verdict or raises; records what it was shown."""

    answer: TryOnVerdict | Exception
    name: str = "fake-judge"
    version: str = "1"
    shown: list[tuple[int, np.ndarray]] = field(default_factory=list)

    def judge_tryon(self, views: list[np.ndarray], garment: np.ndarray, person: np.ndarray) -> TryOnVerdict:
        self.shown.append((len(views), garment))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def dressed(coverage: float) -> DressedBody:
    empty = np.zeros((2, 2), bool)
    return DressedBody(np.zeros((1, 3), np.float32), np.zeros((2, 2, 3), np.uint8), empty, np.zeros(1, bool),
                       coverage=coverage, seen=0.5)


def bank(with_face: bool = True) -> FaceBank:
    refs = [{"source": "person", "embedding": [0.0] * 128, "box": [0, 0, 10, 10]}] if with_face else []
    return FaceBank.model_validate({"backend": "fake", "threshold": 0.6, "references": refs,
                                    "skipped_reason": None if with_face else "no face"})


def test_the_judge_sees_the_8_views_and_the_garment_on_white() -> None:
    judge = FakeJudge(TryOnVerdict(False, 0.2, ("the sleeves are missing at 090",)))
    assert isinstance(judge, QualityJudge)
    gate = vision_gate(judge, VIEWS, CUTOUT, np.zeros((32, 32, 3), np.uint8))
    assert gate == {"status": "judged", "acceptable": False, "score": 0.2,
                    "problems": ["the sleeves are missing at 090"]}
    count, garment = judge.shown[0]
    assert count == 8 and garment.shape == (20, 10, 3)
    assert (garment[0, 0] == 255).all() and (garment[10, 5] == (200, 10, 10)).all()  # transparent -> white
    flags = quality_flags(bank(), [AngleIdentity(0, 0.3, "match")], dressed(0.8), gate)
    assert flags == ["vision: the vision model finds the try-on unconvincing (score 0.2): "
                     "the sleeves are missing at 090"]


def test_an_unusable_answer_is_recorded_not_fatal_and_an_outage_retries() -> None:
    gate = vision_gate(FakeJudge(VisionLLMError("did not fit the schema")), VIEWS, CUTOUT, VIEWS[0].image)
    assert gate["status"] == "no verdict: did not fit the schema"
    assert quality_flags(bank(), [AngleIdentity(0, 0.3, "match")], dressed(0.8), gate) == []
    with pytest.raises(RetryableError):
        vision_gate(FakeJudge(RetryableError("429")), VIEWS, CUTOUT, VIEWS[0].image)
    assert vision_gate(None, VIEWS, CUTOUT, VIEWS[0].image) == {"status": "not configured"}


def test_identity_and_coverage_flags() -> None:
    flags = quality_flags(bank(), [AngleIdentity(0, 0.75, "mismatch")], dressed(0.1))
    assert len(flags) == 2 and flags[0].startswith("identity") and "10%" in flags[1]
    assert quality_flags(bank(), [AngleIdentity(0, None, "not visible")], dressed(0.9))[0].startswith("identity")
    assert quality_flags(bank(with_face=False), [AngleIdentity(0, None, "skipped: no face")], dressed(0.9)) == []
