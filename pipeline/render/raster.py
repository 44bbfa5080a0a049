"""A vectorized z-buffer rasterizer on the CPU (torch): which triangle each pixel sees, where, and how far.

Every triangle in front of the camera and facing it is expanded to the pixels of its bounding box; the
pixels inside it (edge functions, pixel centres at (i + 0.5, j + 0.5)) compete in one `scatter_reduce`
(`amin`) on a 64-bit key: the depth's float32 bits (positive floats sort as their bits do) above the triangle
id, so the nearest triangle wins and ties break the same way on every run. Barycentrics are
perspective-correct (interpolated as l_i / z_i, then normalised). A triangle with a vertex closer than
`near` is skipped rather than clipped: the body never straddles the camera plane.

torch's intra-op thread count is not the rasterizer's to change per call: torch gives each thread that starts
using it the count set last, from any thread, so setting and restoring it around every call, from several
worker threads at once, handed other threads whatever count was current as they started (and with it another
order of their float reductions). The first call that names a count sets it, once; later calls leave it. The
rasterizer's own output does not depend on the count.

torch is imported inside the functions only (see tests/test_architecture.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.geometry import Camera

if TYPE_CHECKING:
    import torch

NEAR_M = 1e-3  # triangles with a vertex nearer than this (metres, camera z) are skipped
_EDGE_TOLERANCE = 1e-6  # barycentric slack so that a pixel on a shared edge is never lost to both triangles
_SPAN_MARGIN_PX = 0.05  # a row's span, found in float64, is this much wider than exact: the float32 test decides
_BACKGROUND_KEY = np.iinfo(np.int64).max
_threads_lock = threading.Lock()
_threads_set = False


@dataclass(frozen=True)
class Raster:
    """What each pixel sees; arrays of the image's shape (H, W)."""

    triangle: np.ndarray  # (H, W) int64: the triangle seen, -1 for background
    bary: np.ndarray  # (H, W, 3) float32: perspective-correct barycentrics of that triangle (0 on background)
    depth: np.ndarray  # (H, W) float32: camera-frame z in metres, +inf on background

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: the pixels that see a triangle."""
        return self.triangle >= 0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.triangle.shape[1], self.triangle.shape[0]


def set_torch_threads_once(threads: int | None) -> None:
    """Set torch's intra-op thread count (this thread's, and the one threads starting later take) the first
    time a count is given; later calls, with any count, leave it as it is (None: leave torch's setting)."""
    global _threads_set
    if threads is None or _threads_set:
        return
    with _threads_lock:
        if not _threads_set:
            import torch

            torch.set_num_threads(threads)
            _threads_set = True


def rasterize(
    vertices: np.ndarray, faces: np.ndarray, camera: Camera, *, cull_back: bool = True, near: float = NEAR_M,
    threads: int | None = 1,
) -> Raster:
    """Rasterize a triangle mesh (world frame) as `camera` sees it, at `camera.image_size`.

    With `cull_back`, triangles whose outward normal (counter-clockwise winding, as anny's) points away from
    the camera are dropped before rasterizing; the z-buffer alone would give the same picture for a closed
    mesh, only slower. `threads` is torch's intra-op thread count, set by the first call in the process (see
    the module docstring); later calls do not change it.
    """
    import torch

    set_torch_threads_once(threads)
    with torch.no_grad():
        width, height = camera.image_size
        screen, z, keep = _project(vertices, faces, camera, cull_back=cull_back, near=near)
        pixel, tri, bary, depth = _fragments(screen, z, keep, width, height)
        return _resolve(pixel, tri, bary, depth, width, height)


def _project(
    vertices: np.ndarray, faces: np.ndarray, camera: Camera, *, cull_back: bool, near: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per triangle: screen corners (F, 3, 2), camera z (F, 3) and whether to rasterize it (F,)."""
    import torch

    rot = torch.as_tensor(np.ascontiguousarray(camera.rotation, dtype=np.float64))
    shift = torch.as_tensor(np.asarray(camera.translation, dtype=np.float64))
    cam = torch.as_tensor(np.ascontiguousarray(vertices, dtype=np.float64)) @ rot.T + shift
    corners = cam[torch.as_tensor(np.ascontiguousarray(faces, dtype=np.int64))]  # (F, 3, 3)
    z = corners[..., 2]
    keep = (z > near).all(dim=1)
    if cull_back:
        normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        keep &= (normal * corners[:, 0]).sum(dim=1) < 0  # the outward normal points towards the camera
    safe_z = z.clamp(min=near)
    u = camera.focal_px * corners[..., 0] / safe_z + camera.cx
    v = camera.focal_px * corners[..., 1] / safe_z + camera.cy
    screen = torch.stack([u, v], dim=-1)
    return screen.float(), z.float(), keep


def _boxes(screen: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, ...]:
    """Per triangle, the pixel box whose centres may fall inside: x0, y0 and its width and height (0 if none)."""
    import torch

    low = torch.ceil(screen.amin(dim=1) - 0.5).clamp(min=0)
    high = torch.floor(screen.amax(dim=1) - 0.5)
    high = torch.stack([high[:, 0].clamp(max=width - 1), high[:, 1].clamp(max=height - 1)], dim=1)
    span = (high - low + 1).clamp(min=0).long()
    return low[:, 0].long(), low[:, 1].long(), span[:, 0], span[:, 1]


def _fragments(
    screen: torch.Tensor, z: torch.Tensor, keep: torch.Tensor, width: int, height: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (pixel, triangle) pair with the pixel centre inside the triangle: flat pixel index, triangle id,
    perspective-correct barycentrics (N, 3) and depth (N,).

    Candidates are each triangle's pixel rows, and on each row only the span between its edges (found in
    float64, a twentieth of a pixel wider each side): on a body's slivers well under half the bounding box's
    pixels. Every candidate then takes the same float32 inside test as a box's pixel would."""
    import torch

    ids = torch.nonzero(keep).squeeze(1)
    a, b, c = screen[ids, 0], screen[ids, 1], screen[ids, 2]
    ab, ac = b - a, c - a
    area = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    x0, y0, w, h = _boxes(screen[ids], width, height)
    row_tri, row_y, left, span = _row_spans(a, ab, ac, area, x0, y0, w, h)
    row = torch.repeat_interleave(span)  # each candidate's (triangle, row) pair
    local_tri = row_tri[row]
    px = left[row] + torch.arange(len(row)) - (torch.cumsum(span, 0) - span)[row]
    py = row_y[row]
    dx = px.float() + 0.5 - a[local_tri, 0]
    dy = py.float() + 0.5 - a[local_tri, 1]
    inv = 1.0 / area[local_tri]
    l1 = (dx * ac[local_tri, 1] - dy * ac[local_tri, 0]) * inv
    l2 = (ab[local_tri, 0] * dy - ab[local_tri, 1] * dx) * inv
    lam = torch.stack([1.0 - l1 - l2, l1, l2], dim=1)
    inside = (lam >= -_EDGE_TOLERANCE).all(dim=1)
    lam, local_tri = lam[inside].clamp(min=0), local_tri[inside]
    weights = lam / z[ids[local_tri]]
    total = weights.sum(dim=1, keepdim=True)
    return (py * width + px)[inside], ids[local_tri], weights / total, 1.0 / total.squeeze(1)


def _row_spans(
    a: torch.Tensor, ab: torch.Tensor, ac: torch.Tensor, area: torch.Tensor,
    x0: torch.Tensor, y0: torch.Tensor, w: torch.Tensor, h: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Per (triangle, pixel row) of each box: the triangle's local index, the row, the first column to test
    and how many. On a row each barycentric is linear in x (slope s, value t at x = 0), so the columns where
    all three are >= -tolerance form one interval; it is widened by `_SPAN_MARGIN_PX` and clipped to the box."""
    import torch

    rows = h * (area != 0)
    row_tri = torch.repeat_interleave(torch.arange(len(a)), rows)
    row_y = y0[row_tri] + torch.arange(int(rows.sum())) - (torch.cumsum(rows, 0) - rows)[row_tri]
    corner, ab_t, ac_t = a[row_tri].double(), ab[row_tri].double(), ac[row_tri].double()
    inv = 1.0 / area[row_tri].double()
    dy = row_y.double() + 0.5 - corner[:, 1]
    s1, t1 = ac_t[:, 1] * inv, (-dy * ac_t[:, 0] - corner[:, 0] * ac_t[:, 1]) * inv  # l1 = s1 x + t1
    s2, t2 = -ab_t[:, 1] * inv, (ab_t[:, 0] * dy + corner[:, 0] * ab_t[:, 1]) * inv  # l2 = s2 x + t2
    slopes = torch.stack([-(s1 + s2), s1, s2], dim=1)
    values = torch.stack([1.0 - t1 - t2, t1, t2], dim=1)
    bound = (-_EDGE_TOLERANCE - values) / torch.where(slopes == 0, torch.ones_like(slopes), slopes)
    never = (slopes == 0) & (values < -_EDGE_TOLERANCE)
    lows = torch.where(slopes > 0, bound, torch.where(never, float("inf"), float("-inf")))
    highs = torch.where(slopes < 0, bound, torch.where(never, float("-inf"), float("inf")))
    lo, hi = lows.amax(dim=1).clamp(-1e6, 1e6), highs.amin(dim=1).clamp(-1e6, 1e6)
    left = torch.maximum(torch.ceil(lo - 0.5 - _SPAN_MARGIN_PX).long(), x0[row_tri])
    right = torch.minimum(torch.floor(hi - 0.5 + _SPAN_MARGIN_PX).long(), x0[row_tri] + w[row_tri] - 1)
    return row_tri, row_y, left, (right - left + 1).clamp(min=0)


def _resolve(
    pixel: torch.Tensor, tri: torch.Tensor, bary: torch.Tensor, depth: torch.Tensor, width: int, height: int,
) -> Raster:
    """The z-buffer: per pixel, the fragment with the smallest depth (then the smallest triangle id)."""
    import torch

    key = (depth.contiguous().view(torch.int32).long() << 32) | tri
    best = torch.full((width * height,), _BACKGROUND_KEY, dtype=torch.int64)
    best.scatter_reduce_(0, pixel, key, reduce="amin")
    won = key == best[pixel]
    pixel = pixel[won]
    triangle = torch.full((width * height,), -1, dtype=torch.int64)
    triangle[pixel] = tri[won]
    bary_out = torch.zeros((width * height, 3), dtype=torch.float32)
    bary_out[pixel] = bary[won]
    depth_out = torch.full((width * height,), float("inf"), dtype=torch.float32)
    depth_out[pixel] = depth[won]
    return Raster(
        triangle=triangle.numpy().reshape(height, width),
        bary=bary_out.numpy().reshape(height, width, 3),
        depth=depth_out.numpy().reshape(height, width),
    )
