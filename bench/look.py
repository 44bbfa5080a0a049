"""How the output looks, measured: framing, the old garment, flat patches and hair, per job and in total.

    .venv/bin/python -m bench.look [--set hard|dev|all] [--limit N] [--only NAME,...] [--garment NAME]
                                   [--out bench/out/look.json] [--sheets DIR] [--flat-only]
                                   [--keep DIR | --measured DIR]

Runs whole jobs (a catalog batch: the chosen person photos x one garment) on the CPU default through the local
runtime, then measures each job's published files (photo.png, angles/000..315.png) against its own inputs:

- framing: per view the figure's mask (pixels off the plain render background); the share of views whose
  figure touches the frame's top or sides; the spread of the figure's height and of its centre across the 8 views
  (as a share of the mean height); whether the head is inside every frame (the figure never touches the top).
- old garment: the photo's old garment region (the same classical parsing photo.png is built from: the fitted
  body's part map in the photo, not skin-coloured, in the parts the new garment replaces), its two dominant
  colours (k-means in Lab); then the share of the figure in photo.png and in the 000 view, outside the new
  garment's colours, within 10 Lab units of an old colour. These count the old colours anywhere (black shoes and
  hair under a black jacket, trousers of the top's colour); `old_garment_share_photo_joined` counts in photo.png
  only those where the old garment was: the old region and the photo's pixels in its colours joined to it.
- flat patches: per view, the figure minus the new garment's colours; pixels whose blurred Lab gradient is under
  1.5 units are "flat"; the largest connected flat region as a share of the figure. The same measure on the
  person's own photo (inside its person mask) says how flat the photo itself is by this measure. That raw figure
  also counts what the dressing did not make: the photo's own flat clothes (plain black trousers, a black dress),
  carried round the body, and the new garment's plain fabric where its shade falls over 14 units off the
  garment's listed colours. `flat_made_share` counts only what the fill made: the same flat pixels, kept only
  where over half of their texel's colour was made up (fitting's atlas_source.png, red: not the photo's own,
  seen or mirrored, nor the garment), then the largest connected region of those as a share of the figure.
  Both are reported; the raw one is the issue's figure and stays as it is.
- skirt: between the knees at 000 (the band from the knees' height up a third of the way to the hips, the middle
  third of the span between the two knees' centres as the 000 camera sees them): the share that is figure, not
  background. A skirt or a dress closes the gap between the legs (1.0); painted on two legs it stays open (near 0
  unless the knees touch).
- background on the body: the photo's background colours (6 k-means centres in Lab of a ring 1 % to 6 % of the
  height outside the person mask) and the person's own (8 centres of the fitted body's pixels at least 1.5 % of
  the height inside the mask); the share of the 000 figure, off the new garment's colours, within 8 Lab units of a
  background colour and 8 units nearer to it than to every colour of the person.
- hair: for photos whose person reaches past the fitted head above the chin (hair beyond the head; the mask's
  background left out), the area and mean colour of the figure's pixels above the chin at 000 and 180 (off the
  skin's and the new garment's colours; the chin: half an eye-to-shoulder length below the eyes, projected with each
  view's camera) against the photo's non-skin pixels of the head above the chin (area at the photo's scale by the
  eye-to-shoulder length each shows, colour as a Lab distance). Above the chin: collars, necklines and headphones
  round the neck are not taken for hair.

Targets (README): 0 views with a cut head, figure height spread under 5 %, old-garment share under 1 %, no flat
patch over 2 % of the figure, background on the body under 1 % of the figure at 000. Exit code 0 even when missed.
`--sheets DIR` writes photo | garment | photo.png | 000 | 090 | 180 | 270 | the view with the largest flat patch
(tinted magenta) | 000 with the background on the body (tinted cyan) per job.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.devdata import DEV_DATA, dev_photos
from functions.app import build_local
from infra.folder_store import FolderStore
from infra.settings import Settings
from pipeline import layout
from pipeline.codec import decode_rgb
from pipeline.fitting.parsing import colour_centres
from pipeline.fitting.parsing import lab8 as lab
from pipeline.manifests import BatchReport
from pipeline.render.shade import BACKGROUND
from pipeline.state import read_model

ROOT = Path(__file__).resolve().parents[1]
ANGLES = ("000", "045", "090", "135", "180", "225", "270", "315")
TARGETS = {"cut_heads": 0, "height_spread": 0.05, "old_garment_share": 0.01, "flat_patch_share": 0.02,
           "background_share": 0.01}


def figure(view: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels off the renderer's plain background."""
    return np.abs(view.astype(np.int16) - np.asarray(BACKGROUND, np.int16)).max(axis=2) > 8


def framing(views: list[np.ndarray]) -> dict[str, Any]:
    heights, centres, touching, cut = [], [], 0, 0
    for view in views:
        mask = figure(view)
        rows, cols = np.nonzero(mask)
        if not len(rows):
            continue
        heights.append(rows.max() - rows.min() + 1)
        centres.append(((cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2))
        top = rows.min() <= 0
        touching += int(top or cols.min() <= 0 or cols.max() >= mask.shape[1] - 1)
        cut += int(top)
    mean_h = float(np.mean(heights)) if heights else 1.0
    spread_c = float(np.ptp(np.asarray(centres), axis=0).max() / mean_h) if centres else 0.0
    return {"touching_share": round(touching / len(views), 3), "cut_heads": cut,
            "height_spread": round(float(np.ptp(heights)) / mean_h, 4) if heights else None,
            "centre_spread": round(spread_c, 4)}


def near_colours(image_lab: np.ndarray, colours_lab: np.ndarray, within: float) -> np.ndarray:
    """(H, W) bool: the pixels within `within` Lab units of any of the colours, a few colours at a time (a close-up's
    skin samples number a thousand: all at once they took 12 GB on a 1248 x 832 view)."""
    near = np.zeros(image_lab.shape[:2], dtype=bool)
    for start in range(0, len(colours_lab), 16):
        chunk = colours_lab[start:start + 16]
        near |= np.linalg.norm(image_lab[:, :, None, :] - chunk[None, None, :, :], axis=3).min(axis=2) < within
    return near


def old_reach(photo_lab: np.ndarray, person: np.ndarray, old: np.ndarray, old_lab: np.ndarray) -> np.ndarray:
    """(H, W) bool: where the old garment was in the photo: its parsed region and the person's pixels in its colours
    (within 10 Lab units) joined to it (a dress's skirt, a sleeve the part map gave to the torso), not the same
    colours apart from it (black shoes or hair under a black jacket, which photo.png keeps by design)."""
    import cv2

    alike = (person & near_colours(photo_lab, old_lab, 10.0)) | old
    count, labels = cv2.connectedComponents(alike.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[old])
    return np.isin(labels, touching[touching > 0]) if count > 1 else np.zeros_like(old)


def dominant(pixels_rgb: np.ndarray, k: int = 2) -> np.ndarray:
    """(k, 3) Lab centres of the pixels (fewer when there are few), as photo.png's parsing finds them."""
    return colour_centres(lab(pixels_rgb.reshape(-1, 1, 3)).reshape(-1, 3), k)


def flat_patch(view: np.ndarray, garment_lab: np.ndarray, among: np.ndarray | None = None) -> float:
    """The largest flat patch as a share of the figure (`among`: counting only those pixels' flat ones)."""
    mask = figure(view)
    if mask.sum() == 0:
        return 0.0
    if among is not None and among.shape != mask.shape:
        return 0.0
    return float(largest_flat(view, garment_lab, among=among).sum()) / float(mask.sum())


def largest_flat(view: np.ndarray, garment_lab: np.ndarray, mask: np.ndarray | None = None,
                 among: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: the view's largest connected flat region on the body (see the module docstring); `mask`: the
    figure when it is not the render's (the photo's person mask); `among`: only these pixels' flat ones count."""
    import cv2

    flat = flat_pixels(view, garment_lab, mask)
    if among is not None:
        flat &= among
    count, labels, stats, _ = cv2.connectedComponentsWithStats(flat.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(flat.shape, dtype=bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def flat_pixels(view: np.ndarray, garment_lab: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: the figure's pixels off the new garment's colours whose blurred Lab gradient is under 1.5."""
    import cv2

    mask = figure(view) if mask is None else mask
    body = mask & ~near_colours(lab(view), garment_lab, 14.0)
    blurred = cv2.GaussianBlur(lab(view), (0, 0), 1.5)
    grad = np.zeros(mask.shape, np.float32)
    for c in range(3):
        gx = cv2.Sobel(blurred[..., c], cv2.CV_32F, 1, 0, ksize=3) / 8
        gy = cv2.Sobel(blurred[..., c], cv2.CV_32F, 0, 1, ksize=3) / 8
        grad = np.maximum(grad, np.hypot(gx, gy))
    return body & (grad < 1.5)


def made_pixels(root: Path, job: str) -> list[np.ndarray] | None:
    """Per view (ANGLES order), (H, W) bool: the pixels whose texels' colours the dressing made up (over half,
    atlas_source.png's red: not the photo's own, seen or mirrored, nor the garment); None without that file."""
    from pipeline.geometry import BodyMesh, read_views_json
    from pipeline.render.raster import rasterize
    from pipeline.render.shade import interpolate, sample_texture
    from pipeline.state import load_plan

    plan = load_plan(FolderStore(root), job)
    if plan is None:
        return None
    fitting = root / layout.run_prefix("fitting", plan.run("fitting").key)
    if not (fitting / "atlas_source.png").is_file():
        return None
    source = decode_rgb((fitting / "atlas_source.png").read_bytes())[..., :1].astype(np.float32) / 255.0
    mesh = BodyMesh.from_npz((fitting / "dressed.npz").read_bytes())
    cameras = dict(read_views_json((fitting / "views.json").read_bytes())[0])
    uv_corners = np.asarray(mesh.uvs, np.float32)[np.asarray(mesh.face_uvs)]
    out = []
    for angle in ANGLES:
        raster = rasterize(mesh.vertices, mesh.faces, cameras[int(angle)])
        pixels = np.flatnonzero(raster.triangle >= 0)
        made = np.zeros(raster.triangle.size, dtype=bool)
        made[pixels] = sample_texture(source, interpolate(raster, uv_corners, pixels))[:, 0] > 0.5
        out.append(made.reshape(raster.triangle.shape))
    return out


def photo_flat(root: Path, job: str, garment_lab: np.ndarray) -> float | None:
    """The same measure on the person's own upright photo inside its person mask: how flat the photo itself is."""
    from pipeline.state import load_plan

    plan = load_plan(FolderStore(root), job)
    if plan is None:
        return None
    avatar = root / layout.run_prefix("avatar", plan.run("avatar").key)
    photo = decode_rgb((avatar / "upright.png").read_bytes())
    mask = decode_rgb((avatar / "mask.png").read_bytes())[..., 0] > 127
    if mask.shape != photo.shape[:2] or not mask.any():
        return None
    return round(float(largest_flat(photo, garment_lab, mask).sum()) / float(mask.sum()), 4)


def cheeks(parsing: Any, keypoints_2d: np.ndarray, head: int) -> np.ndarray:
    """(H, W) bool: the face below the eyes round the nose (`appearance.cheek_box`), where the dressing takes the
    skin tone: the whole head's median was the hair's on dark hair, which made a navy sweater "skin" and the old
    garment's colours a skirt's. Used when its pixels look like skin; a back view falls back to the head."""
    from pipeline.fitting.appearance import cheek_box

    box = cheek_box(parsing.part.shape, keypoints_2d)
    return np.asarray(parsing.person & parsing.rendered & (parsing.part == head) & box)


def photo_parsing(store_root: Path, job: str) -> tuple[np.ndarray, Any, np.ndarray] | None:
    """(upright photo, parsing, old-garment mask) from the job's avatar and wardrobe runs."""
    from pipeline.fitting import regions
    from pipeline.fitting.parsing import old_garment, parse_photo, skin_range
    from pipeline.geometry import Camera, PosedBody
    from pipeline.render.raster import rasterize
    from pipeline.state import load_plan
    from pipeline.wardrobe.contracts import GarmentAnalysis

    store = FolderStore(store_root)
    plan = load_plan(store, job)
    if plan is None:
        return None
    avatar = store_root / layout.run_prefix("avatar", plan.run("avatar").key)
    wardrobe = store_root / layout.run_prefix("wardrobe", plan.run("wardrobe").key)
    photo = decode_rgb((avatar / "upright.png").read_bytes())
    mask = decode_rgb((avatar / "mask.png").read_bytes())[..., 0].astype(np.float32) / 255.0
    camera = Camera.from_json((avatar / "camera.json").read_bytes())
    body = PosedBody.from_npz((avatar / "body.npz").read_bytes())
    rest = np.asarray(body.rest_vertices, np.float64)
    parts = regions.body_parts(rest, regions.rest_keypoints(np.asarray(body.vertices, np.float64), rest,
                                                            body.keypoints_3d))
    category = GarmentAnalysis.model_validate_json((wardrobe / "garment.json").read_bytes()).category.value
    skin = np.median(photo[mask > 0.5], axis=0)  # replaced below by the face's tone when there is one
    raster = rasterize(body.vertices, body.faces, camera)
    parsing = parse_photo(photo, mask, body, parts.label, raster, skin)
    face = cheeks(parsing, np.asarray(body.keypoints_2d, np.float64), regions.PARTS.index("head"))
    if face.sum() <= 30 or skin_range(photo[face]).mean() < 0.5:  # the face is not seen (a back view)
        face = parsing.person & (parsing.part == regions.PARTS.index("head"))
    if face.sum() > 30:
        parsing = parse_photo(photo, mask, body, parts.label, raster, np.median(photo[face], axis=0))
    hip = float(np.mean(body.keypoints_2d[[11, 12], 1]))
    return photo, parsing, old_garment(parsing, category, hip)


BACKGROUND_RING = (0.01, 0.06)  # the photo's background near the person: this far out of the mask (share of height)
BACKGROUND_NEAR = 8.0  # Lab units: a figure pixel this near a background colour ...
BACKGROUND_MARGIN = 8.0  # ... and this much nearer to it than to every colour of the person counts as background


def background_colours(photo: np.ndarray, parsing: Any) -> tuple[np.ndarray, np.ndarray]:
    """(Lab centres of the photo's background in a ring round the person mask, Lab centres of the person's own
    colours: the fitted body's pixels deep inside the mask, where no background reaches)."""
    import cv2

    height = photo.shape[0]

    def grown(mask: np.ndarray, share: float) -> np.ndarray:
        size = 2 * max(1, round(share * height)) + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        return cv2.dilate(mask.astype(np.uint8), kernel) > 0

    person = parsing.person
    ring = grown(person, BACKGROUND_RING[1]) & ~grown(person, BACKGROUND_RING[0])
    inner = ~grown(~(person & parsing.rendered), 0.015)
    photo_lab = lab(photo)
    return colour_centres(photo_lab[ring], 6), colour_centres(photo_lab[inner], 8)


def nearest_colour(image_lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(H, W) Lab distance of each pixel to the nearest centre (inf without centres)."""
    if not len(centres):
        return np.full(image_lab.shape[:2], np.inf, np.float32)
    return np.linalg.norm(image_lab[:, :, None, :] - centres[None, None, :, :], axis=3).min(axis=2)


def background_on_body(view: np.ndarray, background: np.ndarray, own: np.ndarray, garment_lab: np.ndarray
                       ) -> np.ndarray:
    """(H, W) bool: the view's figure pixels (off the new garment's colours) in the photo's background colours
    and clearly not in the person's own: the surroundings painted on the body."""
    view_lab = lab(view)
    body = figure(view) & ~near_colours(view_lab, garment_lab, 14.0)
    to_background = nearest_colour(view_lab, background)
    clear = nearest_colour(view_lab, own) > to_background + BACKGROUND_MARGIN
    return body & (to_background < BACKGROUND_NEAR) & clear


HAIR_CHIN = 0.5  # eye-to-shoulder lengths below the eyes: the chin; the hair reference stops there (collars,
# necklines and headphones round the neck lie lower)


def above_chin(parsing: Any, eye_y: float, shoulder_y: float) -> np.ndarray:
    """(H, W) bool: the person's pixels of the head's part above the chin (not the collar, the neckline, headphones
    round the neck, nor a hand raised to the head)."""
    from pipeline.fitting.parsing import PART

    rows = np.arange(parsing.person.shape[0])[:, None]
    chin = eye_y + HAIR_CHIN * (shoulder_y - eye_y)
    return np.asarray(parsing.person & (parsing.part == PART["head"]) & (rows < chin))


def hair(photo: np.ndarray, parsing: Any, photo_rows: tuple[float, float], eyes: np.ndarray, shoulders: np.ndarray,
         cameras: dict[int, Any], views: dict[str, np.ndarray], garment_lab: np.ndarray) -> dict[str, Any] | None:
    """For photos whose hair reaches past the fitted head (the person above the chin, `above_chin`, its background
    left out, off the fitted body), its non-skin pixels there (the photo's hair, or hat) against the figure's above
    the chin at 000 and 180 (off the skin's and the new garment's colours): the area at the photo's scale (by the
    eye-to-shoulder length each shows) and the mean Lab colour. `photo_rows`: the eyes' and the shoulders' rows in
    the photo; `eyes`, `shoulders`: (2, 3) world keypoints; `cameras`: the views' by angle."""
    from pipeline.fitting.background import background_in_mask

    eye_y, shoulder_y = photo_rows
    unit = shoulder_y - eye_y
    if unit <= 2:
        return None
    chin = above_chin(parsing, eye_y, shoulder_y) & ~background_in_mask(photo, parsing.person)
    if (chin & ~parsing.rendered).sum() < 0.002 * chin.size:  # nothing stands past the fitted head: no hair to carry
        return None
    head = chin & ~parsing.skin  # the hair (or a hat): blonde hair the skin map takes for skin is left out, in the
    # photo as in the views
    ref = lab(photo)[head].mean(axis=0)
    skin = lab(photo[parsing.skin].reshape(-1, 1, 3)).reshape(-1, 3)[::500]
    out: dict[str, Any] = {"photo_area": int(head.sum()), "photo_rgb": [round(float(c)) for c in
                                                                       photo[head].mean(axis=0)]}
    for angle in ("000", "180"):
        view, camera = views[angle], cameras[int(angle)]
        view_eye, view_shoulder = (float(camera.project(k)[:, 1].mean()) for k in (eyes, shoulders))
        view_unit = view_shoulder - view_eye
        if view_unit <= 2:
            continue
        rows = np.arange(view.shape[0])[:, None]
        view_lab = lab(view)
        found = (figure(view) & (rows < view_eye + HAIR_CHIN * view_unit) & ~near_colours(view_lab, skin, 12.0)
                 & ~near_colours(view_lab, garment_lab, 14.0))
        out[angle] = {"area_vs_photo": round(float(found.sum() * (unit / view_unit) ** 2 / max(head.sum(), 1)), 3),
                      "colour_delta": round(float(np.linalg.norm(view_lab[found].mean(axis=0) - ref)), 1)
                      if found.any() else None}
    return out


def skirt_fill(root: Path, job: str, view: np.ndarray) -> float | None:
    """The share of the band between the knees at 000 that is figure (see the module docstring)."""
    from infra.folder_store import FolderStore
    from pipeline.geometry import PosedBody, read_views_json
    from pipeline.state import load_plan

    plan = load_plan(FolderStore(root), job)
    if plan is None:
        return None
    body = PosedBody.from_npz((root / layout.run_prefix("avatar", plan.run("avatar").key) / "body.npz").read_bytes())
    cameras = read_views_json((root / layout.run_prefix("fitting", plan.run("fitting").key) / "views.json")
                              .read_bytes())[0]
    camera = dict(cameras)[0]
    kp = np.asarray(body.keypoints_3d, np.float64)
    knees = camera.project(kp[[13, 14]])
    hips = camera.project(kp[[11, 12]])
    left, right = sorted(knees[:, 0])
    x0, x1 = left + (right - left) / 3, right - (right - left) / 3
    y1 = float(knees[:, 1].mean())
    y0 = y1 - (y1 - float(hips[:, 1].mean())) / 3
    rows, cols = slice(max(0, int(y0)), max(0, int(y1)) + 1), slice(max(0, int(x0)), max(0, int(x1)) + 1)
    band = view[rows, cols]
    if band.size == 0:
        return None
    return round(float(figure(band).mean()), 4)


def measure_job(root: Path, job: str, garment_colours_lab: np.ndarray, flat_only: bool = False) -> dict[str, Any]:
    res = root / layout.result_prefix(job)
    views = {a: decode_rgb((res / f"angles/{a}.png").read_bytes()) for a in ANGLES}
    row: dict[str, Any] = {"job": job, "framing": framing(list(views.values()))}
    patches = [flat_patch(v, garment_colours_lab) for v in views.values()]
    row["flat_patch_share"] = round(max(patches), 4)
    row["flat_patch_per_view"] = [round(p, 4) for p in patches]
    row["flat_patch_share_in_photo"] = photo_flat(root, job, garment_colours_lab)
    made = made_pixels(root, job)
    if made is not None:
        made_patches = [flat_patch(v, garment_colours_lab, m) for v, m in zip(views.values(), made, strict=True)]
        row["flat_made_share"] = round(max(made_patches), 4)
        row["flat_made_per_view"] = [round(p, 4) for p in made_patches]
    row["skirt_fill_000"] = skirt_fill(root, job, views["000"])
    parsed = None if flat_only else photo_parsing(root, job)
    if parsed is not None:
        photo, parsing, old = parsed
        old_lab = dominant(photo[old])
        reach = old_reach(lab(photo), parsing.person, old, old_lab)
        for name, image in (("photo", decode_rgb((res / "photo.png").read_bytes())), ("000", views["000"])):
            base = parsing.person if name == "photo" else figure(image)
            if image.shape[:2] != base.shape:
                continue
            image_lab = lab(image)
            body = base & ~near_colours(image_lab, garment_colours_lab, 14.0)
            shows_old = body & near_colours(image_lab, old_lab, 10.0)
            row[f"old_garment_share_{name}"] = round(float(shows_old.sum() / max(base.sum(), 1)), 4)
            if name == "photo":
                row["old_garment_share_photo_joined"] = round(float((shows_old & reach).sum() / max(base.sum(), 1)), 4)
        background, own = background_colours(photo, parsing)
        found = background_on_body(views["000"], background, own, garment_colours_lab)
        row["background_share_000"] = round(float(found.sum() / max(figure(views["000"]).sum(), 1)), 4)
        row["hair"] = job_hair(root, job, photo, parsing, views, garment_colours_lab)
    return row


def job_hair(root: Path, job: str, photo: np.ndarray, parsing: Any, views: dict[str, np.ndarray],
             garment_lab: np.ndarray) -> dict[str, Any] | None:
    """`hair` with the job's fitted body (its eyes and shoulders) and its views' cameras."""
    from pipeline.geometry import PosedBody, read_views_json
    from pipeline.state import load_plan

    plan = load_plan(FolderStore(root), job)
    assert plan is not None
    body = PosedBody.from_npz((root / layout.run_prefix("avatar", plan.run("avatar").key) / "body.npz").read_bytes())
    cameras = dict(read_views_json((root / layout.run_prefix("fitting", plan.run("fitting").key) / "views.json")
                                   .read_bytes())[0])
    kp, kp2 = np.asarray(body.keypoints_3d, np.float64), np.asarray(body.keypoints_2d, np.float64)
    rows = (float(kp2[[1, 2], 1].mean()), float(kp2[[5, 6], 1].mean()))
    return hair(photo, parsing, rows, kp[[1, 2]], kp[[5, 6]], cameras, views, garment_lab)


def run_batch(root: Path, people: list[Path], garment: Path) -> BatchReport | None:
    app = build_local(root, Settings(workers=2, log_level="warning"))
    with app.runtime:
        for person in people:
            app.store.put(f"{layout.catalog_people_prefix('look')}{person.name}", person.read_bytes())
        app.store.put(f"{layout.catalog_garments_prefix('look')}{garment.name}", garment.read_bytes())
        app.store.put(layout.batch_marker_key("look"), b"{}")
        app.runtime.run_until(lambda: app.store.head(layout.batch_report_key("look")) is not None, timeout=3600)
    return read_model(app.store, layout.batch_report_key("look"), BatchReport)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if "framing" in r]

    def median(key: str) -> float | None:
        values = [r[key] for r in ok if r.get(key) is not None]
        return round(statistics.median(values), 4) if values else None

    return {
        "jobs": len(rows), "measured": len(ok),
        "views_touching_share": round(statistics.mean(r["framing"]["touching_share"] for r in ok), 3) if ok else None,
        "cut_heads": sum(r["framing"]["cut_heads"] for r in ok),
        "height_spread_max": max((r["framing"]["height_spread"] or 0) for r in ok) if ok else None,
        "old_garment_share_photo_median": median("old_garment_share_photo"),
        "old_garment_share_photo_joined_median": median("old_garment_share_photo_joined"),
        "old_garment_share_000_median": median("old_garment_share_000"),
        "flat_patch_share_median": median("flat_patch_share"),
        "flat_patch_share_max": max((r["flat_patch_share"] for r in ok), default=None),
        "flat_patch_share_in_photo_median": median("flat_patch_share_in_photo"),
        "flat_patch_under_target": sum(r["flat_patch_share"] <= TARGETS["flat_patch_share"] for r in ok),
        "flat_made_share_median": median("flat_made_share"),
        "flat_made_share_max": max((r["flat_made_share"] for r in ok if "flat_made_share" in r), default=None),
        "flat_made_under_target": sum(r.get("flat_made_share", 1.0) <= TARGETS["flat_patch_share"] for r in ok),
        "skirt_fill_000_median": median("skirt_fill_000"),
        "background_share_000_median": median("background_share_000"),
        "background_share_000_max": max((r.get("background_share_000") or 0 for r in ok), default=None),
        "hair_180_area_median": hair_median(ok, "area_vs_photo"),
        "hair_180_colour_delta_median": hair_median(ok, "colour_delta"),
        "targets": TARGETS,
    }


def hair_median(rows: list[dict[str, Any]], key: str) -> float | None:
    """The median of a hair figure at 180 over the jobs that measured it."""
    values = [r["hair"]["180"][key] for r in rows
              if r.get("hair") and r["hair"].get("180") and r["hair"]["180"].get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("hard", "dev", "all"), default="hard")
    parser.add_argument("--limit", type=int, default=0, help="at most this many person photos (0: all)")
    parser.add_argument("--only", default="", help="comma-separated parts of the photos' names to keep")
    parser.add_argument("--flat-only", action="store_true", help="measure framing and flat patches only (quicker)")
    parser.add_argument("--garment", default="00055_00.jpg", help="a garment photo of the dev set")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/look.json")
    parser.add_argument("--sheets", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep its bucket (to look at)")
    parser.add_argument("--measured", type=Path, default=None,
                        help="measure the jobs a --keep run left in this folder again (no new run)")
    args = parser.parse_args()
    hard = sorted(p for p in (DEV_DATA / "hard/people").glob("*") if p.suffix.lower() in (".jpg", ".png"))
    dev = dev_photos("people")[:8]
    people = {"hard": hard, "dev": dev, "all": dev + hard}[args.set]
    if args.only:
        people = [p for p in people if any(part in p.name for part in args.only.split(","))]
    people = people[: args.limit] if args.limit else people
    garment = DEV_DATA / "garments" / args.garment
    if not people or not garment.is_file():
        raise SystemExit(f"no photos under {DEV_DATA}: set DROPFIT_DEV_DATA")
    tmp = args.keep if args.keep is not None else Path(tempfile.mkdtemp(prefix="dropfit-look-"))
    try:
        if args.measured is not None:
            tmp = args.measured
            report = read_model(FolderStore(tmp / "bucket"), layout.batch_report_key("look"), BatchReport)
        else:
            report = run_batch(tmp / "bucket", people, garment)
        assert report is not None, "the batch did not finish"
        from pipeline.wardrobe.contracts import GarmentAnalysis

        rows: list[dict[str, Any]] = []
        garment_lab = np.zeros((0, 3), np.float32)
        for entry in report.jobs:
            if args.only and not any(part in entry.job_id for part in args.only.split(",")):
                continue
            if entry.status != "succeeded":
                rows.append({"job": entry.job_id, "failed": entry.error})
                continue
            if not len(garment_lab):
                manifest = json.loads((tmp / "bucket" / layout.result_manifest_key(entry.job_id)).read_text())
                key = manifest["phases"]["wardrobe"]["run_key"]
                analysis = GarmentAnalysis.model_validate_json(
                    (tmp / "bucket" / layout.run_prefix("wardrobe", key) / "garment.json").read_bytes())
                rgb = np.asarray([[int(c.hex[i:i + 2], 16) for i in (1, 3, 5)] for c in analysis.appearance.colours],
                                 np.uint8).reshape(-1, 1, 3)
                garment_lab = lab(rgb).reshape(-1, 3)
            rows.append(measure_job(tmp / "bucket", entry.job_id, garment_lab, args.flat_only))
            print(json.dumps(rows[-1]), flush=True)
            if args.sheets is not None:
                args.sheets.mkdir(parents=True, exist_ok=True)
                write_sheet(tmp / "bucket", entry.job_id, args.sheets, garment_lab)
        summary = summarise(rows)
        print(json.dumps(summary, indent=2))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "jobs": rows}, indent=2))
    finally:
        if args.keep is None and args.measured is None:
            shutil.rmtree(tmp, ignore_errors=True)


def write_sheet(root: Path, job: str, folder: Path, garment_lab: np.ndarray) -> None:
    """photo | garment | photo.png | 000 | 090 | 180 | 270, then the view with the largest flat patch, tinted, and
    000 with the background on the body tinted."""
    from PIL import Image

    res = root / layout.result_prefix(job)
    manifest = json.loads((res / "manifest.json").read_text())
    tiles = [root / manifest["inputs"]["person"], root / manifest["inputs"]["garment"], res / "photo.png"]
    tiles += [res / f"angles/{a}.png" for a in ("000", "090", "180", "270")]
    images = [np.asarray(Image.open(path).convert("RGB")) for path in tiles]
    views = [decode_rgb((res / f"angles/{a}.png").read_bytes()) for a in ANGLES]
    patches = [largest_flat(v, garment_lab) for v in views]
    worst = int(np.argmax([p.sum() for p in patches]))
    tinted = views[worst].astype(np.float32)
    tinted[patches[worst]] = 0.4 * tinted[patches[worst]] + 0.6 * np.array([255.0, 0.0, 255.0])
    images.append(tinted.astype(np.uint8))
    parsed = photo_parsing(root, job)
    if parsed is not None:  # 000 with the background on the body tinted cyan
        background, own = background_colours(parsed[0], parsed[1])
        found = background_on_body(views[0], background, own, garment_lab)
        shown = views[0].astype(np.float32)
        shown[found] = 0.3 * shown[found] + 0.7 * np.array([0.0, 255.0, 255.0])
        images.append(shown.astype(np.uint8))
    resized = [np.asarray(Image.fromarray(im).resize((round(im.shape[1] * 360 / im.shape[0]), 360))) for im in images]
    Image.fromarray(np.concatenate(resized, axis=1)).save(folder / f"{job}.png")  # PNG: any viewer shows it


if __name__ == "__main__":
    main()
