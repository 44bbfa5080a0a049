"""Skirt geometry for dresses and skirts on the CPU path: a shell from the hips to the hem round both legs.

anny's body has two legs; a dress painted on them reads as trousers. Where the garment is a skirt or a dress
(category lower or full, its outline not split into two legs: `pipeline.wardrobe.category.shape_features`) and
the person stands, the dressing adds a shell:
1. Scale and hem (`plan_skirt`): the garment photo's outline gives, per row, its left and right edges. A dress's
   top row sits at the top of the full garment's region (just above the shoulders) and its narrowest row in the
   upper half (its waist) at the body's waist; a skirt's waistband is as wide as the body at the top of the lower
   region. That fixes metres per garment row, so the hem's height is read from the photo (clamped between
   mid-thigh and just above the floor). The dressing paints the torso at the same rows (`GarmentLook.heights`),
   so the print runs on across the hip line.
2. Rings (`skirt_rings`): from the hip line down to the hem, each ring is the convex hull of the body's
   cross-section there (torso and legs, never the hands hanging beside them), eased outward, never narrower than
   the ring above it by more than the garment's own taper, and widened about its centre until its front width
   is the hip ring's times the photo's width at that row over its width at the hip line (the flare follows the
   outline's proportions, whatever the photo's scale), widening no faster than FLARE_SLOPE (no shelf at the hips).
3. Texture (`skirt_texture`): a strip of its own under the body's atlas (u round the ring from the back, v down
   it); texels facing the photo's camera take the cutout, its row by height and its column by where the texel
   lies between the ring's left and right edges as the camera sees them, so the outline fills the skirt's front;
   the back takes the same column (the mirrored point, as `pipeline.fitting.dress` does), a placed print's place
   the fabric tile.
4. Legs: the body's faces inside the shell are dropped (hidden where covered; below the hem they stay).
A seated or crouching person (thighs far from vertical) keeps today's painting on the legs; fitting.json's
`dressing.skirt` says which was done and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.geometry import Camera

RINGS = 28  # rings from the hip line to the hem
AROUND = 72  # vertices per ring (plus one: the seam at the back is split for the UVs)
EASE_M = 0.012  # the shell stands this far off the legs' hull
TOP_EASE_M = 0.004  # ... and this far off the body at the hip line, where it joins the painted torso
SLICE_M = 0.015  # half-height of the body's cross-section band a ring is the hull of
MIN_UPRIGHT = 0.75  # thighs' vertical share (hip-to-knee height over length) under which the pose is seated
MIN_SKIRT_M = 0.12  # a hem less than this below the hips is no skirt to build
FLARE_SLOPE = 0.5  # each side of the skirt widens at most this much per metre it falls (a 27 degree flare)
MIN_TAPER = 0.9  # a ring is at least this share of the ring above it (a pencil skirt's taper)
COCO = {"shoulder": (5, 6), "hip": (11, 12), "knee": (13, 14), "ankle": (15, 16)}
WAIST_SHARE = 0.93  # a dress's narrowest upper row under this share of the rows round it is its waist
SKIRT_PARTS = (0, 4, 5, 6)  # torso, thigh, shin, foot: what a skirt encloses (not the hands beside it)


@dataclass(frozen=True)
class Outline:
    """The garment photo's outline per row: left and right edges (columns), NaN where a row is empty."""

    left: np.ndarray  # (H,) float
    right: np.ndarray  # (H,) float
    top: int  # first garment row
    bottom: int  # last garment row

    def width(self, rows: np.ndarray) -> np.ndarray:
        """(N,) outline width at (fractional) rows, interpolated, 0 outside the garment."""
        w = np.nan_to_num(self.right - self.left + 1, nan=0.0)
        return np.interp(rows, np.arange(len(w)), w, left=0.0, right=0.0)

    def edges(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) left and right edges at (fractional) rows (clamped to the garment's rows)."""
        index = np.arange(len(self.left))
        ok = np.isfinite(self.left)
        rows = np.clip(rows, self.top, self.bottom)
        return np.interp(rows, index[ok], self.left[ok]), np.interp(rows, index[ok], self.right[ok])


@dataclass(frozen=True)
class SkirtPlan:
    """Where the skirt goes on the posed body: heights (world z, metres) and the garment-row mapping."""

    top_z: float  # the hip line: the shell's first ring
    hem_z: float
    anchor_z: float  # the height the anchor row sits at
    anchor_row: float  # the garment row matched to the body's width (a dress's waist, a skirt's waistband)
    metres_per_row: float

    def row(self, z: np.ndarray) -> np.ndarray:
        """Garment rows at world heights."""
        return self.anchor_row + (self.anchor_z - np.asarray(z, np.float64)) / self.metres_per_row

    def z_at(self, row: float) -> float:
        return float(self.anchor_z - (row - self.anchor_row) * self.metres_per_row)


@dataclass(frozen=True)
class SkirtMesh:
    """The shell: a (RINGS, AROUND + 1) grid of vertices, its triangles and UVs in the skirt's own strip."""

    grid: np.ndarray  # (R, A + 1, 3) world points; column A repeats column 0 (the seam at the back)
    centres: np.ndarray  # (R, 3) each ring's centre

    @property
    def vertices(self) -> np.ndarray:
        return self.grid.reshape(-1, 3)

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) triangles, counter-clockwise seen from outside (anny's winding)."""
        rings, cols = self.grid.shape[:2]
        r, c = np.meshgrid(np.arange(rings - 1), np.arange(cols - 1), indexing="ij")
        a = (r * cols + c).ravel()
        b, d = a + 1, a + cols
        e = d + 1
        return np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, e], 1)]).astype(np.int64)

    @property
    def uvs(self) -> np.ndarray:
        """(V, 2) in [0, 1]: u round the ring, v 1 at the top ring and 0 at the hem (v up, as anny's)."""
        rings, cols = self.grid.shape[:2]
        v, u = np.meshgrid(1.0 - np.arange(rings) / (rings - 1), np.arange(cols) / (cols - 1), indexing="ij")
        return np.stack([u.ravel(), v.ravel()], axis=1)


def garment_outline(alpha: np.ndarray) -> Outline | None:
    """The garment's body per row (alpha > 127): the run of garment round its middle column, so sleeves that hang
    apart from the body are not its width; rows whose middle is empty (a slit) take their outer extent. None when
    there is no garment."""
    solid = np.asarray(alpha) > 127
    rows = np.flatnonzero(solid.any(axis=1))
    if len(rows) < 8:
        return None
    width = solid.shape[1]
    cols = np.arange(width)
    centre = int(np.median(np.nonzero(solid)[1]))
    empty = ~solid
    run_left = np.where(empty[:, :centre], cols[:centre], -1).max(axis=1) + 1
    run_right = np.where(empty[:, centre:], cols[centre:], width).min(axis=1) - 1
    outer_left = np.where(solid, cols, width).min(axis=1)
    outer_right = np.where(solid, cols, -1).max(axis=1)
    middle = solid[:, centre]
    left = np.where(middle, run_left, outer_left).astype(np.float64)
    right = np.where(middle, run_right, outer_right).astype(np.float64)
    left[~solid.any(axis=1)] = right[~solid.any(axis=1)] = np.nan
    return Outline(left, right, int(rows[0]), int(rows[-1]))


def is_skirted(alpha: np.ndarray, category: str) -> bool:
    """A skirt or a dress: a lower or full garment whose outline does not split into two legs."""
    from pipeline.wardrobe.category import shape_features

    if category not in ("lower", "full") or not (np.asarray(alpha) > 127).any():
        return False
    return shape_features(np.asarray(alpha, np.float32) / 255.0).leg_split < 0.15


def posed_levels(keypoints_3d: np.ndarray) -> dict[str, float]:
    """World heights of the shoulders, hips, knees and ankles (the mean of each pair)."""
    kp = np.asarray(keypoints_3d, np.float64)
    return {name: float(kp[list(pair), 2].mean()) for name, pair in COCO.items()}


def upright(keypoints_3d: np.ndarray) -> float:
    """The thighs' vertical share: hip-to-knee height over the thigh's length (1 standing, ~0 seated)."""
    kp = np.asarray(keypoints_3d, np.float64)
    shares = []
    for hip, knee in ((11, 13), (12, 14)):
        thigh = kp[hip] - kp[knee]
        shares.append(float(thigh[2] / max(np.linalg.norm(thigh), 1e-6)))
    return min(shares)


def front_width(points: np.ndarray, right: np.ndarray) -> float:
    """The width of points along the horizontal `right` axis (metres)."""
    x = np.asarray(points, np.float64) @ right
    return float(x.max() - x.min()) if len(x) else 0.0


def body_slice(vertices: np.ndarray, part: np.ndarray, z: float) -> np.ndarray:
    """(N, 3) the body's torso and leg vertices within SLICE_M of height z."""
    keep = np.isin(part, SKIRT_PARTS) & (np.abs(vertices[:, 2] - z) < SLICE_M)
    return vertices[keep]


def horizontal_right(camera: Camera) -> np.ndarray:
    """(3,) the camera's right axis, level and unit: the garment photo's width runs along it."""
    right = np.asarray(camera.rotation, np.float64)[0].copy()
    right[2] = 0.0
    return right / max(float(np.linalg.norm(right)), 1e-9)


def _width_scale(outline: Outline, row: float, vertices: np.ndarray, part: np.ndarray, z: float,
                 camera: Camera) -> float | None:
    """Metres per garment row that make the garment at `row` as wide as the body (eased) at height z."""
    body_w = front_width(body_slice(vertices, part, z), horizontal_right(camera)) + 2 * EASE_M
    garment_w = float(outline.width(np.array([row]))[0])
    return body_w / garment_w if body_w > 2 * EASE_M and garment_w > 0 else None


def _dress_scale(outline: Outline, vertices: np.ndarray, part: np.ndarray, levels: dict[str, float],
                 camera: Camera) -> tuple[float, float, float] | None:
    """(anchor row, its world height, metres per row) of a dress. With a waist (the narrowest row of the upper half
    clearly narrower than the rows round it) the top row sits just above the shoulders and the waist at the body's
    waist; a dress without one (a shift) is as wide under its arms as the body's chest."""
    torso = levels["shoulder"] - levels["hip"]
    height = outline.bottom - outline.top + 1
    rows = np.arange(outline.top + int(0.15 * height), outline.top + int(0.5 * height))
    if len(rows) < 3:
        return None
    widths = outline.width(rows)
    waist = int(np.argmin(widths))
    if widths[waist] < WAIST_SHARE * min(widths[0], widths[-1]):
        anchor_z = levels["hip"] + 0.4 * torso
        top_z = levels["shoulder"] + 0.05 * torso
        return float(rows[waist]), anchor_z, (top_z - anchor_z) / max(float(rows[waist] - outline.top), 1.0)
    chest_z = levels["shoulder"] - 0.25 * torso
    metres = _width_scale(outline, float(rows[0]), vertices, part, chest_z, camera)
    return None if metres is None else (float(rows[0]), chest_z, metres)


def plan_skirt(outline: Outline, category: str, vertices: np.ndarray, part: np.ndarray, keypoints_3d: np.ndarray,
               camera: Camera) -> SkirtPlan | None:
    """The skirt's heights and garment-row scale (see the module docstring), or None when there is no skirt."""
    levels = posed_levels(keypoints_3d)
    torso = levels["shoulder"] - levels["hip"]
    height = outline.bottom - outline.top + 1
    if category == "full":
        found = _dress_scale(outline, vertices, part, levels, camera)
    else:  # a skirt: its waistband as wide as the body at the top of the lower region
        band_row, band_z = float(outline.top + 0.02 * height), levels["hip"] + 0.3 * torso
        scale = _width_scale(outline, band_row, vertices, part, band_z, camera)
        found = None if scale is None else (band_row, band_z, scale)
    if found is None:
        return None
    anchor_row, anchor_z, metres = found
    hem = anchor_z - (outline.bottom - anchor_row) * metres
    lowest = levels["ankle"] - 0.03
    highest = levels["hip"] - 0.45 * (levels["hip"] - levels["knee"])
    hem = float(np.clip(hem, lowest, max(highest, lowest)))
    if levels["hip"] - hem < MIN_SKIRT_M:
        return None
    return SkirtPlan(levels["hip"], hem, anchor_z, anchor_row, metres)


def radial_hull(points_xy: np.ndarray, centre: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(A,) distance from `centre` to the convex hull of `points_xy` along each angle."""
    import cv2

    points = np.ascontiguousarray(points_xy, np.float32).reshape(-1, 1, 2)
    hull = cv2.convexHull(points).reshape(-1, 2).astype(np.float64)
    if len(hull) < 3:
        return np.full(len(angles), 0.05)
    edge = np.roll(hull, -1, axis=0) - hull
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    offset = np.einsum("ec,ec->e", normal, hull) - normal @ centre
    flip = np.where(offset < 0, -1.0, 1.0)  # outward from the centre, whatever the hull's orientation
    normal, offset = normal * flip[:, None], offset * flip
    u = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    along = u @ normal.T  # (A, E)
    t = np.where(along > 1e-9, offset[None, :] / np.maximum(along, 1e-9), np.inf)
    return np.minimum(t.min(axis=1), 1.0)


def skirt_rings(plan: SkirtPlan, outline: Outline, vertices: np.ndarray, part: np.ndarray,
                camera: Camera) -> SkirtMesh | None:
    """The shell's rings from the hip line to the hem (see the module docstring); None without a body there."""
    heights = np.linspace(plan.top_z, plan.hem_z, RINGS)
    right = horizontal_right(camera)
    angles = np.arctan2(-right[0], right[1]) + np.linspace(0.0, 2 * np.pi, AROUND + 1)  # from the back
    dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    widths = np.maximum(outline.width(plan.row(heights)), 1.0)  # the garment photo's, in its pixels
    grid = np.empty((RINGS, AROUND + 1, 3))
    centres = np.empty((RINGS, 3))
    previous: np.ndarray | None = None
    top_width = width_above = 0.0
    step = abs(heights[1] - heights[0])
    for k, z in enumerate(heights):
        band = body_slice(vertices, part, z)
        if len(band) < 8:
            if previous is None:
                return None
            band_centre, radius = centres[k - 1, :2], previous
        else:
            band_centre = (band[:, :2].min(axis=0) + band[:, :2].max(axis=0)) / 2
            radius = radial_hull(band[:, :2], band_centre, angles) + (TOP_EASE_M if k == 0 else EASE_M)
        if previous is not None:
            taper = float(np.clip(widths[k] / max(widths[k - 1], 1e-6), MIN_TAPER, 1.0))
            radius = np.maximum(radius, previous * taper)
            band_centre = 0.5 * (band_centre + centres[k - 1, :2])  # a skirt hangs: its centre drifts slowly
        now = front_width(np.column_stack([band_centre + radius[:, None] * dirs, np.zeros(len(dirs))]), right)
        if k == 0:
            top_width = now
        elif (wanted := min(top_width * widths[k] / widths[0], width_above + 2 * FLARE_SLOPE * step)) > now > 0:
            radius = radius * wanted / now  # flares as the photo's outline does, never out in a shelf
        grid[k, :, :2] = band_centre + radius[:, None] * dirs
        width_above = front_width(np.column_stack([grid[k, :, :2], np.zeros(len(dirs))]), right)
        grid[k, :, 2] = z
        centres[k] = (*band_centre, z)
        previous = radius
    grid[:, -1] = grid[:, 0]
    return SkirtMesh(grid, centres)
