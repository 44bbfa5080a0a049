"""A top's back and front at the neck: what the product photo shows there (and under a placed print, for the
back) is not the garment's outside.

A garment photo (ghost mannequin or flat lay) shows the inside of the back through the front's neck opening: a
shadowed, plain patch framed by the back collar above and the front collar below, which the wardrobe's mask keeps
as fabric. The views' back takes the cutout at the mirrored point (`pipeline.fitting.dress.garment_colours`), so
that patch and the front collar became a dark crescent across every top's upper back at 180 degrees.

`back_cutout` is the cutout as the back should read it:
- at the neck, in the cutout's top and middle, a plain region darker than the garment (the inside, the collars
  joined to it, a label in it) that reaches up to the garment's top edge and ends above the top third's lower
  edge takes, below the back collar's band, the fabric right under it in the same column (a strip of it
  repeated upwards, mirrored, so panels carry on and the weave stays), or the fabric's median colour;
- a placed print's box (and its rim) takes the fabric above and below it, crossfaded down the box and shifted
  to the light of the fabric beside it, so no plain rectangle of another shade shows on the back.
`front_cutout` is the cutout as the front reads it: the region's box maps the cutout's top edge (the back collar)
to the garment region's top at the neck's base, so the inside and the front collar landed on the upper chest as a
dark crescent under the chin; each column near the neck is shifted down by the inside's height there (fading out
below it, and ending above a placed print), so the front collar is at the garment's top edge.
Neither is used for lower garments (no neck) or all-over prints (a print's dark motifs would pass for the inside; the
back mirrors the print anyway).
"""

from __future__ import annotations

import numpy as np

from pipeline.fitting.parsing import lab8

DARKER_L = 12.0  # the inside is in shadow: at least this many L units (0-100) darker than the garment's median
FLAT_L = 2.5  # ... and plain: its mean fine texture (`local_std`, L units) under this (prints are busier)
TOP_SHARE = 0.35  # it lies in the garment's top 35 % of its height (one reaching lower is a deep scoop: left) ...
CENTRE_SHARE = 0.4  # ... and in the middle 40 % of its width
REACH_TOP = 0.03  # ... and comes within this share of the height of the garment's top edge (the opening)
MIN_SHARE = 0.002  # of the garment's box: smaller dark specks are a label or a button
COLLAR_SHARE = 0.02  # the back collar: this share of the height under the top edge stays as the photo shows it
BELOW_SHARE = 0.025  # the fabric taken starts this share of the height under the inside's lower edge (past the
# front collar's rim, which is often not dark enough to be found with the inside) ...
SIDES_DIFFER = 12.0  # RGB units: above and below a print differ this much in a column: only the fabric-like side
SIDE_GAP = 0.01  # of the box's height + width: a print's box grows by this (its rim), and the fabric beside it
# is read this far out again
STRIP_SHARE = 0.015  # ... and is a strip this share of the height tall, repeated upwards mirrored


def _strip(opaque: np.ndarray) -> int:
    """The fabric strip's height in pixels: STRIP_SHARE of the garment's height."""
    rows = np.nonzero(opaque)[0]
    return max(4, int(round(STRIP_SHARE * (rows.max() + 1 - rows.min()))))


def inside_back(rgba: np.ndarray) -> np.ndarray:
    """(h, w) bool: the inside of the back seen through the neck opening (with the collars joined to it)."""
    import cv2

    from pipeline.wardrobe.backdrop import local_std

    opaque = rgba[..., 3] > 127
    found = np.zeros(opaque.shape, dtype=bool)
    rows, cols = np.nonzero(opaque)
    if len(rows) < 100:
        return found
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    height, width = y1 - y0, x1 - x0
    lightness = lab8(rgba[..., :3])[..., 0] * (100.0 / 255.0)
    side = int(round((1.0 - CENTRE_SHARE) / 2 * width))
    zone = np.zeros_like(opaque)
    zone[y0:y0 + int(TOP_SHARE * height), x0 + side:x1 - side] = True
    dark = zone & opaque & (lightness < float(np.median(lightness[opaque])) - DARKER_L)
    dark = cv2.morphologyEx(dark.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)
    dark &= zone & opaque
    count, labels = cv2.connectedComponents(dark.astype(np.uint8))
    top = np.argmax(opaque, axis=0)  # the garment's first row in each column
    texture = local_std(lightness)
    for label in range(1, count):
        part = labels == label
        part_rows, part_cols = np.nonzero(part)
        if len(part_rows) < MIN_SHARE * height * width:
            continue
        if not np.any(part_rows <= top[part_cols] + REACH_TOP * height):
            continue
        if float(texture[part].mean()) > FLAT_L or part_rows.max() >= y0 + int(TOP_SHARE * height) - 1:
            continue
        for col in np.unique(part_cols):  # each column whole from its first to its last row (a label inside)
            in_col = part_rows[part_cols == col]
            found[in_col.min():in_col.max() + 1, col] = True
    found &= opaque
    return found


def _folded(start: int, step: int, count: int, strip: int) -> np.ndarray:
    """`count` rows going away from `start` by `step` (1 or -1), folded into a `strip` rows tall (mirrored repeat)."""
    fold = np.abs(((np.arange(count) / strip) % 2.0) - 1.0)
    return start + step * ((1.0 - fold) * (strip - 1)).astype(int)


def without_print(rgba: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """`rgba` with a placed print's box (and its rim) filled by the fabric just above and below it (a strip of
    each repeated mirrored towards the middle, crossfaded down the box), so the back's plain fabric joins the
    fabric round it with no seam; columns with no fabric on either side keep the print."""
    h = rgba.shape[0]
    x0, y0, x1, y1 = (int(v) for v in box)
    rim = max(2, int(round(SIDE_GAP * (y1 - y0 + x1 - x0))))  # the box's edge may cut through the print's rim
    x0, x1, y0, y1 = max(0, x0 - rim), min(rgba.shape[1], x1 + rim), max(0, y0 - rim), min(h, y1 + rim)
    opaque = rgba[..., 3] > 127
    if x1 <= x0 or y1 <= y0:
        return rgba
    strip = _strip(opaque)
    pad = max(2, strip // 2)
    out = np.array(rgba, copy=True)
    count = y1 - y0
    above = np.clip(_folded(y0 - pad, -1, count, strip), 0, h - 1)  # row k of the box from above: upwards ...
    below = np.clip(_folded(y1 - 1 + pad, 1, count, strip), 0, h - 1)[::-1]  # ... and from below, downwards
    down = (np.arange(count) + 0.5) / max(count, 1)
    ring = np.zeros_like(opaque)
    ring[max(0, y0 - 4 * pad):y1 + 4 * pad, max(0, x0 - 4 * pad):x1 + 4 * pad] = True
    ring[y0:y1, x0:x1] = False
    ring &= opaque
    around = np.median(rgba[ring][:, :3].astype(np.float32), axis=0) if ring.any() else None
    fill = np.zeros((count, x1 - x0, 3), np.float32)
    done = np.zeros(x1 - x0, dtype=bool)
    for col in range(x0, x1):
        up_ok, low_ok = opaque[above, col].all(), opaque[below, col].all()
        if not (up_ok or low_ok):
            continue
        if up_ok and low_ok and around is not None:  # the two sides disagree (a collar's inside above the box, a
            up_mean = rgba[above, col, :3].astype(np.float32).mean(axis=0)  # hem below it): the one nearer the
            low_mean = rgba[below, col, :3].astype(np.float32).mean(axis=0)  # fabric round the box
            if np.abs(up_mean - low_mean).max() > SIDES_DIFFER:
                up_ok = bool(np.abs(up_mean - around).sum() < np.abs(low_mean - around).sum())
                low_ok = not up_ok
        top_rgb = rgba[above, col, :3].astype(np.float32) if up_ok else rgba[below, col, :3].astype(np.float32)
        low_rgb = rgba[below, col, :3].astype(np.float32) if low_ok else top_rgb
        fill[:, col - x0] = top_rgb * (1.0 - down[:, None]) + low_rgb * down[:, None]
        done[col - x0] = True
    _match_sides(fill, rgba, opaque, (x0, y0, x1, y1))
    cols = np.flatnonzero(done)
    out[y0:y1, x0 + cols, :3] = np.clip(fill[:, cols] + 0.5, 0, 255).astype(np.uint8)
    return out


def _match_sides(fill: np.ndarray, rgba: np.ndarray, opaque: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """In place: shift `fill` (the box's rows x columns x 3) by the step to the fabric beside the box at its left
    and right edges, crossfaded across it and smoothed down it, so the fabric's light runs through the box."""
    import cv2

    x0, y0, x1, y1 = box
    width = rgba.shape[1]
    shift = np.zeros_like(fill)
    across = (np.arange(fill.shape[1]) + 0.5) / max(fill.shape[1], 1)
    gap = max(2, int(round(SIDE_GAP * (y1 - y0 + x1 - x0))))  # read a little off the box's edge
    for edge, inside, weight in ((x0 - gap, 0, 1.0 - across), (x1 - 1 + gap, fill.shape[1] - 1, across)):
        if not 0 <= edge < width:
            continue
        beside = opaque[y0:y1, edge]
        step = np.where(beside[:, None], rgba[y0:y1, edge, :3].astype(np.float32) - fill[:, inside], 0.0)
        step[np.abs(step).max(axis=1) > SIDES_DIFFER * 2] = 0.0  # another panel beside the box: not its light
        shift += step[:, None, :] * weight[None, :, None]
    sigma = max(2.0, 0.05 * fill.shape[0])
    fill += cv2.GaussianBlur(shift, (1, 0), sigmaX=0.1, sigmaY=sigma)


def back_cutout(rgba: np.ndarray, print_box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The cutout as the garment's back reads it (see the module docstring): no inside at the neck, and no placed
    print (`print_box`: it stays on the front); `rgba` itself when nothing changes."""
    if print_box is not None:
        rgba = without_print(rgba, print_box)
    inside = inside_back(rgba)
    if not inside.any():
        return rgba
    opaque = rgba[..., 3] > 127
    rows = np.nonzero(opaque)[0]
    tall = rows.max() + 1 - rows.min()
    collar, strip, skip = COLLAR_SHARE * tall, _strip(opaque), max(3, int(round(BELOW_SHARE * tall)))
    top = np.argmax(opaque, axis=0)
    out = np.array(rgba, copy=True)
    h = rgba.shape[0]
    fabric = opaque & ~inside
    fallback = np.median(rgba[fabric][:, :3], axis=0).astype(np.uint8) if fabric.any() else None
    for col in np.flatnonzero(inside.any(axis=0)):
        filled = np.flatnonzero(inside[:, col])
        below = int(filled.max()) + skip
        filled = filled[filled >= top[col] + collar]
        if not len(filled):
            continue
        source = np.minimum(h - 1, _folded(below, 1, int(below - filled.min()) + 1, strip)[below - filled])
        good = fabric[source, col]
        out[filled[good], col, :3] = rgba[source[good], col, :3]
        if fallback is not None:
            out[filled[~good], col, :3] = fallback
    return out


FRONT_COLLAR = 0.7  # of the crescent's thinnest column: the front collar's ribbing kept at the front's top edge
FRONT_DEPTH = 2.0  # the front's neck remap fades out this many times the inside's height below the top edge
MIN_FRONT_DEPTH = 1.3  # ... or, above a placed print, as little as this (never less: the remap must not fold)
FRONT_PRINT_GAP = 4  # pixels: the fade ends this far above a placed print's box
FRONT_SMOOTH = 0.03  # of the garment's width: the inside's height per column is smoothed this wide (no tearing)


def front_cutout(rgba: np.ndarray, inside: np.ndarray, print_box: tuple[int, int, int, int] | None = None
                 ) -> np.ndarray:
    """The cutout as the front reads it: the inside of the back seen through the neck opening squeezed out, so the
    garment's top edge at the neck shows the front collar (the crescent's lowest FRONT_COLLAR times its thinnest
    column's height stays: the ribbing, which the crescent's ends show alone). A column's rows from the garment's
    top edge down to FRONT_DEPTH times the inside's height there are stretched from the inside's lower edge down
    (each pixel shifted down by the inside's height, the shift fading to none at that depth), so the front collar
    lands at the body's neck base, where the garment region begins, instead of on the chest with the dark inside
    above it. Above a placed print (`print_box`) the fade ends before the print, so the print keeps its shape; a
    print that starts at the collar leaves the cutout as it is. `rgba` itself where there is no inside."""
    import cv2

    if not inside.any():
        return rgba
    opaque = rgba[..., 3] > 127
    h, w = opaque.shape
    top = np.argmax(opaque, axis=0).astype(np.float32)
    has = inside.any(axis=0)
    bottom = np.where(has, h - 1 - np.argmax(inside[::-1], axis=0), 0).astype(np.float32)
    crescent = np.where(has, bottom + 1 - top, 0.0)
    band = FRONT_COLLAR * float(crescent[has].min())  # the front collar's ribbing, which the crescent's ends show
    shift = np.where(has, np.maximum(crescent - band, 0.0), 0.0).astype(np.float32)  # alone: kept at the top
    cols = np.nonzero(opaque.any(axis=0))[0]
    sigma = max(1.0, FRONT_SMOOTH * (cols.max() + 1 - cols.min()))
    shift = cv2.GaussianBlur(shift[None, :], (0, 0), sigmaX=sigma, sigmaY=0.1)[0]
    depth = np.maximum(FRONT_DEPTH * shift, 1.0)
    if print_box is not None:  # a placed print below the neck is not stretched: the fade ends above it
        x0, y0, x1, _ = (int(v) for v in print_box)
        if y0 <= float(bottom[has].max()) + FRONT_PRINT_GAP:  # a print that starts at the collar: left as it is
            return rgba
        span = slice(max(0, x0), min(w, x1))
        room = np.maximum(y0 - FRONT_PRINT_GAP - top[span], 0.0)
        depth[span] = np.clip(room, MIN_FRONT_DEPTH * shift[span], depth[span])
        depth = np.maximum(depth, 1.0)
    rows = np.arange(h, dtype=np.float32)[:, None]
    fade = np.clip(1.0 - (rows - top[None, :]) / depth[None, :], 0.0, 1.0)
    map_y = (rows + shift[None, :] * fade).astype(np.float32)
    map_x = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w)).copy()
    out = cv2.remap(np.ascontiguousarray(rgba), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[..., 3] = rgba[..., 3]  # the outline stays the photo's
    return out


def neck_cutouts(rgba: np.ndarray, print_box: tuple[int, int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The cutout as the garment's back and as its front read it (`back_cutout`, `front_cutout`)."""
    return back_cutout(rgba, print_box), front_cutout(rgba, inside_back(rgba), print_box)
