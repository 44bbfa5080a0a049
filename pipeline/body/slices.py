"""Horizontal cross-sections of a mesh and the loops in them, for tape-measure girths.

A plane z = h cuts each triangle that straddles it along one segment; the segments' ends lie on mesh edges,
so segments that share an edge chain into the section's loops (torso, arms, legs). A tape measure around
a loop follows its convex hull, so a girth is the hull's perimeter. OpenCV computes the hulls.
"""

from __future__ import annotations

import numpy as np


def section(vertices: np.ndarray, faces: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray]:
    """The cut of the mesh at z = height: segment end points (N, 2, 2) in (x, y), and each segment's loop
    label (N,) (segments chained through shared mesh edges get the same label)."""
    z = vertices[:, 2] - height
    above = z[faces] > 0  # (F, 3)
    crossing = above.any(1) & ~above.all(1)
    tri = faces[crossing]
    if len(tri) == 0:
        return np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64)
    # For each crossing triangle, the two edges whose ends lie on opposite sides of the plane.
    edges = np.stack([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]], 1)  # (T, 3, 2)
    side = above[crossing]
    cut = side[:, [0, 1, 2]] != side[:, [1, 2, 0]]  # (T, 3): exactly two True per triangle
    cut_edges = np.sort(edges[cut].reshape(-1, 2, 2), axis=2)  # (T, 2, 2) vertex pairs, sorted
    za, zb = z[cut_edges[..., 0]], z[cut_edges[..., 1]]
    t = (za / (za - zb))[..., None]
    points = vertices[cut_edges[..., 0], :2] * (1 - t) + vertices[cut_edges[..., 1], :2] * t
    keys = cut_edges[..., 0].astype(np.int64) * len(vertices) + cut_edges[..., 1]
    _, edge_ids = np.unique(keys.ravel(), return_inverse=True)
    edge_ids = edge_ids.reshape(-1, 2)
    labels = connected(edge_ids, int(edge_ids.max()) + 1)
    return points, labels[edge_ids[:, 0]]


def connected(pairs: np.ndarray, count: int) -> np.ndarray:
    """Component label (the smallest node id) of each of `count` nodes joined by the (N, 2) `pairs`."""
    labels = np.arange(count)
    while True:
        low = np.minimum(labels[pairs[:, 0]], labels[pairs[:, 1]])
        updated = labels.copy()
        np.minimum.at(updated, pairs[:, 0], low)
        np.minimum.at(updated, pairs[:, 1], low)
        updated = updated[updated]  # pointer jumping: converge in a few rounds, not one per loop length
        if np.array_equal(updated, labels):
            return labels
        labels = updated


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull of 2D points (M, 2), counter-clockwise (y up)."""
    import cv2

    if len(points) < 3:
        return points
    hull = cv2.convexHull(points.astype(np.float32), clockwise=False)[:, 0, :].astype(np.float64)
    return hull if polygon_area(hull) >= 0 else hull[::-1]


def polygon_area(polygon: np.ndarray) -> float:
    """Signed area (positive for counter-clockwise with y up)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum())


def perimeter(polygon: np.ndarray) -> float:
    return float(np.linalg.norm(polygon - np.roll(polygon, 1, axis=0), axis=1).sum()) if len(polygon) > 1 else 0.0


def contains(polygon: np.ndarray, point: np.ndarray) -> bool:
    """Whether a convex counter-clockwise polygon holds the point."""
    if len(polygon) < 3:
        return False
    edge = np.roll(polygon, -1, axis=0) - polygon
    towards = point - polygon
    cross = edge[:, 0] * towards[:, 1] - edge[:, 1] * towards[:, 0]  # 2-D cross product (NumPy 2 refuses np.cross)
    return bool((cross >= 0).all())


def loop_around(vertices: np.ndarray, faces: np.ndarray, height: float, centre: np.ndarray) -> np.ndarray | None:
    """The convex hull of the section loop at z = height that encloses `centre` (x, y) (the torso's, when
    `centre` lies inside the trunk); None when no loop does (e.g. below the crotch)."""
    points, labels = section(vertices, faces, height)
    best: np.ndarray | None = None
    for label in np.unique(labels):
        hull = convex_hull(points[labels == label].reshape(-1, 2))
        if contains(hull, centre) and (best is None or perimeter(hull) > perimeter(best)):
            best = hull
    return best


def faces_between(vertices: np.ndarray, faces: np.ndarray, low: float, high: float) -> np.ndarray:
    """The faces that reach into the band low <= z <= high: the only ones sections in the band can cut."""
    z = vertices[faces, 2]
    return faces[(z.max(1) >= low) & (z.min(1) <= high)]
