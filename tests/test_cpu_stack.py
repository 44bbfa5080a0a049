"""The CPU model stack installs from the reachable registries and carries its own weights.

No model runs here (the phases that use them have their own tests); this checks that the pinned stack
is importable together and that the model files the CPU default path loads are inside the packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_torch_is_the_cpu_build_next_to_numpy_1() -> None:
    import numpy
    import torch

    assert torch.__version__.startswith("2.13.0")
    assert numpy.__version__.startswith("1.")
    assert torch.zeros(2, 3).sum().item() == 0.0


def test_mediapipe_legacy_solutions_and_their_models_ship_in_the_wheel() -> None:
    import mediapipe as mp

    assert mp.__version__ == "0.10.21"
    assert hasattr(mp.solutions, "pose") and hasattr(mp.solutions, "selfie_segmentation")
    root = Path(mp.__file__).parent / "modules"
    for model in ("pose_landmark/pose_landmark_full.tflite", "pose_detection/pose_detection.tflite",
                  "selfie_segmentation/selfie_segmentation.tflite"):
        assert (root / model).stat().st_size > 100_000, model


def test_dlib_face_models_are_found_without_importing_pkg_resources() -> None:
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    models = Path(spec.submodule_search_locations[0]) / "models"
    for name in ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"):
        assert (models / name).stat().st_size > 1_000_000, name
    assert dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")) is not None


def test_anny_imports_without_its_gpu_dependency() -> None:
    import sys

    import anny

    assert hasattr(anny, "Anny") and "warp" not in sys.modules
