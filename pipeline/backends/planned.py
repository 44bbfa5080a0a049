"""The backends a profile plans (`pipeline.backends.licences.backend_plan`), built once per process.

`PlannedBackends` is `CpuBackends` where the plan names a CPU backend (every protocol under the `cpu` profile)
and the GPU adapter where it names one (`gpu`, `commercial-safe`, or a per-protocol override). A GPU adapter
loads only from the verified weights folder (`pipeline.backends.weights.verify`: every file's size and sha256
against the manifest `dropfit weights pull` wrote), never from a hub. Building an adapter loads nothing;
`warm_up()` loads every planned model now and checks the profile's licence rule against what was built.
"""

from __future__ import annotations

from typing import Any

from pipeline.backends.config import ModelConfig
from pipeline.backends.cpu import CpuBackends
from pipeline.backends.licences import check_profile
from pipeline.backends.protocols import (
    FaceEmbedder,
    GarmentSegmenter,
    MeshBuilder,
    PersonDetector,
    PersonLandmarker,
    PromptSegmenter,
    QualityJudge,
    TryOnPainter,
)
from pipeline.backends.weights import manifest_lists, verify


class PlannedBackends(CpuBackends):
    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.plan = self.config.plan()
        if self.plan["MeshBuilder"] == "hunyuan3d-2mv":  # built where the process starts: its main thread
            from pipeline.backends.gpu.hunyuan_mv import import_native_libraries

            import_native_libraries()

    def _weights(self, key: str) -> Any:
        return verify(self.config.weights, key)

    def landmarker(self) -> PersonLandmarker:
        if self.plan["PersonLandmarker"] == "mediapipe-pose":
            return super().landmarker()
        from pipeline.backends.gpu.person import DetectedPersonLandmarker

        detector, segmenter, pose = self.detector(), self.segmenter(), super().landmarker()
        if detector is None:
            raise ValueError(f"the plan's person landmarker {self.plan['PersonLandmarker']!r} needs a person detector")
        return self._one("detected_landmarker", lambda: DetectedPersonLandmarker(detector, pose, segmenter))

    def detector(self) -> PersonDetector | None:
        if self.plan["PersonDetector"] is None:
            return None
        from pipeline.backends.gpu.yolo_person import YoloPersonDetector

        return self._one("detector", lambda: YoloPersonDetector(self._weights("yolo") / "yolo11n.pt"))

    def segmenter(self) -> PromptSegmenter | None:
        if self.plan["PromptSegmenter"] is None:
            return None
        from pipeline.backends.gpu.sam import SamSegmenter

        return self._one("sam", lambda: SamSegmenter(self._weights("sam")))

    def faces(self) -> FaceEmbedder:
        if self.plan["FaceEmbedder"] != "insightface":
            return super().faces()
        from pipeline.backends.gpu.insightface_face import InsightFaceEmbedder

        return self._one("insightface", lambda: InsightFaceEmbedder(self._weights("insightface") / "models/buffalo_l"))

    def garment_segmenter(self) -> GarmentSegmenter:
        if self.plan["GarmentSegmenter"] == "sam":
            segmenter = self.segmenter()
            if segmenter is not None:
                return segmenter  # type: ignore[return-value]  # SamSegmenter serves both protocols
        return super().garment_segmenter()

    def painter(self) -> TryOnPainter | None:
        if self.plan["TryOnPainter"] is None:
            return None
        from pipeline.backends.gpu.tryon import LORA_WEIGHT_NAME, DiffusersTryOnPainter

        def make() -> DiffusersTryOnPainter:
            folder = self._weights("tryon")
            listed = manifest_lists(self.config.weights, "tryon", f"lora/{LORA_WEIGHT_NAME}")  # so verified
            lora = folder / "lora" / LORA_WEIGHT_NAME if listed else None
            return DiffusersTryOnPainter(folder / "flux-fill", lora=lora,
                                         steps=self.config.tryon_steps, max_side=self.config.tryon_max_side)

        return self._one("painter", make)

    def judge(self) -> QualityJudge | None:
        if self.plan["QualityJudge"] is None:
            return None
        return self.vision_llm()  # type: ignore[return-value]  # GeminiVisionLLM serves both protocols

    def mesh_builder(self) -> MeshBuilder | None:
        if self.plan["MeshBuilder"] is None:
            return None
        from pipeline.backends.gpu.hunyuan_mv import HunyuanMultiViewBuilder

        return self._one("mesh_builder", lambda: HunyuanMultiViewBuilder(
            self._weights("multiview") / "hunyuan3d-dit-v2-mv", steps=self.config.mesh_steps,
            octree_resolution=self.config.mesh_resolution))

    def built(self) -> list[str]:
        """The names of the backends built so far (for the licence check)."""
        names = []
        for backend in self._made.values():
            name = getattr(backend, "name", None)
            names.extend(name.split("+") if isinstance(name, str) else [])
        return names

    def warm_up(self) -> None:
        """Load every planned model now (Modal's `@modal.enter`), then refuse a licence the profile forbids."""
        super().warm_up()
        uses_detector = self.plan["PersonLandmarker"] != "mediapipe-pose"
        for make in ((self.detector, self.segmenter) if uses_detector else ()) + (self.painter, self.mesh_builder):
            backend = make()
            load = getattr(backend, "load", None)
            if callable(load):
                load()
        faces = self.faces()
        if callable(getattr(faces, "load", None)):
            faces.load()  # type: ignore[attr-defined]
        check_profile(self.config.profile, self.built())
