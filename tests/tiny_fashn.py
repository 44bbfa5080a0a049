"""A tiny random-weight FASHN VTON v1.5 folder, laid out as `dropfit weights pull --only fashn` lays out the real one.

    fashn/model.safetensors            the try-on network (`TryOnModel`), bf16 like the released file
    fashn/dwpose/yolox_l.onnx          a person detector with YOLOX-L's signature: (1, 3, 640, 640) -> (1, 8400, 85)
    fashn/dwpose/dw-ll_ucoco_384.onnx  a whole-body pose model with DWPose-l's: (1, 3, 384, 288) -> SimCC x, y

The network is the released architecture (`fashn_mmdit.ModelShape`) shrunk: hidden 64, two heads of 32, one block
of each kind, and 48-pixel patches so that it runs at the real 576x864 on CPU in well under a second; the adapter
reads that shape back from the tensors, as it reads the real one. The ONNX models are code-path fixtures, not
detectors: their outputs are a fixed bias plus a small function of the image's mean colour, set so that the
detector always finds one person (`PERSON_BOX`, in the 640 letterbox) and the pose model always puts the 133
keypoints where `CROP_KEYPOINTS` says (in the 288x384 crop), so every step of DWPose's decoding has an answer
to check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from pipeline.backends.gpu.fashn_mmdit import ModelShape, TryOnModel
from tiny_onnx import save

DETECTOR_ROWS = 8400  # 80 * 80 + 40 * 40 + 20 * 20 cells (strides 8, 16, 32) of a 640 input
PERSON_CELL = (6, 9)  # (column, row) of the stride-32 cell that fires
PERSON_SIZE = (160.0, 384.0)  # (w, h) of its box, 640-letterbox pixels
PERSON_BOX = tuple((PERSON_CELL[i % 2] + 0.5) * 32 + (-0.5 if i < 2 else 0.5) * PERSON_SIZE[i % 2] for i in range(4))
POSE_INPUT = (288, 384)  # (w, h)
SIMCC_SPLIT = 2


def tiny_shape() -> ModelShape:
    return ModelShape(hidden_size=64, n_heads=2, double_blocks_depth=1, single_blocks_depth=1, patch_size=48,
                      axes_dim=(4, 14, 14), patch_mixer_depth=1)


def write_tiny_network(path: Path, seed: int = 0) -> Path:
    """A random TryOnModel of `tiny_shape()` saved as bf16 safetensors."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = TryOnModel(tiny_shape())
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def crop_keypoints() -> np.ndarray:
    """(133, 2) crop pixels of a standing figure facing the camera: body, feet, face ring, two open hands."""
    body = [(144, 60), (152, 54), (136, 54), (160, 58), (128, 58), (176, 100), (112, 100), (190, 150), (98, 150),
            (196, 196), (92, 196), (164, 200), (124, 200), (166, 270), (122, 270), (166, 340), (122, 340)]
    feet = [(170, 352), (176, 350), (162, 348), (118, 352), (112, 350), (126, 348)]
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    face = np.stack([144 + 12 * np.cos(angles), 62 + 14 * np.sin(angles)], axis=1)
    fan = np.array([(0, 0)] + [(dx, 4 + 4 * j) for dx in (-6, -3, 0, 3, 6) for j in range(4)], dtype=float)
    hands = [fan + body[9], fan + body[10]]  # left wrist, right wrist
    return np.concatenate([np.array(body + feet, float), face, *hands]).round()


CROP_KEYPOINTS = crop_keypoints()


def _broadcast_head(nodes: list, weights: list, name: str, rows: int, columns: int, bias: np.ndarray,
                    rng: np.random.Generator, gain: float) -> None:
    """name = bias (1, rows, columns) + mean colour (1, 3) @ W (3, columns), the product broadcast over the rows;
    W ~ N(0, gain): small enough that the bias decides the answer."""
    weights += [numpy_helper.from_array(rng.normal(0, gain, (3, columns)).astype(np.float32), f"{name}_w"),
                numpy_helper.from_array(bias.reshape(1, rows, columns).astype(np.float32), f"{name}_b"),
                numpy_helper.from_array(np.array([1], dtype=np.int64), f"{name}_axis")]
    nodes += [helper.make_node("MatMul", ["colour", f"{name}_w"], [f"{name}_mm"], name=f"{name}_matmul"),
              helper.make_node("Unsqueeze", [f"{name}_mm", f"{name}_axis"], [f"{name}_row"], name=f"{name}_unsq"),
              helper.make_node("Add", [f"{name}_row", f"{name}_b"], [name], name=f"{name}_add")]


def _colour_nodes(input_name: str) -> list:
    return [helper.make_node("GlobalAveragePool", [input_name], ["pooled"], name="pool"),
            helper.make_node("Flatten", ["pooled"], ["colour"], name="flatten", axis=1)]


def write_tiny_detector(path: Path, seed: int = 0) -> Path:
    """YOLOX-L's signature; exactly one stride-32 row (PERSON_CELL) scores as a person, with box PERSON_SIZE."""
    bias = np.zeros((DETECTOR_ROWS, 85), np.float32)
    row = 80 * 80 + 40 * 40 + PERSON_CELL[1] * 20 + PERSON_CELL[0]
    bias[row, :6] = (0.5, 0.5, np.log(PERSON_SIZE[0] / 32), np.log(PERSON_SIZE[1] / 32), 0.95, 0.9)
    nodes, weights = _colour_nodes("images"), []
    _broadcast_head(nodes, weights, "output", DETECTOR_ROWS, 85, bias, np.random.default_rng(seed), 1e-7)  # 0..255
    graph = helper.make_graph(nodes, "tiny_yolox", [helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, [1, 3, 640, 640])], [helper.make_tensor_value_info(
            "output", TensorProto.FLOAT, [1, DETECTOR_ROWS, 85])], initializer=weights)
    return save(graph, path)


def write_tiny_pose(path: Path, seed: int = 1) -> Path:
    """DWPose-l's signature; keypoint k peaks (0.9) at CROP_KEYPOINTS[k] in SimCC's half-pixel bins."""
    width, height = POSE_INPUT
    x_bias = np.zeros((133, width * SIMCC_SPLIT), np.float32)
    y_bias = np.zeros((133, height * SIMCC_SPLIT), np.float32)
    for k, (x, y) in enumerate(CROP_KEYPOINTS):
        x_bias[k, int(x * SIMCC_SPLIT)] = 0.9
        y_bias[k, int(y * SIMCC_SPLIT)] = 0.9
    nodes, weights = _colour_nodes("input"), []
    rng = np.random.default_rng(seed)
    _broadcast_head(nodes, weights, "simcc_x", 133, width * SIMCC_SPLIT, x_bias, rng, 1e-3)  # a normalised input
    _broadcast_head(nodes, weights, "simcc_y", 133, height * SIMCC_SPLIT, y_bias, rng, 1e-3)
    outputs = [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, 133, width * SIMCC_SPLIT]),
               helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, 133, height * SIMCC_SPLIT])]
    graph = helper.make_graph(nodes, "tiny_dwpose", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 3, height, width])], outputs, initializer=weights)
    return save(graph, path)


def write_tiny_fashn(folder: Path) -> Path:
    """`folder` (created) as the `fashn` weights key: the network and DWPose's two ONNX files."""
    write_tiny_network(folder / "model.safetensors")
    write_tiny_detector(folder / "dwpose" / "yolox_l.onnx")
    write_tiny_pose(folder / "dwpose" / "dw-ll_ucoco_384.onnx")
    return folder
