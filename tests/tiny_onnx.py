"""Tiny random-weight ONNX models with the signatures InsightFace routes by: a code-path fixture, not a face model.

insightface's `model_zoo.ModelRouter` decides what an ONNX file is from its inputs and outputs alone:
- 5 or more outputs: an SCRFD detector. With 9 outputs it reads three strides (8, 16, 32), two anchors per
  location and keypoints: outputs 0-2 are the scores (K, 1), 3-5 the box distances (K, 4) and 6-8 the five
  keypoints (K, 10) of strides 8, 16 and 32, where K = (H / stride) * (W / stride) * 2, rows ordered by
  location (row-major) then anchor. Distances and keypoints are in units of the stride from the anchor centre
  (the top-left corner of its cell); insightface multiplies them by the stride.
- one square input of 112 (or more, a multiple of 16) and one output: an ArcFace recognition model,
  (N, 3, 112, 112) -> (N, 512).

The detector's weights are small and random, but its biases are set so it behaves predictably: only the
stride-32 head can fire, and it fires on a cell whose pixels are (nearly) all white, with a box of two cells
centred on that cell and the five points inside it. Draw a white 32 x 32 square on a 32-aligned cell of a dark
image and run it at det_size = the image's size: the pipeline finds exactly that one "face".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 10  # onnxruntime 1.31 reads it; newer IRs need newer runtimes
STRIDES = (8, 16, 32)
ANCHORS = 2
FIRING_STRIDE = 32
WHITE_GAIN, WHITE_BIAS = 40.0, -36.0  # logit = gain * mean(normalised cell) + bias: > 0 only for a ~white cell
QUIET_BIAS = -20.0  # the other strides' score logit: never above the threshold
BOX = (0.5, 0.5, 1.5, 1.5)  # left, top, right, bottom distances in strides: a 2-cell box centred on the cell
KEYPOINTS = ((0.25, 0.3), (0.75, 0.3), (0.5, 0.55), (0.3, 0.8), (0.7, 0.8))  # eyes, nose, mouth corners, in strides
EMBEDDING = 512


def write_scrfd_detector(path: Path, seed: int = 0) -> Path:
    """An SCRFD-style detector: input (1, 3, H, W) with H and W free, 9 outputs as insightface reads them."""
    rng = np.random.default_rng(seed)
    nodes, weights, outputs = [], [], []
    shapes = {"score": 1, "bbox": 4, "kps": 10}
    for kind, width in shapes.items():
        for stride in STRIDES:
            name = f"{kind}_{stride}"
            kernel = rng.normal(0.0, 1e-4, (ANCHORS * width, 3, stride, stride)).astype(np.float32)
            bias = head_bias(kind, stride)
            if kind == "score" and stride == FIRING_STRIDE:
                kernel += WHITE_GAIN / (3 * stride * stride)  # the cell's mean, scaled
            weights += [numpy_helper.from_array(kernel, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")]
            nodes.append(helper.make_node("Conv", ["input.1", f"{name}_w", f"{name}_b"], [f"{name}_conv"],
                                          name=f"conv_{name}", kernel_shape=[stride, stride], strides=[stride, stride]))
            last = f"{name}_conv"
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [last], [f"{name}_sig"], name=f"sigmoid_{name}"))
                last = f"{name}_sig"
            nodes.append(helper.make_node("Transpose", [last], [f"{name}_hwc"], name=f"transpose_{name}",
                                          perm=[0, 2, 3, 1]))
            weights.append(numpy_helper.from_array(np.array([-1, width], dtype=np.int64), f"{name}_shape"))
            nodes.append(helper.make_node("Reshape", [f"{name}_hwc", f"{name}_shape"], [name], name=f"reshape_{name}"))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"k{stride}", width]))
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])
    graph = helper.make_graph(nodes, "tiny_scrfd", [image], outputs, initializer=weights)
    return save(graph, path)


def head_bias(kind: str, stride: int) -> np.ndarray:
    """The per-anchor biases of one head (both anchors alike)."""
    if kind == "score":
        one = [WHITE_BIAS if stride == FIRING_STRIDE else QUIET_BIAS]
    elif kind == "bbox":
        one = list(BOX)
    else:
        one = [v for point in KEYPOINTS for v in point]
    return np.array(one * ANCHORS, dtype=np.float32)


def write_arcface_recognizer(path: Path, seed: int = 1) -> Path:
    """An ArcFace-style recognizer: (N, 3, 112, 112) -> (N, 512), a strided conv and a linear layer."""
    rng = np.random.default_rng(seed)
    conv = rng.normal(0.0, 0.05, (8, 3, 16, 16)).astype(np.float32)
    fc = rng.normal(0.0, 0.05, (8 * 7 * 7, EMBEDDING)).astype(np.float32)
    weights = [
        numpy_helper.from_array(conv, "conv_w"),
        numpy_helper.from_array(np.zeros(8, dtype=np.float32), "conv_b"),
        numpy_helper.from_array(fc, "fc_w"),
        numpy_helper.from_array(rng.normal(0.0, 0.05, EMBEDDING).astype(np.float32), "fc_b"),
    ]
    nodes = [  # names must not start with Sub/Mul: insightface would take it for an mxnet model (no input scaling)
        helper.make_node("Conv", ["input.1", "conv_w", "conv_b"], ["features"], name="conv_0",
                         kernel_shape=[16, 16], strides=[16, 16]),
        helper.make_node("Relu", ["features"], ["relu"], name="relu_0"),
        helper.make_node("Flatten", ["relu"], ["flat"], name="flatten_0", axis=1),
        helper.make_node("MatMul", ["flat", "fc_w"], ["matmul"], name="fc_0"),
        helper.make_node("Add", ["matmul", "fc_b"], ["embedding"], name="fc_bias_0"),
    ]
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])
    embedding = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBEDDING])
    graph = helper.make_graph(nodes, "tiny_arcface", [image], [embedding], initializer=weights)
    return save(graph, path)


def write_face_pack(folder: Path) -> Path:
    """A model folder as `FaceAnalysis(name=folder)` expects it (buffalo_l's layout): detector + recognizer."""
    folder.mkdir(parents=True, exist_ok=True)
    write_scrfd_detector(folder / "det_tiny.onnx")
    write_arcface_recognizer(folder / "w_tiny.onnx")
    return folder


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dropfit-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
