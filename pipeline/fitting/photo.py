"""photo.png: the person's own photo wearing the new garment, the CPU default's try-on where it is strongest.

The dressed body is rendered with the photo's own camera (the body fit has it) and composited onto the photo:
1. Parsing (`parse_photo`): the fitted body's part map in the photo's frame (which pixel is torso, arm, hand,
   leg or head), extended by nearest part over the person mask where the loose clothes or hair reach past the
   body, and a skin map (Lab distance to the skin tone the dressing found on the face). The old garment of the
   category being replaced is what is neither skin nor head nor hands in the parts it covers (upper: torso and
   arms; lower: legs and the torso below the hips; full: both).
2. New garment: the render's pixels where the dressed body's garment triangles are in front, except the head
   and hands (never painted: the face, hair and hands stay the photo's pixels).
3. Refill: what the old garment covered and the new one does not becomes what a person expects there: skin on
   the arms and shoulders, the lower garment continued on a bared waist (skin when there is none), the photo's
   background where the old garment reached past the body. The old garment also counts where the part map gave
   it to another part (`strays_of`: clothes near it in its colours, nearer them than the other garment's: a
   sleeve hanging over the legs), and over the hands where it is a sleeve's end (`cuffs_of`); a wide sleeve's
   sides round the fitted arm are background, not a fat arm (`sleeve_beyond`). Under a new top, what the person
   wears below it is decided once (`pipeline.fitting.worn`): a dress's skirt becomes a plain skirt, a coat's
   tails the trousers seen below it on the legs and the background beside them. Fills take the body's roundness
   and the old pixels' shading (their blurred luminance against the region's mean, `photo_light`), so they are
   shaded like the rest, not a flat patch.
Everything else is the photo's own pixels, untouched. The record says what was painted and refilled, and flags
what had to be guessed (no skin tone seen, a body that does not match the person's outline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pipeline.fitting.appearance import Hair
from pipeline.fitting.background import background_in_mask
from pipeline.fitting.hair import hat_over, short_volume, volume_of
from pipeline.fitting.old_region import (
    arm_reach,
    collar_of,
    cuffs_of,
    holes_filled,
    pixels_per_metre,
    sleeve_beyond,
    strays_of,
    whole_sleeves,
)
from pipeline.fitting.onepiece import OnePiece, background_across, coat_tails, replacement
from pipeline.fitting.parsing import (
    ARMS,
    KEEP,
    LOWER,
    PART,
    UPPER,
    Parsing,
    lab8,
    old_garment,
    parse_photo,
    skin_range,
)
from pipeline.fitting.worn import Worn, decide
from pipeline.geometry import BodyMesh, Camera
from pipeline.render.shade import Lighting, Surface, lambert

if TYPE_CHECKING:
    from pipeline.render.raster import Raster

DEFAULT_SKIN = np.array([196.0, 150.0, 124.0])  # used, and flagged, when the photo showed no skin
MIN_BODY_IOU = 0.6  # the fitted body's silhouette against the person mask: below, the regions are a guess
FEATHER_PX = 1.5  # the new garment's edge is blended over about this many pixels


HAIR_SEED_SLACK = 0.25  # short hair (its seed, what stands past the skull, ends this share of eye-to-shoulder
# above the shoulders) reaches at most this much below its seed


def scalp_joined(mask: np.ndarray, eye_y: float) -> np.ndarray:
    """The parts of `mask` that reach above the eyes: hair grows from the scalp, so what stands past the body only
    lower down (headphones or a scarf round the neck, a collar) is not hair."""
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    above = np.unique(labels[: max(0, int(eye_y))][mask[: max(0, int(eye_y))]])
    return np.isin(labels, above[above > 0])


HAIR_FACE_ROWS = (0.1, 0.45)  # the rows beside the lower face (eye-to-shoulder lengths below the eyes) ...
HAIR_FACE_SHARE = 0.5  # ... this share of which hair that falls to the shoulders covers, beside the face, ...
HAIR_FACE_WIDTH = 0.025  # ... at least this wide (eye-to-shoulder lengths, about 6 mm: not a cable's edge)


def falls_beside_face(hair: np.ndarray, eye_y: float, unit: float) -> bool:
    """Whether the hair (bool (H, W)) runs down beside the lower face: long hair does, seen from the front;
    headphones or a scarf round the neck of its colour leave a gap of skin there (the jaw, the ears)."""
    first, last = (max(0, round(eye_y + share * unit)) for share in HAIR_FACE_ROWS)
    rows = hair[first:last].sum(axis=1) >= HAIR_FACE_WIDTH * unit
    return bool(len(rows)) and float(rows.mean()) >= HAIR_FACE_SHARE


HAIR_CROWN_NEAR = 30.0  # Lab units (8-bit scale): what stands past the skull this near the crown's colour is hair
HAIR_CROWN = (0.4, 0.3)  # the crown: the top this share of the way from the fitted skull's top to the eyes, within
# this many eye-to-shoulder lengths of the head's axis


def crown_of(person: np.ndarray, parsing: Parsing, eye_y: float, unit: float) -> np.ndarray | None:
    """(H, W) bool: the hair on the crown, inside the fitted skull's top round the head's axis (hair in nearly
    every photo, whatever stands past the skull beside it: the wall, the cheeks, a collar): its non-skin pixels.
    None when they are not most of the crown (blonde hair on fair skin, a forehead turned up: the skin map cannot
    tell hair there, and what stands past the skull gives the colour) or the crown shows too little."""
    head = parsing.rendered & (parsing.part == PART["head"])
    if not head.any():
        return None
    head_rows, head_cols = np.nonzero(head)
    columns = np.abs(np.arange(person.shape[1]) - float(np.median(head_cols)))[None, :] < HAIR_CROWN[1] * unit
    rows = np.arange(person.shape[0])[:, None]
    top = float(head_rows.min())  # the fitted skull's top: above it the mask's loose edge may be the wall
    crown = person & columns & (rows >= top) & (rows < top + HAIR_CROWN[0] * (eye_y - top))
    if crown.sum() < 30:
        return None
    bare = crown & ~parsing.skin
    return bare if bare.sum() >= 0.5 * crown.sum() else None


def measure_hair(photo: np.ndarray, parsing: Parsing, eye_y: float, shoulder_y: float) -> Hair | None:
    """The hair is what of the person stands past the fitted skull above the shoulders (else the non-skin pixels
    of the head above the eyes), the background the mask's edge takes in left out; its colour is their median,
    and it reaches as far down as the pixels of that colour joined to them (long hair over the shoulders), past
    the lower face only where it runs down beside it (`falls_beside_face`)."""
    import cv2

    unit = shoulder_y - eye_y
    if unit <= 2:
        return None
    rows = np.arange(photo.shape[0])[:, None]
    person = parsing.person & ~background_in_mask(photo, parsing.person)  # the mask's edge takes in the wall
    outside = scalp_joined(person & ~parsing.rendered & (rows < shoulder_y), eye_y)  # hair (or a hat)
    top = person & ~parsing.skin & (rows < eye_y) & (parsing.part == PART["head"])
    if outside.sum() >= 200:  # voluminous or long hair: its colour is what stands past the head, skin-like or not
        top = outside
    if top.sum() < 30:
        return None
    crown = crown_of(person, parsing, eye_y, unit) if outside.sum() >= 200 else None
    lab = lab8(photo)
    under = hat_over(crown, outside, lab, eye_y, unit) if crown is not None else None
    hat = np.median(photo[crown], axis=0).astype(np.float32) if crown is not None and under is not None else None
    if under is not None:  # a hat on the crown: the hair is what shows under it
        top, crown = under, None
    elif crown is not None:  # the crown and what stands past the skull in its colours (lengths lighter than roots)
        top = crown | (top & (np.linalg.norm(lab - np.median(lab[crown], axis=0), axis=2) < HAIR_CROWN_NEAR))
    colour = np.median(photo[top], axis=0).astype(np.float32)
    ref = lab8(colour.reshape(1, 1, 3).clip(0, 255).astype(np.uint8))[0, 0]
    distance = np.linalg.norm(lab - ref, axis=2)
    skin_like = bool(parsing.skin[top].mean() > 0.5)  # blonde hair on fair skin: the skin map cannot tell them
    face = parsing.rendered & (parsing.part == PART["head"]) & (~crown if crown is not None else True)
    alike = person & ~face & ((distance < 12) if skin_like else (~parsing.skin & (distance < 18)))
    _, labels = cv2.connectedComponents(alike.astype(np.uint8), connectivity=8)
    seed = top
    found = np.unique(labels[seed & alike])
    joined = np.isin(labels, found[found > 0])  # every component the seed touches (label 0 is not alike)
    if not joined.any():
        return Hair(colour, 0.0, 0.5, hat=hat)
    ys, xs = np.nonzero(joined)
    centre = float(np.median(xs[ys < eye_y])) if (ys < eye_y).any() else float(np.median(xs))
    bottom = float(np.percentile(ys, 98))
    seed_bottom = float(np.nonzero(seed)[0].max())
    if seed_bottom < shoulder_y - HAIR_SEED_SLACK * unit:  # short hair: its colour may run on below it (a dark
        bottom = min(bottom, seed_bottom + HAIR_SEED_SLACK * unit)  # collar, a beard's shadow); the hair does not
    if not falls_beside_face(joined, eye_y, unit):  # what of its colour lies lower (headphones, a scarf) is not
        bottom = min(bottom, eye_y + HAIR_FACE_ROWS[1] * unit)  # the hair: hair that falls passes the face
    drop = (bottom - eye_y) / unit
    half_width = float(np.percentile(np.abs(xs - centre), 95)) / unit
    side, over = short_volume(volume_of(joined | top, parsing.rendered & (parsing.part == PART["head"]), eye_y, unit),
                              drop)
    return Hair(colour, max(0.0, min(drop, 4.0)), max(0.3, min(half_width, 2.0)), side, over, hat)


@dataclass(frozen=True)
class PhotoTryOn:
    image: np.ndarray  # (H, W, 3) uint8: photo.png
    painted: np.ndarray  # (H, W) bool: the new garment, from the dressed body
    refilled: np.ndarray  # (H, W) bool: the old garment's pixels the new one does not cover, filled
    agnostic: np.ndarray | None = None  # (H, W) bool: where a try-on model may paint (old and new garment, bared
    # limbs), never the head or hands: the mask the GPU profile's painter repaints the real photo in
    record: dict[str, object] = field(default_factory=dict)
    guessed: tuple[str, ...] = ()  # what the compositing had to guess, for the quality flags
    hair: Hair | None = None  # the hair the photo shows, for the views' head and back
    worn: Worn | None = None  # under a new top: what the person wears below it (the views' kept skirt follows it)
    cleared: np.ndarray | None = None  # (H, W) bool: pixels on the fitted body that became the background (a sleeve
    # wider than an arm, a coat's tails): the views' dressing does not read them as the body. (Strays inpainted
    # over the legs stay: there the inpaint continues the legs.)
    beneath: np.ndarray | None = None  # (H, W) bool: of `painted`, the person's pixels in the photo that are not
    # the old garment (the trousers under a longer top, the arms under longer sleeves): the views' dressing takes
    # the body there from the photo, not from the new garment drawn over it


BODY_LIGHT = Lighting(ambient=0.62, diffuse=0.45)  # the fills' shading: lit from the camera's side, as a photo is


def body_shading(raster: Raster, surface: Surface, camera: Camera, region: np.ndarray) -> np.ndarray:
    """(H, W) float: the fitted body's own light (its roundness) over `region`, 1 on average there."""
    out = np.ones(raster.triangle.shape, dtype=np.float32)
    pixels = np.flatnonzero(raster.mask)
    if len(pixels):
        out.reshape(-1)[pixels] = lambert(raster, surface, camera, BODY_LIGHT, pixels)
    mean = float(out[region & raster.mask].mean()) if (region & raster.mask).any() else 1.0
    return np.clip(out / max(mean, 1e-6), 0.7, 1.25)


def rounded(shading: np.ndarray) -> np.ndarray:
    """The body's shading blurred over 1 % of the height: trousers widened past the fitted legs take their light
    without a seam at the fitted legs' edge."""
    import cv2

    return cv2.GaussianBlur(shading.astype(np.float32), (0, 0), max(1.0, 0.01 * shading.shape[0]))


def _fill(out: np.ndarray, region: np.ndarray, colour: np.ndarray, shade: np.ndarray) -> None:
    out[region] = np.clip(colour[None, :] * shade[region][:, None], 0, 255)


PHOTO_LIGHT_SIGMA = 0.015  # the photo's light under a fill: its luminance blurred over this share of the height
PHOTO_LIGHT_STRENGTH = 0.6  # ... taken to this power (1: all of the old clothes' shading, 0: none)


def photo_light(photo: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(H, W) float: the photo's own light over `region` (its blurred luminance against the region's mean), so a
    fill keeps the shadows and highlights the old clothes had instead of lying flat."""
    import cv2

    if not region.any():
        return np.ones(region.shape, np.float32)
    luma = lab8(photo)[..., 0]
    sigma = max(1.0, PHOTO_LIGHT_SIGMA * photo.shape[0])
    weight = cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigma)
    blurred = cv2.GaussianBlur(np.where(region, luma, 0.0).astype(np.float32), (0, 0), sigma) / np.maximum(weight, 1e-3)
    mean = float(luma[region].mean())
    return np.clip(blurred / max(mean, 1.0), 0.6, 1.4) ** PHOTO_LIGHT_STRENGTH


TEETH = 0.01  # of the photo's height: gaps this wide in what the head keeps at the neck are the part map's teeth


def neck_teeth(keep: np.ndarray, parsing: Parsing, shoulder_y: float) -> np.ndarray:
    """(H, W) bool: the fitted body's pixels above the shoulders between the teeth of what photo.png keeps of the
    head (the part map follows the body's triangles, so the head's edge at the neck is a sawtooth): kept too, so a
    scarf or a collar the head keeps ends in a line, not in triangles over the fill below it."""
    import cv2

    size = max(3, int(TEETH * keep.shape[0]) | 1)
    closed = cv2.morphologyEx(keep.astype(np.uint8), cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) > 0
    rows = np.arange(keep.shape[0])[:, None]
    return closed & ~keep & parsing.rendered & (rows < shoulder_y)


CHEST = 0.5  # of the shoulder-to-hip height: a bared torso above this is the chest (skin), below it the waist


def bared_chest(torso: np.ndarray, shoulder_y: float | None, hip_y: float | None) -> np.ndarray:
    """(H, W) bool: the part of a bared torso that is shoulders, neck and chest (above CHEST of the way from the
    shoulders to the hips), where skin shows, not the lower garment; nothing without both levels."""
    if shoulder_y is None or hip_y is None or hip_y <= shoulder_y:
        return np.zeros_like(torso)
    rows = np.arange(torso.shape[0])[:, None]
    return torso & (rows < shoulder_y + CHEST * (hip_y - shoulder_y))


SKIN_REACH = 0.03  # of the photo's height: the skin seen nearby is carried this far (a Gaussian's sigma) into a fill
SKIN_WEIGHT = 0.05  # ... the fill is wholly that skin where this share of the nearby weight is skin, else partly
# the body's skin tone


def head_skin(photo: np.ndarray, parsing: Parsing, eye_y: float | None) -> np.ndarray:
    """(H, W) bool: the skin of the neck and the lower face, lit skin too (the head's pixels below the eyes that are
    not clothes and are in the YCrCb skin range): what a bared chest continues. Not the torso's and arms' "skin",
    where skin-coloured fabric (a check's beige lines) passes for it."""
    skin = parsing.person & ~parsing.clothes & (parsing.part == PART["head"])
    if eye_y is not None:
        skin &= np.arange(skin.shape[0])[:, None] > eye_y
    skin[skin] = skin_range(photo[skin])
    return skin


def skin_nearby(photo: np.ndarray, skin: np.ndarray, region: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """(N, 3) float32: for each pixel of `region`, the colour of the skin seen near it (`skin`'s pixels, weighted by
    a Gaussian of SKIN_REACH of the height), so a bared chest continues the neck's own colour and light from where
    it shows; `tone` where no skin is near. Worked on the region's box, grown by three reaches."""
    import cv2

    rows, cols = np.nonzero(region)
    if not len(rows):
        return np.zeros((0, 3), np.float32)
    sigma = max(1.0, SKIN_REACH * photo.shape[0])
    pad = int(3 * sigma)
    y0, y1 = max(0, rows.min() - pad), min(photo.shape[0], rows.max() + pad + 1)
    x0, x1 = max(0, cols.min() - pad), min(photo.shape[1], cols.max() + pad + 1)
    weight = skin[y0:y1, x0:x1].astype(np.float32)
    summed = cv2.GaussianBlur(photo[y0:y1, x0:x1].astype(np.float32) * weight[..., None], (0, 0), sigma)
    weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    at = (rows - y0, cols - x0)
    w = weight[at][:, None]
    mix = np.clip(w / SKIN_WEIGHT, 0.0, 1.0)
    return (mix * summed[at] / np.maximum(w, 1e-6) + (1 - mix) * tone[None, :]).astype(np.float32)


def bared_torso_colour(photo: np.ndarray, parsing: Parsing, category: str, skin_tone: np.ndarray,
                       piece: OnePiece | None) -> np.ndarray:
    """(3,) float32: a torso the new top bares: under a top, the lower garment continued (the plain one that replaces
    a one-piece's lower part, else the photo's lower clothes' median); skin when there is none."""
    if piece is not None:
        return piece.colour
    lower_clothes = parsing.clothes & np.isin(parsing.part, LOWER)
    if category == "upper" and lower_clothes.sum() > 50:
        return np.asarray(np.median(photo[lower_clothes], axis=0), np.float32)
    return np.asarray(skin_tone, np.float32)


def garment_pixels(raster: Raster, mesh: BodyMesh, garment_vertices: np.ndarray,
                   garment_texels: np.ndarray | None) -> np.ndarray:
    """(H, W) bool: the pixels that show the new garment. With the atlas's garment texels, each pixel's own UV
    looks them up (grown by a texel, so a UV island's rim is not lost), so a hem or a sleeve's end is the atlas's
    smooth line; without them, the triangles whose vertices are mostly garment (a sawtooth at the hem)."""
    import cv2

    from pipeline.render.shade import interpolate

    if garment_texels is None or mesh.uvs is None or mesh.face_uvs is None:
        on_garment = np.asarray(garment_vertices)[np.asarray(mesh.faces)].mean(axis=1) > 0.5
        return raster.mask & on_garment[np.maximum(raster.triangle, 0)]
    grid = cv2.dilate(np.asarray(garment_texels, np.uint8), np.ones((3, 3), np.uint8)) > 0
    pixels = np.flatnonzero(raster.mask)
    uv = interpolate(raster, np.asarray(mesh.uvs, np.float64)[np.asarray(mesh.face_uvs)], pixels)
    height, width = grid.shape
    x = np.clip((uv[:, 0] * width).astype(np.int64), 0, width - 1)
    y = np.clip(((1.0 - uv[:, 1]) * height).astype(np.int64), 0, height - 1)
    out = np.zeros(raster.triangle.shape, dtype=bool)
    out.reshape(-1)[pixels] = grid[y, x]
    return out


def photo_tryon(photo: np.ndarray, person_mask: np.ndarray, camera: Camera, dressed_mesh: BodyMesh, atlas: np.ndarray,
                garment_vertices: np.ndarray, vertex_part: np.ndarray, skin_tone: np.ndarray | None, category: str,
                lighting: Lighting, hip_y: float | None = None, shoulder_y: float | None = None,
                eye_y: float | None = None, keypoints_2d: np.ndarray | None = None,
                garment_texels: np.ndarray | None = None) -> PhotoTryOn:
    """The photo with the new garment on (see the module docstring). `keypoints_2d`: the fitted COCO keypoints in
    the photo, for what the person wears below a top (`pipeline.fitting.worn`). `garment_texels`: the atlas's
    garment texels, so the new garment's outline follows the atlas's (else whole triangles, a sawtooth)."""
    import cv2

    from pipeline.render.raster import rasterize
    from pipeline.render.shade import shade

    height, width = photo.shape[:2]
    if camera.image_size != (width, height):
        raise ValueError(f"the camera sees {camera.image_size}, the photo is {width}x{height}")
    guessed = []
    if skin_tone is None:
        skin_tone = DEFAULT_SKIN
        guessed.append("no skin was seen in the photo: bared skin took a default tone")
    raster = rasterize(dressed_mesh.vertices, dressed_mesh.faces, camera)
    parsing = parse_photo(photo, person_mask, dressed_mesh, vertex_part, raster, skin_tone)
    if parsing.body_iou < MIN_BODY_IOU:
        guessed.append(f"the fitted body covers the person's outline poorly (IoU {parsing.body_iou:.2f}): the "
                       "garment's region in the photo is a guess")
    surface = Surface(dressed_mesh.vertices, dressed_mesh.faces, atlas, dressed_mesh.uvs, dressed_mesh.face_uvs)
    render = shade(raster, surface, camera, lighting)
    garment = garment_pixels(raster, dressed_mesh, garment_vertices, garment_texels)
    keep = np.isin(parsing.part, KEEP) & parsing.person
    if shoulder_y is not None:  # hair (and hats, hoods) past the body above the shoulders stay the photo's
        rows = np.arange(height)[:, None]
        keep |= parsing.person & ~parsing.rendered & (rows < shoulder_y)
    parsed_old = old_garment(parsing, category, hip_y) & ~keep
    hair = measure_hair(photo, parsing, eye_y, shoulder_y) if eye_y is not None and shoulder_y is not None else None
    if category != "lower" and eye_y is not None and shoulder_y is not None:  # the old top's collar on the neck
        collar = collar_of(photo, parsing, parsed_old, eye_y, shoulder_y, None if hair is None else hair.colour)
        keep &= ~collar
        parsed_old |= collar
        keep |= neck_teeth(keep, parsing, shoulder_y)
    painted = garment & ~keep
    strays = strays_of(photo, parsing, parsed_old, category, hip_y) & ~keep
    cuffs = cuffs_of(photo, parsing, parsed_old) if category != "lower" else np.zeros_like(keep)
    keep &= ~cuffs
    old = whole_sleeves(parsing, parsed_old, category, keep) | strays | cuffs
    exposed = old & ~painted
    out = photo.astype(np.float32)
    roundness = body_shading(raster, surface, camera, exposed)
    shading = roundness * photo_light(photo, exposed)
    bare = parsing.skin & np.isin(parsing.part, (*UPPER, *LOWER))
    bare[bare] = skin_range(photo[bare])  # near the face's tone and skin at all (not a dark jacket's sheen)
    if bare.sum() > 200:  # the body's own skin in this light is a better match than the face's tone
        skin_tone = np.median(photo[bare], axis=0)
    arms = exposed & (np.isin(parsing.part, ARMS) | (cuffs & parsing.rendered))  # off the fitted hand: background
    beyond = sleeve_beyond(parsing, arms & ~cuffs)  # a wide sleeve round a fitted arm: not a fat arm
    arms &= ~beyond
    loose = np.zeros_like(arms)  # a sleeve wider than any arm round the fitted arm's line (the fit follows the
    if keypoints_2d is not None and arms.any():  # clothed outline, so under a jumper it is as wide as the sleeve)
        arm_vertices = np.isin(np.asarray(vertex_part), ARMS)
        scale = pixels_per_metre(camera, np.asarray(dressed_mesh.vertices)[arm_vertices])
        if scale > 0:
            loose = arms & ~arm_reach(keypoints_2d, scale, arms.shape)
            arms &= ~loose
    arms |= holes_filled(arms) & parsing.person & ~keep & ~painted  # a check or a print the parse left out
    _fill(out, arms, np.asarray(skin_tone, np.float32), shading)
    worn = decide(photo, parsing, parsed_old, keypoints_2d, hip_y, shoulder_y) if category == "upper" else None
    piece = None if worn is None or worn.below is None or worn.centres is None else replacement(
        photo, worn.below, worn.centres, worn.lower, painted)
    skirt = piece.below & ~painted & ~arms if piece is not None else np.zeros_like(exposed)
    keep &= ~skirt  # a skirt held out past the fitted hands is the skirt's, not the hands'
    tails = coat_tails(parsing, skirt, hip_y) if piece is not None and piece.coat else np.zeros_like(skirt)
    skirt &= ~tails
    behind = exposed & ~arms & ~skirt & ~tails & (~parsing.rendered | strays | loose)  # the background, or the legs
    torso = exposed & ~arms & ~behind & ~skirt & ~tails
    chest = bared_chest(torso, shoulder_y, hip_y)  # bared shoulders, neck and chest: skin; a bared waist: the
    chest |= holes_filled(chest) & parsing.person & ~keep & ~painted  # lower garment continued
    out[chest] = np.clip(skin_nearby(photo, head_skin(photo, parsing, eye_y) & ~chest, chest,
                                     np.asarray(skin_tone, np.float32))
                         * roundness[chest][:, None], 0, 255)
    _fill(out, torso & ~chest, bared_torso_colour(photo, parsing, category, skin_tone, piece), shading)
    if piece is not None:  # a dress's skirt under a new top: a plain lower garment, the folds kept; a coat's
        light = photo_light(photo, skirt)  # lower part: the trousers seen below it, on the legs, round and folded
        _fill(out, skirt, piece.colour, light * rounded(body_shading(raster, surface, camera, skirt)) if piece.coat
              else light)
        guessed.append(f"the old garment was a long coat: below the new top the legs continue the {piece.name} seen "
                       "below it (assumed)" if piece.coat else f"the old garment was a one-piece (a dress): below "
                       f"the new top it became a plain {piece.name} skirt (assumed)")
    if tails.any():  # a coat's tails off the legs: the background beside them, continued across
        out[tails] = background_across(photo, parsing.person, tails)[tails]
    if behind.any():  # the old garment past the body or over the legs: what is around it, continued (never
        out[painted] = render[painted]  # from the old garment's colours under the new one)
        hole = cv2.dilate(behind.astype(np.uint8), np.ones((3, 3), np.uint8))
        background = cv2.inpaint(np.clip(out, 0, 255).astype(np.uint8), hole, 5, cv2.INPAINT_TELEA)
        out[behind] = background[behind]
    alpha = cv2.GaussianBlur(painted.astype(np.float32), (0, 0), sigmaX=FEATHER_PX) * (~keep)
    alpha = np.maximum(alpha, painted.astype(np.float32) * 0.999)[..., None]
    out = out * (1 - alpha) + render.astype(np.float32) * alpha
    image = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    image[keep] = photo[keep]
    record: dict[str, object] = {
        "painted_share": round(float(painted.mean()), 4), "refilled_share": round(float(exposed.mean()), 4),
        "old_garment_share": round(float(old.mean()), 4), "old_garment_strays": round(float(strays.mean()), 4),
        "body_iou": round(parsing.body_iou, 4), "one_piece": None if piece is None else
        {"share": round(float((skirt | tails).mean()), 4),
         "became": f"the {piece.name} continued" if piece.coat else f"a plain {piece.name} skirt"},
        "worn": None if worn is None else worn.record(),
        "coverage": round(float(painted.sum() / max(garment.sum(), 1)), 4), "guessed": guessed,
    }
    limbs = parsing.person & np.isin(parsing.part, ARMS if category == "upper" else (*ARMS, *LOWER)
                                     if category == "full" else LOWER)
    agnostic = (old | garment | limbs | skirt | tails) & ~keep
    if hair is not None:
        record["hair"] = {"rgb": [round(float(c)) for c in hair.colour], "drop": round(hair.drop, 2),
                          "half_width": round(hair.half_width, 2), "volume": round(hair.volume, 2),
                          "volume_top": round(hair.volume_top, 2),
                          "hat_rgb": None if hair.hat is None else [round(float(c)) for c in hair.hat]}
    return PhotoTryOn(image=image, painted=painted, refilled=exposed | skirt | tails, cleared=loose | tails,
                      record=record, beneath=painted & parsing.person & ~old,
                      guessed=tuple(guessed), agnostic=agnostic, hair=hair, worn=worn)
