"""The fitted body drawn back into the photo, and the numbers that say how well it matches.

`silhouette` fills every projected triangle (OpenCV, one triangle at a time, sub-pixel precision),
`mask_iou` compares two masks and `reprojection_error_px` averages the fitted keypoints' distance to their
targets, weighted as in the fit.
"""

from __future__ import annotations

import numpy as np

from pipeline.geometry import BodyFit, Camera

SUBPIXEL_BITS = 3  # cv2.fillPoly's `shift`: vertex coordinates carry 1/8 px


def project_mesh(vertices: np.ndarray, camera: Camera) -> np.ndarray:
    """(V, 2) pixel positions of world vertices."""
    return camera.project(np.asarray(vertices, dtype=np.float64))


def rasterize(pixels: np.ndarray, faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask covered by the triangles `faces` over the 2D points `pixels`; size is (width, height)."""
    import cv2

    width, height = size
    mask = np.zeros((height, width), dtype=np.uint8)
    scale = float(1 << SUBPIXEL_BITS)
    # Clip far outside the frame so int32 coordinates stay valid; triangles keep their shape inside it.
    limit = 4.0 * max(width, height)
    fixed = np.round(np.clip(pixels, -limit, limit) * scale).astype(np.int32)
    triangles = fixed[faces.astype(np.int64)]  # (F, 3, 2)
    # One call per triangle: a single fillPoly over all of them would apply the even-odd rule and leave
    # holes where triangles overlap (the front and back of the body). ~20 ms for anny's 27k triangles.
    for triangle in triangles:
        cv2.fillConvexPoly(mask, triangle, (1,), cv2.LINE_8, SUBPIXEL_BITS)
    return mask.astype(bool)


def silhouette(fit: BodyFit) -> np.ndarray:
    """(H, W) bool mask of the photo's pixels the fitted body covers."""
    return rasterize(project_mesh(fit.vertices, fit.camera), fit.faces, fit.camera.image_size)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (bool, or float thresholded at 0.5); 0.0 when both are empty."""
    a = a > 0.5 if a.dtype != bool else a
    b = b > 0.5 if b.dtype != bool else b
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def keypoint_errors_px(fit: BodyFit) -> np.ndarray:
    """(K,) distance in pixels of each fitted keypoint to its target (also where the target is unused)."""
    return np.linalg.norm(fit.keypoints_2d - fit.targets_2d[:, :2], axis=1)


def reprojection_error_px(fit: BodyFit) -> float:
    """Mean distance of the fitted keypoints to their targets over the keypoints used, weighted by the
    weights they were fitted with (so the low-weight ears count little); 0.0 when none was used."""
    weights = fit.targets_2d[:, 2]
    if weights.sum() <= 0:
        return 0.0
    return float((keypoint_errors_px(fit) * weights).sum() / weights.sum())
