"""What the garment looks like: dominant colours, a print or logo region, and a plain fabric crop.

- Colours: k-means in Lab (perceptual distances) on a sample of the garment's inner pixels; clusters
  closer than a just-noticeable-ish difference are merged, tiny ones dropped.
- Print / logo: dense, contrasty detail (the density of strong edges in a window) over most of the
  garment is an all-over pattern; otherwise solid patches of dense detail in colours other than the
  fabric's (text, graphics; not seams, folds, ruffles or buttons), or compact areas of another colour
  clear of the outline (a plain patch or badge), make a placed print with its box.
- Texture crop: the largest axis-aligned rectangle of pure fabric (no background, away from a placed
  print), the sample phase 3 tiles where the front photo does not reach (sides, back).
All work happens on a copy about 256 px on its long side (enough for these statistics), boxes are
returned in photo pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1 / y1 exclusive, photo pixels
PrintKind = Literal["none", "placed", "all-over"]
ANALYSIS_SIDE = 256
K = 6
MERGE_DELTA_E = 10.0
MIN_SHARE = 0.03
PRINT_DENSITY = 0.15  # share of strong-edge pixels around a pixel of print (seams, folds: well below)
PRINT_MIN_AREA = 0.015  # of the garment
PRINT_MIN_SIDE = 0.08  # of the garment's width, the print's shorter side
PRINT_SOLIDITY = 0.3  # of its bounding box
PRINT_OFF_BASE = 25.0  # Delta E from the fabric's main colour that counts as another colour
PRINT_MIN_CONTRAST = 0.2  # share of a print's pixels in other colours than the fabric's
ALL_OVER = 0.6  # print over more of the garment than this: a pattern, not a placed print


@dataclass(frozen=True)
class Swatch:
    hex: str
    share: float  # of the garment's pixels
    lab: tuple[float, float, float]


@dataclass(frozen=True)
class PrintRegion:
    kind: PrintKind
    box: Box | None
    share: float  # of the garment's pixels that are print


@dataclass(frozen=True)
class Appearance:
    colours: tuple[Swatch, ...]
    print_region: PrintRegion
    texture_box: Box


def _small(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    import cv2

    h, w = mask.shape
    scale = min(1.0, ANALYSIS_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    return small_rgb, small_mask, scale


def lab_to_hex(lab: np.ndarray) -> str:
    import cv2

    rgb = cv2.cvtColor(np.asarray(lab, np.float32).reshape(1, 1, 3), cv2.COLOR_Lab2RGB).reshape(3)
    r, g, b = (int(round(float(np.clip(c, 0, 1)) * 255)) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _merge(centres: np.ndarray, counts: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Greedy merge of clusters closer than MERGE_DELTA_E, largest first (weighted centre)."""
    order = np.argsort(-counts)
    merged: list[list] = []
    for i in order:
        for group in merged:
            if np.linalg.norm(group[0] - centres[i]) < MERGE_DELTA_E:
                total = group[1] + counts[i]
                group[0] = (group[0] * group[1] + centres[i] * counts[i]) / total
                group[1] = total
                break
        else:
            merged.append([centres[i].astype(np.float64), float(counts[i])])
    return [(c, n) for c, n in merged]


def _plus_plus_centres(data: np.ndarray, k: int, rng: np.random.Generator, trials: int = 3) -> np.ndarray:
    """(k, D) starting centres by greedy k-means++, as OpenCV draws them: of `trials` candidates drawn by
    squared distance to the centres so far, the one that leaves the smallest total."""
    points = data.astype(np.float64)
    centres = [points[rng.integers(len(points))]]
    closest = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        draws = rng.random(trials) * closest.sum()
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws, side="right"), len(points) - 1)
        with_each = np.minimum(closest, ((points[None] - points[candidates][:, None]) ** 2).sum(axis=2))
        best = int(np.argmin(with_each.sum(axis=1)))
        centres.append(points[candidates[best]])
        closest = with_each[best]
    return np.stack(centres)


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, *, attempts: int, max_iter: int,
           eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) and centres (k, D) of the most compact of `attempts` OpenCV k-means runs, each from
    k-means++ centres drawn with `rng`. The same input and seed give the same clusters on any thread, whatever
    ran before: OpenCV's own k-means++ draws from its per-thread RNG, and cv2.setRNGSeed is process state."""
    import cv2

    data = np.ascontiguousarray(points, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, max_iter, eps)

    def run() -> tuple[float, np.ndarray, np.ndarray]:
        centres = _plus_plus_centres(data, k, rng)
        start = ((data[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1).astype(np.int32)[:, None]
        return cv2.kmeans(data, k, start, criteria, 1, cv2.KMEANS_USE_INITIAL_LABELS)

    _, labels, centres = min((run() for _ in range(max(1, attempts))), key=lambda result: result[0])
    return labels.ravel(), centres


def dominant_colours(lab_pixels: np.ndarray, seed: int = 7) -> tuple[Swatch, ...]:
    """Up to K colours with their shares (>= MIN_SHARE), largest first. Deterministic for a given input."""
    if len(lab_pixels) == 0:
        return ()
    rng = np.random.default_rng(seed)
    sample = lab_pixels[rng.choice(len(lab_pixels), min(4000, len(lab_pixels)), replace=False)]
    k = min(K, len(np.unique(np.round(sample), axis=0)))
    labels, centres = kmeans(sample, k, rng, attempts=2, max_iter=30, eps=0.5)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    groups = [(c, n / counts.sum()) for c, n in _merge(centres, counts)]
    groups = [(c, s) for c, s in groups if s >= MIN_SHARE]
    total = sum(s for _, s in groups) or 1.0
    return tuple(Swatch(lab_to_hex(c), round(s / total, 3), tuple(round(float(v), 1) for v in c))  # type: ignore[arg-type]
                 for c, s in sorted(groups, key=lambda g: -g[1]))


def _to_photo(box: Box, scale: float, shape: tuple[int, int]) -> Box:
    h, w = shape
    x0, y0, x1, y1 = box
    return (max(0, int(x0 / scale)), max(0, int(y0 / scale)), min(w, int(np.ceil(x1 / scale))),
            min(h, int(np.ceil(y1 / scale))))


def _bbox(mask: np.ndarray) -> Box | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def detail_density(small_rgb: np.ndarray, inner: np.ndarray, window: int) -> np.ndarray:
    """Share of strong-edge pixels in a window around each pixel, counting only edges inside the garment."""
    import cv2

    lab = cv2.cvtColor(small_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    edges = np.zeros(inner.shape, bool)
    for channel, scale, offset in ((0, 2.55, 0.0), (1, 2.0, 128.0), (2, 2.0, 128.0)):
        plane = np.clip(lab[..., channel] * scale + offset, 0, 255).astype(np.uint8)
        edges |= cv2.Canny(plane, 50, 120, L2gradient=True) > 0
    return cv2.blur((edges & inner).astype(np.float32), (window, window))


def _print_parts(dense: np.ndarray, off_base: np.ndarray, inner_area: int, width: int) -> np.ndarray:
    """The components of dense detail that are a print: big and solid enough (not a seam, a fold line or a
    button) and in colours other than the fabric's own (not ruffles, pleats or tulle in its shades)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(dense.astype(np.uint8), connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    box_w, box_h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    solid = area / np.maximum(box_w * box_h, 1) >= PRINT_SOLIDITY
    wide = np.minimum(box_w, box_h) >= PRINT_MIN_SIDE * width
    coloured = np.bincount(labels.ravel(), weights=off_base.ravel(), minlength=count) / np.maximum(area, 1)
    keep = (area >= PRINT_MIN_AREA * inner_area) & solid & wide & (coloured >= PRINT_MIN_CONTRAST)
    keep[0] = False
    return keep[labels]


def _patches(off_base: np.ndarray, garment: np.ndarray, width: int) -> np.ndarray:
    """Compact areas of another colour set inside the garment, clear of its outline: a plain patch, a
    badge or a label, which have no dense detail to find (colour blocks reaching the edge are not)."""
    import cv2

    margin = max(3, int(0.03 * width))
    clear = cv2.erode(garment.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats((off_base & garment).astype(np.uint8), connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    inside = np.bincount(labels.ravel(), weights=clear.ravel(), minlength=count) >= area  # wholly clear
    solid = area / np.maximum(stats[:, cv2.CC_STAT_WIDTH] * stats[:, cv2.CC_STAT_HEIGHT], 1) >= 0.4
    share = area / max(1, int(garment.sum()))
    keep = inside & solid & (share >= PRINT_MIN_AREA) & (share <= 0.3)
    keep[0] = False
    return keep[labels]


def find_print(small_rgb: np.ndarray, garment: np.ndarray, base: np.ndarray) -> PrintRegion:
    """Where dense, contrasty detail covers a solid patch of the garment: a placed print or logo, or a
    pattern all over it. `base` is the fabric's main colour (Lab)."""
    import cv2

    inner = cv2.erode(garment.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    box = _bbox(garment)
    if box is None or inner.sum() < 50:
        return PrintRegion("none", None, 0.0)
    width = box[2] - box[0]
    window = max(5, int(0.08 * width))
    dense = (detail_density(small_rgb, inner, window) > PRINT_DENSITY) & inner
    dense = cv2.morphologyEx(dense.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((window, window), np.uint8)) > 0
    patterned = float((dense & inner).sum() / inner.sum())
    if patterned > ALL_OVER:  # detail all over: a pattern, whatever its colours (a fine check counts)
        return PrintRegion("all-over", _bbox(dense & inner), round(patterned, 3))
    lab = cv2.cvtColor(small_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    off_base = np.linalg.norm(lab - base.astype(np.float32), axis=2) > PRINT_OFF_BASE
    region = _print_parts(dense & inner, off_base, int(inner.sum()), width) | _patches(off_base, garment, width)
    share = float(region.sum() / inner.sum())
    if share < PRINT_MIN_AREA:
        return PrintRegion("none", None, round(share, 3))
    return PrintRegion("placed", _bbox(region), round(share, 3))


def largest_rectangle(region: np.ndarray) -> Box | None:
    """A large axis-aligned rectangle inside `region`: the largest inscribed square (chessboard distance
    transform), then widened and lengthened while every row / column it adds stays inside."""
    import cv2

    if not region.any():
        return None
    dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_C, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    r = max(0, int(dist[y, x]) - 1)
    x0, y0, x1, y1 = x - r, y - r, x + r + 1, y + r + 1
    grown = True
    while grown:
        grown = False
        for dx0, dy0, dx1, dy1 in ((-1, 0, 0, 0), (0, 0, 1, 0), (0, -1, 0, 0), (0, 0, 0, 1)):
            nx0, ny0, nx1, ny1 = x0 + dx0, y0 + dy0, x1 + dx1, y1 + dy1
            if nx0 >= 0 and ny0 >= 0 and nx1 <= region.shape[1] and ny1 <= region.shape[0] \
                    and region[ny0:ny1, nx0:nx1].all():
                x0, y0, x1, y1, grown = nx0, ny0, nx1, ny1, True
    return int(x0), int(y0), int(x1), int(y1)


def texture_region(garment: np.ndarray, printed: PrintRegion) -> np.ndarray:
    """Plain fabric: the garment minus a placed print's box (an all-over print is the fabric)."""
    region = garment.copy()
    if printed.kind == "placed" and printed.box is not None:
        x0, y0, x1, y1 = printed.box
        region[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = False  # a margin: boxes are rounded outwards
        if region.sum() < 0.1 * garment.sum():
            region = garment.copy()  # the print fills the garment: it is the fabric
    return region


def analyse_appearance(rgb: np.ndarray, mask: np.ndarray) -> Appearance:
    """Colours, print region and texture crop of the garment under `mask` (alpha in 0..1)."""
    import cv2

    small_rgb, garment, scale = _small(rgb, mask)
    inner = cv2.erode(garment.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    lab = cv2.cvtColor(small_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    colours = dominant_colours(lab[inner if inner.sum() >= 20 else garment])
    base = np.array(colours[0].lab if colours else (50.0, 0.0, 0.0))
    printed = find_print(small_rgb, garment, base)
    whole = (0, 0, garment.shape[1], garment.shape[0])
    box = largest_rectangle(texture_region(inner, printed)) or _bbox(garment) or whole
    shape = (int(mask.shape[0]), int(mask.shape[1]))
    photo_print = PrintRegion(printed.kind, _to_photo(printed.box, scale, shape) if printed.box else None,
                              printed.share)
    return Appearance(colours, photo_print, _to_photo(box, scale, shape))
