"""photo.png's old garment beyond the parsing's region (`pipeline.fitting.parsing.old_garment`): where the part map
gave it to a part the new garment does not replace, and where a sleeve's outline is not the arm.

- **Strays** (`strays_of`): clothes near the parsed old garment, in its colours and nearer to them than to the other
  garment's (the lower one for a top): a shirt between the arms and the torso, a shirt tail over the jeans, a top's
  hem below the hips (the parsing cuts the top at them); whole patches, their small holes (a print, a fold) filled.
- **Sheer sleeves** (`whole_sleeves`): skin gaps inside the old garment on the arms (lace, mesh) are the garment's.
- **Cuffs** (`cuffs_of`): clothes the part map gave to the hands (kept by photo.png) that touch the old sleeves and
  are mostly their colours: a jacket's cuff, a sleeve down over the hand.
- **A wide sleeve's sides** (`sleeve_beyond`): a bared sleeve's pixels well away from the fitted arm lying inside it
  are what is beside the arm (the background), not a fat arm.
- **A collar** (`collar_of`): the old top's collar, lapels or turtleneck on the neck, which the part map gives to
  the head (kept by photo.png): clothes in the old garment's colours below the chin, joined to it.
- **An arm's own width** (`arm_reach`): the body fit follows the clothed outline, so under a thick jumper or a
  hoodie the fitted arm is as wide as its sleeve; a bared sleeve's pixels farther from the arm's shoulder-elbow-wrist
  line than a generous adult arm's half-width (at the photo's scale) are what is beside the arm, not the arm.
"""

from __future__ import annotations

import numpy as np

from pipeline.fitting.dress import project
from pipeline.fitting.onepiece import joined_to
from pipeline.fitting.parsing import (
    ARMS,
    KEEP,
    LOWER,
    PART,
    UPPER,
    Parsing,
    colour_centres,
    lab8,
    nearest,
    skin_range,
)
from pipeline.geometry import Camera

OLD_COLOUR_DELTA = 12.0  # Lab distance to the old garment's colours for a stray pixel to count as the old garment
OLD_REACH = 0.1  # how far past the parsed old garment (share of the photo's height) strays are looked for
SLEEVE_GAP = 0.012  # on the arms, skin gaps this share of the height inside the old garment are the garment's
MIN_STRAY_SHARE = 0.0005  # a stray patch smaller than this share of the photo is noise
HEM_BAND = 0.08  # the old top's hem below the hips: looked for this share of the photo's height below them ...
HEM_COLOUR_DELTA = 30.0  # ... within this Lab distance of its colours (a hem's folds catch more light than its body)


def strays_of(photo: np.ndarray, parsing: Parsing, old: np.ndarray, category: str, hip_y: float | None = None
              ) -> np.ndarray:
    """(H, W) bool: the old garment's pixels the part map gave to a part it does not replace (a sleeve hanging
    over the legs, a shirt between an arm and the torso): clothes near the parsed old garment, in the old
    garment's colours and nearer to them than to the other garment's (the lower one for a top). With `hip_y`, for a
    top, also its hem below the hips (which the parsing cuts at them): in the band just below, joined to the old
    garment, within a looser distance of its colours (a hem's folds catch the light) and still nearer them."""
    import cv2

    if old.sum() < 200:
        return np.zeros_like(old)
    lab = lab8(photo)
    other_parts = {"upper": LOWER, "lower": UPPER, "full": ()}[category]
    reach = max(3, int(OLD_REACH * photo.shape[0]))
    # within `reach` of the old garment: a distance test, not a dilation by a 0.2-height disc (0.5 s on 2 cores)
    near = cv2.distanceTransform((~old).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= reach
    other = parsing.clothes & np.isin(parsing.part, other_parts) & ~near  # the other garment, away from the strays
    candidate = parsing.clothes & near & ~old & ~np.isin(parsing.part, KEEP)
    if not candidate.any():
        return np.zeros_like(old)
    pixels = lab[candidate]
    to_old = nearest(pixels, colour_centres(lab[old]))
    to_other = nearest(pixels, colour_centres(lab[other])) if other.sum() >= 200 else np.full(len(pixels), np.inf)
    found = np.zeros(old.shape, np.uint8)
    nearer = to_old < to_other
    found[candidate] = (to_old < OLD_COLOUR_DELTA) & nearer
    if category == "upper" and hip_y is not None:  # the old top's hem below the hips, which the parsing cuts at them
        rows = np.arange(old.shape[0])[:, None]
        band = np.zeros(old.shape, bool)
        band[candidate] = (to_old < HEM_COLOUR_DELTA) & nearer
        band &= (rows >= hip_y) & (rows <= hip_y + HEM_BAND * old.shape[0])
        found |= joined_to(band, old).astype(np.uint8)
    # whole patches, not speckle: close the gaps a print or a fold leaves, drop specks
    found = cv2.morphologyEx(found, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= MIN_STRAY_SHARE * old.size)
    return holes_filled(np.isin(labels, big[big > 0])) & parsing.person  # a print's or a fold's holes left the
    # shirt's own pixels inside the patch, which the background fill then spread across it


MAX_HOLE_SHARE = 0.002  # holes inside a stray patch up to this share of the photo are the patch's (a print)


def holes_filled(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: `mask` with the small holes inside its pieces (what the outside cannot reach, up to
    MAX_HOLE_SHARE of the image each: a print, a fold; not the legs a ring of strays goes round) filled."""
    import cv2

    outside = np.pad(~mask, 1).astype(np.uint8)
    cv2.floodFill(outside, np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8), (0, 0), 2)
    holes = (outside[1:-1, 1:-1] == 1).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= MAX_HOLE_SHARE * mask.size)
    return mask | np.isin(labels, small[small > 0])


CHIN = 0.5  # the chin: this share of the eye-to-shoulder length below the eyes
COLLAR_DELTA = 20.0  # Lab distance to the old garment's colours for a pixel on the neck to be its collar ...
COLLAR_COLOURS = 4  # ... the old garment's colours: this many k-means centres (a check's stripes are among them)
HAIR_DELTA = 14.0  # ... and farther than this from the hair's colour


def neck_of(parsing: Parsing, eye_y: float, shoulder_y: float) -> np.ndarray:
    """(H, W) bool: the fitted body's head below the chin (the neck, and a collar standing on it)."""
    rows = np.arange(parsing.part.shape[0])[:, None]
    return parsing.rendered & (parsing.part == PART["head"]) & (rows > eye_y + CHIN * (shoulder_y - eye_y))


def collar_of(photo: np.ndarray, parsing: Parsing, old: np.ndarray, eye_y: float, shoulder_y: float,
              hair_rgb: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: the old top's collar on the neck (see the module docstring): on the fitted body's head below the
    chin, the clothes within COLLAR_DELTA of the old garment's colours, not of the hair's and not in the skin range
    (a neck in shadow), joined to it, with the pixels between them that are neither skin nor clothes (a
    check's white lines) and the small holes they enclose, never skin. Nothing where the hair is of the old
    garment's colours (long dark hair over a dark top is not told from its collar)."""
    import cv2

    none = np.zeros_like(old)
    if old.sum() < 200 or shoulder_y <= eye_y:
        return none
    neck = neck_of(parsing, eye_y, shoulder_y)
    candidates = neck & parsing.clothes
    lab = lab8(photo)
    centres = colour_centres(lab[old], COLLAR_COLOURS)
    if not candidates.any() or not len(centres):
        return none
    alike = np.zeros_like(old)
    alike[candidates] = nearest(lab[candidates], centres) < COLLAR_DELTA
    if hair_rgb is not None:
        hair = lab8(np.asarray(hair_rgb).reshape(1, 1, 3).clip(0, 255))[0]
        if nearest(hair, centres)[0] < HAIR_DELTA:
            return none
        alike[candidates] &= nearest(lab[candidates], hair) >= HAIR_DELTA
    alike[alike] = ~skin_range(photo[alike])  # skin in shadow, not a collar
    between = neck & ~parsing.skin & ~parsing.clothes  # a check's white lines: neither skin nor clothes
    near = cv2.dilate(alike.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    collar = joined_to(alike | (between & near), old)
    return holes_filled(collar | old) & ~old & neck & ~parsing.skin


def whole_sleeves(parsing: Parsing, old: np.ndarray, category: str, keep: np.ndarray) -> np.ndarray:
    """`old` with the skin a sheer, lace or mesh sleeve lets through closed in: on the arms, gaps up to
    SLEEVE_GAP of the photo's height inside the old garment count as garment, so a bared arm is filled whole
    instead of leaving the old sleeve's pattern as speckle."""
    import cv2

    if category == "lower":
        return old
    arms = np.isin(parsing.part, ARMS) & parsing.person & ~keep
    size = max(3, int(SLEEVE_GAP * parsing.part.shape[0])) | 1
    closed = cv2.morphologyEx((old & arms).astype(np.uint8), cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) > 0
    return old | (closed & arms)


CUFF_SHARE = 0.5  # a piece of clothes over a hand this much in the old sleeves' colours is the sleeve's end


def cuffs_of(photo: np.ndarray, parsing: Parsing, old: np.ndarray) -> np.ndarray:
    """(H, W) bool: the old sleeves' ends over the hands: the pieces of clothes the part map gave to the hands (which
    photo.png keeps) that touch the old sleeves and are mostly in their colours, shadows and folds included (a
    jacket's cuff, a sleeve down over the hand, a coat's sleeve the fitted hand lies on); and in the other pieces,
    the pixels in the sleeves' colours joined to the sleeve near it (a cuff's band, `_cuff_bands`)."""
    import cv2

    sleeves = old & np.isin(parsing.part, ARMS)
    hands = parsing.person & parsing.clothes & (parsing.part == PART["hand"])
    if sleeves.sum() < 200 or not hands.any():
        return np.zeros_like(old)
    alike = np.zeros_like(old)  # Lab of the few pixels it looks at only: the whole photo's costs 0.1 s
    centres = colour_centres(lab8(photo[sleeves].reshape(-1, 1, 3)).reshape(-1, 3))
    distance = nearest(lab8(photo[hands].reshape(-1, 1, 3)).reshape(-1, 3), centres)
    alike[hands] = distance < OLD_COLOUR_DELTA
    knit = np.zeros_like(old)  # a cuff's band: its ribbing's light and dark stitches, a little farther off
    knit[hands] = distance < CUFF_BAND_DELTA
    count, labels = cv2.connectedComponents(hands.astype(np.uint8), connectivity=8)
    beside = cv2.dilate(sleeves.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    touching = np.unique(labels[beside & hands])
    share = np.bincount(labels[alike], minlength=count) / np.maximum(np.bincount(labels.reshape(-1),
                                                                                 minlength=count), 1)
    cuff = np.zeros(count, bool)
    cuff[touching] = share[touching] >= CUFF_SHARE
    cuff[0] = False
    return (cuff[labels] & hands) | _cuff_bands(sleeves, beside, knit, hands)


CUFF_BAND_DELTA = 20.0  # Lab distance to the sleeves' colours for a cuff band's pixel
CUFF_BAND = 0.03  # of the height: in a piece that is mostly hand, the sleeves' colours this near them are a cuff


def _cuff_bands(sleeves: np.ndarray, beside: np.ndarray, alike: np.ndarray, hands: np.ndarray) -> np.ndarray:
    """(H, W) bool: where a hand's piece is mostly the hand (its skin parsed as clothes too, as under a dark skin
    tone), its pixels near the sleeves' colours (`alike`) joined to the sleeve within CUFF_BAND of it, closed over
    a few pixels inside the `hands` pieces: a knitted cuff's band."""
    import cv2

    if not alike.any():
        return alike
    band = max(1, int(CUFF_BAND * sleeves.shape[0]))
    near = cv2.dilate(sleeves.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1,) * 2))
    candidates = alike & (near > 0)
    count, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[beside & candidates])  # `beside`: the pixels next to the sleeves
    keep = np.zeros(count, bool)
    keep[touching] = True
    keep[0] = False
    bands = keep[labels].astype(np.uint8)
    return (cv2.morphologyEx(bands, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0) & (near > 0) & hands


ARM_EASE = 0.012  # share of the height: a bared sleeve's pixels this near the fitted arm are the arm
MIN_ARM_INSIDE = 0.25  # ... where at least this share of the sleeve's piece lies on the fitted arm


def sleeve_beyond(parsing: Parsing, arms: np.ndarray) -> np.ndarray:
    """(H, W) bool: of the bared sleeves `arms`, the pixels farther than ARM_EASE from the fitted arm, in pieces
    the fitted arm lies inside (a coat's or a wide sleeve: the arm is narrower than it). Where the fitted arm misses
    the sleeve (crossed or raised arms), the sleeve's outline is the best guess of the arm and stays whole."""
    import cv2

    if not arms.any():
        return np.zeros_like(arms)
    fitted = parsing.rendered & np.isin(parsing.part, ARMS)
    ease = max(1, int(ARM_EASE * arms.shape[0]))
    near = cv2.dilate(fitted.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ease + 1,) * 2)) > 0
    count, labels = cv2.connectedComponents(arms.astype(np.uint8), connectivity=8)
    inside = np.bincount(labels[arms & fitted], minlength=count) / np.maximum(np.bincount(labels[arms],
                                                                                           minlength=count), 1)
    whole = inside >= MIN_ARM_INSIDE
    whole[0] = False
    return arms & ~near & whole[labels]


ARM_HALF_WIDTH_M = (0.055, 0.042, 0.03)  # a bare arm's half-width at the shoulder, elbow and wrist: a little over
# an adult's mean (upper arm girth ~30 cm, forearm ~25, wrist ~16), so only sleeves wider than an arm lose their sides
COCO_ARM_CHAINS = ((5, 7, 9), (6, 8, 10))  # COCO shoulder, elbow, wrist: the person's left arm, then the right


def arm_reach(keypoints_2d: np.ndarray, px_per_m: float, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: where a bare arm can be: round each arm's fitted shoulder-elbow-wrist line, tapering from
    `ARM_HALF_WIDTH_M`'s shoulder width to its wrist width, at `px_per_m` pixels a metre."""
    import cv2

    out = np.zeros(shape, np.uint8)
    radii = [max(1.0, r * px_per_m) for r in ARM_HALF_WIDTH_M]
    for chain in COCO_ARM_CHAINS:
        points = np.asarray(keypoints_2d, np.float64)[list(chain), :2]
        for k in (0, 1):  # shoulder to elbow, elbow to wrist: a quad tapering between the two joints' radii
            a, b, ra, rb = points[k], points[k + 1], radii[k], radii[k + 1]
            along = b - a
            length = float(np.hypot(*along))
            if length > 1e-6:
                normal = np.array([-along[1], along[0]]) / length
                quad = np.array([a + normal * ra, b + normal * rb, b - normal * rb, a - normal * ra])
                cv2.fillConvexPoly(out, np.round(quad).astype(np.int32), 1)
        for point, radius in zip(points, radii, strict=True):
            cv2.circle(out, (int(round(point[0])), int(round(point[1]))), int(round(radius)), 1, -1)
    return out.astype(bool)


def pixels_per_metre(camera: Camera, points: np.ndarray) -> float:
    """The photo's scale at a body part (its (N, 3) world points): the focal length over their median depth."""
    if not len(points):
        return 0.0
    return float(camera.focal_px / max(float(np.median(project(camera, np.asarray(points, np.float64))[1])), 1e-3))
