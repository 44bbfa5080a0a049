"""Phase 3, fitting: avatar + wardrobe -> fit report, the dressed body, the 8 angles, identity and quality flags.

Reads the avatar's body (posed mesh, camera, upright photo, mask, face bank, measurements) and the
wardrobe's analysis (garment.json, cutout); computes the P2P fit report; dresses the body (the garment's
texture on its region, offset by the ease; the person's own appearance elsewhere); renders the turntable
at the photo's resolution; checks identity on the angles within 45 degrees of the photo's view (000, 045 and
315, `pipeline.fitting.identity`); flags what a person should look at before trusting the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from pipeline.avatar.contracts import FaceBank
from pipeline.backends.protocols import (
    FaceEmbedder,
    QualityJudge,
    TryOnPainter,
    TryOnVerdict,
    ViewRefiner,
    VisionLLMError,
)
from pipeline.body.measure import Measurements
from pipeline.codec import decode_mask, decode_rgb, decode_rgba, encode_jpeg, encode_png
from pipeline.fitting.contracts import FitReport
from pipeline.fitting.dress import DressedBody, GarmentLook, PersonPhoto, dress_body, dress_geometry
from pipeline.fitting.fit_report import fit_report
from pipeline.fitting.identity import AngleIdentity, identity_per_angle
from pipeline.fitting.neck import neck_cutouts
from pipeline.fitting.photo import PhotoTryOn, photo_tryon
from pipeline.fitting.refine import person_crop, refine_requests, refine_with_identity
from pipeline.fitting.skirt_look import kept_skirt, make_skirt, plan_for, put_on
from pipeline.fitting.sleeves import SleeveReach, sleeve_reach
from pipeline.fitting.tryon import face_box, garment_on_white, repaint_with_identity, tryon_request, tryon_requests
from pipeline.geometry import BodyMesh, Camera, PosedBody, views_json
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.render.shade import Lighting, Surface
from pipeline.render.views import View, contact_sheet, render_views, turntable
from pipeline.spec import Category
from pipeline.wardrobe.contracts import GarmentAnalysis

if TYPE_CHECKING:
    from pipeline.render.raster import Raster  # torch: imported where a phase rasterizes

# The atlas already carries the photo's own light and shade, so the render adds none where the photo shows the
# body: the light comes from behind the body towards the camera (a rim light), so surfaces facing the camera get
# the ambient alone (0.95, about the photo's tones) and only silhouettes and turned-away surfaces brighten a
# little, giving the back and the garment's flat texture some shape. A light from the camera's side put a second
# shading over the photo's and pushed the identity distance at 000 from 0.17 to 0.31 (median, dev pairs).
PHOTO_LIGHT = Lighting(ambient=0.95, diffuse=0.25, direction=(-0.35, -0.45, -1.0))
COCO_EYES, COCO_SHOULDERS, COCO_HIPS = (1, 2), (5, 6), (11, 12)  # in the body's keypoints (anny's COCO-23 order)
MAX_TRIES = 3  # try-on attempts per angle while its face does not match the person's
MIN_UNSEEN_SHARE = 0.05  # an angle whose unseen share of its garment pixels is below this keeps its render
MIN_COVERAGE = 0.25  # below this share of the garment region's front showing the garment photo, flag the job


class VisionGate(TypedDict, total=False):
    """The vision LLM's verdict as fitting.json records it (`vision_gate`); only `status` when there is none."""

    status: str
    acceptable: bool
    score: float
    problems: list[str]


@dataclass(frozen=True)
class FittingBackends:
    faces: FaceEmbedder
    judge: QualityJudge | None = None  # a vision LLM's verdict on the views, when one is configured
    painter: TryOnPainter | None = None  # the generative try-on pass over the renders (the gpu profile)
    refiner: ViewRefiner | None = None  # the full-figure photoreal pass over the views, after the try-on


@dataclass(frozen=True)
class FittingInputs:
    """What the avatar and wardrobe phases left for this one, read back as typed records."""

    body: PosedBody
    photo: PersonPhoto
    bank: FaceBank
    measurements: Measurements
    garment: GarmentAnalysis
    cutout: np.ndarray  # (h, w, 4) uint8
    texture: np.ndarray  # (h, w, 3) uint8 plain fabric


def read_inputs(io: PhaseIO) -> FittingInputs:
    photo = PersonPhoto(decode_rgb(io.read_upstream("avatar", "upright.png")),
                        decode_mask(io.read_upstream("avatar", "mask.png")),
                        Camera.from_json(io.read_upstream("avatar", "camera.json")))
    return FittingInputs(
        body=PosedBody.from_npz(io.read_upstream("avatar", "body.npz")), photo=photo,
        bank=FaceBank.model_validate_json(io.read_upstream("avatar", "face_bank.json")),
        measurements=Measurements.model_validate_json(io.read_upstream("avatar", "measurements.json")),
        garment=GarmentAnalysis.model_validate_json(io.read_upstream("wardrobe", "garment.json")),
        cutout=decode_rgba(io.read_upstream("wardrobe", "cutout.png")),
        texture=decode_rgb(io.read_upstream("wardrobe", "texture.png")),
    )


def fit_and_render(task: PhaseTask, io: PhaseIO, backends: FittingBackends) -> PhaseResult:
    given = read_inputs(io)
    body, camera, bank, garment, cutout = given.body, given.photo.camera, given.bank, given.garment, given.cutout
    report = fit_report(given.measurements, garment)
    sleeves = sleeve_reach(cutout[..., 3]) if garment.category.value != "lower" else None
    printed = garment.appearance.print
    print_box = printed.box if printed.kind == "placed" else None
    necked = garment.category.value != "lower" and printed.kind != "all-over"  # `pipeline.fitting.neck`
    back, front = neck_cutouts(cutout, print_box) if necked else (None, None)
    look = GarmentLook(cutout, garment.category.value, given.texture, print_box=print_box, back=back, front=front,
                       sleeve_reach=sleeves.reach if sleeves is not None else None)
    ease: dict[str, float] = {r.region: r.effective_ease_cm for r in report.regions}
    planned = plan_for(body, camera, look)  # a skirt or a dress: a shell round both legs, on both dressings
    look = replace(look, heights=planned.heights)
    geometry = dress_geometry(body, camera, look)  # both dressings' own: the photo's pixels are not in it
    first = dress_body(body, given.photo, look, ease, texture_made=False, geometry=geometry)  # photo.png: garment only
    skirt = make_skirt(first, camera, look, planned)
    first = put_on(first, body, skirt)
    tried_on = try_on_photo(given, first, look)
    if backends.painter is not None:  # the try-on model where it is strongest: on the person's own photo
        tried_on = repaint_photo(backends, bank, given, tried_on, cutout, report)
    # the 8 views take their colours from photo.png (the person already wearing the garment), not the old photo
    made = tried_on.refilled if backends.painter is None else None  # the painter's fills are photoreal, not flat
    dressed = dress_body(body, replace(given.photo, rgb=tried_on.image, hair=tried_on.hair, made=made,
                                       painted=tried_on.painted, beneath=tried_on.beneath,
                                       original=given.photo.rgb,
                                       mask=views_mask(given.photo.mask, tried_on)),
                         look, ease, worn_in_photo=backends.painter is not None, geometry=geometry)
    if tried_on.worn is not None:  # the person's own long skirt (or a dress's), kept under the new top: a skirt too
        skirt = kept_skirt(dressed, body, replace(given.photo, rgb=tried_on.image), tried_on.worn) or skirt
    dressed = put_on(dressed, body, skirt)
    mesh = dressed.mesh(body)
    table = turntable(camera, dressed.vertices)  # one framing for all 8 angles, the visible figure whole
    views = render_views(Surface(mesh.vertices, mesh.faces, dressed.atlas, mesh.uvs, mesh.face_uvs),
                         table.camera, table.centre, lighting=PHOTO_LIGHT)
    tryon: dict[str, object] = {"status": "not configured"}
    rasters = view_rasters(mesh, views) if backends.painter or backends.refiner else []
    if backends.painter is None:
        identity = identity_per_angle(backends.faces, bank, views)
    else:
        views, identity, tryon = repaint_views(backends, bank, views, dressed, mesh, rasters, cutout, report,
                                               garment.category.value)
    refine: dict[str, object] = {"status": "not configured"}
    if backends.refiner is not None:
        views, identity, refine = refine_views(backends, bank, views, identity, [r.depth for r in rasters],
                                               person_crop(tried_on.image, given.photo.mask))
    gate = vision_gate(backends.judge, views, cutout, given.photo.rgb)
    photo_record = tried_on.record | {"identity": photo_identity(backends.faces, bank, tried_on.image, camera)}
    flags = quality_flags(bank, identity, dressed, gate) + [f"photo: {why}" for why in tried_on.guessed]
    dressing = dressing_record(dressed, sleeves) | {"vision_gate": gate, "tryon": tryon, "refine": refine,
                                                    "photo": photo_record}
    io.write("photo.png", encode_png(tried_on.image), "image/png")
    write_outputs(io, report, dressed, mesh, views, identity, flags, dressing,
                  from_atlas=backends.painter is None and backends.refiner is None)
    return PhaseResult(data=summary(report, identity, flags, dressing),
                       backends={"faces": f"{backends.faces.name} {backends.faces.version}",
                                 "renderer": "dropfit torch rasterizer 1", "dress": "uv-atlas projection 2"}
                       | ({"judge": f"{backends.judge.name} {backends.judge.version}"} if backends.judge else {}))


def views_mask(person_mask: np.ndarray, tried_on: PhotoTryOn) -> np.ndarray:
    """The person in photo.png, for the views' dressing: the photo's mask, the new garment added, and what
    photo.png turned into the background over the fitted body taken out (a sleeve wider than an arm, a coat's tails)."""
    mask = np.maximum(person_mask, tried_on.painted.astype(np.float32))
    if tried_on.cleared is not None:
        mask = np.where(tried_on.cleared & ~tried_on.painted, 0.0, mask).astype(np.float32)
    return mask


def try_on_photo(given: FittingInputs, dressed: DressedBody, look: GarmentLook) -> PhotoTryOn:
    """photo.png on the CPU path: the dressed body, seen by the photo's camera, composited onto the photo."""
    body, photo = given.body, given.photo
    mesh = dressed.mesh(body)
    hips, shoulders, eyes = (float(np.mean(body.keypoints_2d[list(pair), 1]))
                             for pair in (COCO_HIPS, COCO_SHOULDERS, COCO_EYES))
    assert dressed.vertex_part is not None
    return photo_tryon(photo.rgb, photo.mask, photo.camera, mesh, dressed.atlas, dressed.garment_vertices,
                       dressed.vertex_part, dressed.skin, look.category, PHOTO_LIGHT, hip_y=hips, shoulder_y=shoulders,
                       eye_y=eyes, keypoints_2d=np.asarray(body.keypoints_2d, np.float64),
                       garment_texels=dressed.garment_texels)


def repaint_photo(backends: FittingBackends, bank: FaceBank, given: FittingInputs, tried_on: PhotoTryOn,
                  cutout: np.ndarray, report: FitReport) -> PhotoTryOn:
    """photo.png on the GPU profile: the try-on painter on the real photo at its resolution, inside the agnostic
    mask of the garment region (the parsing's old and new garment and the limbs it bares), the face kept; retried
    with new seeds while the face drifts. The CPU composite is what the mask was made from."""
    assert backends.painter is not None and tried_on.agnostic is not None
    photo = given.photo
    view = View(0, photo.camera, photo.rgb, photo.mask > 0.5, 0.0)
    request = tryon_request(view, tried_on.agnostic.astype(np.float32), garment_on_white(cutout), report.prompt_cues,
                            face_box(backends.faces, photo.rgb), seed=0, category=given.garment.category.value)
    done = repaint_with_identity(backends.painter, backends.faces, bank, [view], [request], MAX_TRIES)
    record = tried_on.record | {"painter": f"{backends.painter.name} {backends.painter.version}",
                                "tries": done.tries[0], "seed": done.seeds[0]}
    return replace(tried_on, image=done.images[0], painted=tried_on.agnostic, record=record)


def photo_identity(faces: FaceEmbedder, bank: FaceBank, image: np.ndarray, camera: Camera) -> float | None:
    """The face in photo.png against the face bank (about 0: the face is the photo's own pixels)."""
    view = View(0, camera, image, np.ones(image.shape[:2], dtype=bool), 0.0)
    return identity_per_angle(faces, bank, [view])[0].distance


def view_rasters(mesh: BodyMesh, views: list[View]) -> list[Raster]:
    """What each view's pixels see of the dressed mesh (triangle, barycentrics, depth), for the GPU passes."""
    from pipeline.render.raster import rasterize

    return [rasterize(mesh.vertices, mesh.faces, view.camera) for view in views]


def repaint_views(backends: FittingBackends, bank: FaceBank, views: list[View], dressed: DressedBody,
                  body: BodyMesh, rasters: list[Raster], cutout: np.ndarray, report: FitReport, category: Category
                  ) -> tuple[list[View], list[AngleIdentity], dict[str, object]]:
    """The try-on painter over what photo.png cannot show: on each angle, the garment's pixels whose texels the
    photo does not see (the back, the far side, what the arms hid) are repainted from the garment photo and the fit
    cues, the face kept, identity checked per angle and failing angles retried (`pipeline.fitting.tryon`). The
    rest of the garment already carries photo.png's try-on; an angle with too little unseen garment is kept as
    rendered."""
    assert backends.painter is not None
    regions = [unseen_garment_region(dressed, body, raster) for raster in rasters]
    shares = [float(unseen.sum() / max(garment.sum(), 1.0)) for garment, unseen in regions]
    index = [i for i, (garment, unseen) in enumerate(regions)
             if unseen.sum() > 0 and unseen.sum() >= MIN_UNSEEN_SHARE * garment.sum()]
    kept = [i for i in range(len(views)) if i not in index]
    identity: list[AngleIdentity | None] = [None] * len(views)
    for i, found in zip(kept, identity_per_angle(backends.faces, bank, [views[i] for i in kept]), strict=True):
        identity[i] = found
    tries = [0] * len(views)
    seeds: list[int | None] = [None] * len(views)
    repainted = list(views)
    if index:
        chosen = [views[i] for i in index]
        requests = tryon_requests(backends.faces, chosen, [regions[i][1] for i in index], garment_on_white(cutout),
                                  report.prompt_cues, category=category)
        done = repaint_with_identity(backends.painter, backends.faces, bank, chosen, requests, MAX_TRIES)
        for k, i in enumerate(index):
            repainted[i] = replace(views[i], image=done.images[k])
            identity[i], tries[i], seeds[i] = done.identity[k], done.tries[k], done.seeds[k]
    angles = [f"{v.angle_deg:03d}" for v in views]
    record: dict[str, object] = {
        "status": "repainted", "painter": f"{backends.painter.name} {backends.painter.version}",
        "region": "the garment's pixels unseen in photo.png", "min_unseen_share": MIN_UNSEEN_SHARE,
        "unseen_share": dict(zip(angles, (round(x, 4) for x in shares), strict=True)),
        "tries": dict(zip(angles, tries, strict=True)), "seeds": seeds}
    return repainted, [found for found in identity if found is not None], record


def unseen_garment_region(dressed: DressedBody, body: BodyMesh, raster: Raster) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 each: the pixels of a view (its `raster`) that show the garment's part of the dressed body, and
    of those the ones whose texels photo.png does not show (1 - the seen share sampled from the atlas)."""
    from pipeline.render.shade import interpolate, sample_texture

    faces = np.asarray(body.faces)
    on_garment = dressed.garment_vertices[faces].mean(axis=1) > 0.5
    hit = raster.triangle >= 0
    garment = np.zeros(raster.triangle.shape, dtype=np.float32)
    garment[hit] = on_garment[raster.triangle[hit]]
    unseen = garment.copy()
    if dressed.seen_texels is not None:
        pixels = np.flatnonzero(garment > 0)
        uv = interpolate(raster, np.asarray(body.uvs, dtype=np.float32)[np.asarray(body.face_uvs)], pixels)
        seen = sample_texture(dressed.seen_texels[..., None].astype(np.float32), uv)[:, 0]
        unseen.reshape(-1)[pixels] = (seen < 0.5).astype(np.float32)
    return garment, unseen


def vision_gate(judge: QualityJudge | None, views: list[View], cutout: np.ndarray, photo: np.ndarray
                ) -> VisionGate:
    """The vision LLM's verdict on the 8 views, or why there is none. A refused or malformed answer is recorded,
    not fatal (the other gates still hold); a rate limit or an outage raises RetryableError: the phase retries."""
    if judge is None:
        return {"status": "not configured"}
    try:
        verdict: TryOnVerdict = judge.judge_tryon([v.image for v in views], garment_on_white(cutout), photo)
    except VisionLLMError as exc:
        return {"status": f"no verdict: {exc}"}
    return {"status": "judged", "acceptable": verdict.acceptable, "score": round(verdict.score, 3),
            "problems": list(verdict.problems)}


def refine_views(backends: FittingBackends, bank: FaceBank, views: list[View], identity: list[AngleIdentity],
                 depths: list[np.ndarray], person: np.ndarray
                 ) -> tuple[list[View], list[AngleIdentity], dict[str, object]]:
    """The view refiner over the 8 views (`pipeline.fitting.refine`): each held by its depth, the face and the
    background kept, the refined view kept per angle only where identity is no worse than before."""
    assert backends.refiner is not None
    requests = refine_requests(backends.faces, views, depths, person)
    done = refine_with_identity(backends.refiner, backends.faces, bank, views, identity, requests)
    return done.views, done.identity, done.record


def quality_flags(bank: FaceBank, identity: list[AngleIdentity], dressed: DressedBody,
                  gate: VisionGate | None = None) -> list[str]:
    """What should stop a person from trusting the result without a look."""
    flags = []
    front = identity[0]
    if bank.references and (front.distance is None or front.distance >= bank.threshold):
        flags.append("identity: the 000 view's face does not match the person photo's")
    if dressed.coverage < MIN_COVERAGE:
        flags.append(f"garment: the garment photo covers only {dressed.coverage:.0%} of the front of its region "
                     f"(under {MIN_COVERAGE:.0%}): check the garment mask and the category")
    if gate and gate.get("status") == "judged" and not gate.get("acceptable"):
        problems = "; ".join(str(p) for p in gate.get("problems") or []) or "no reason given"
        flags.append(f"vision: the vision model finds the try-on unconvincing (score {gate.get('score')}): {problems}")
    return flags


def dressing_record(dressed: DressedBody, sleeves: SleeveReach | None) -> dict[str, object]:
    """How the body was dressed, for fitting.json and the manifest."""
    return {"garment_coverage": round(dressed.coverage, 4), "photo_seen": round(dressed.seen, 4),
            "sleeve_reach": None if sleeves is None else sleeves.reach,
            "sleeve_basis": "the category's default" if sleeves is None else sleeves.basis,
            "sleeve_m": None if dressed.sleeve_m is None else round(dressed.sleeve_m, 3),
            "bared_limbs": round(dressed.bared_limbs, 4), "made_up": round(dressed.made_up, 4),
            "skirt": dressed.skirt or {"status": "none"}}


def write_outputs(io: PhaseIO, report: FitReport, dressed: DressedBody, mesh: BodyMesh, views: list[View],
                  identity: list[AngleIdentity], flags: list[str], dressing: dict[str, object], *,
                  from_atlas: bool) -> None:
    for view in views:
        io.write(f"angles/{view.angle_deg:03d}.png", encode_png(view.image), "image/png")
    io.write("contact_sheet.jpg", encode_jpeg(contact_sheet(views, columns=4, scale=0.5), quality=90), "image/jpeg")
    lighting = {"ambient": PHOTO_LIGHT.ambient, "diffuse": PHOTO_LIGHT.diffuse,
                "direction": list(PHOTO_LIGHT.direction)}
    io.write("views.json", views_json([(v.angle_deg, v.camera) for v in views], lighting, from_atlas=from_atlas),
             "application/json")
    io.write("atlas.png", encode_png(dressed.atlas), "image/png")
    io.write("atlas_source.png", encode_png(atlas_source(dressed)), "image/png")
    io.write("dressed.npz", mesh.to_npz())
    io.write("fit_report.json", report.model_dump_json(indent=2).encode(), "application/json")
    record = {"schema_version": 1, "identity": [i.as_dict() for i in identity], "quality_flags": flags,
              "dressing": dressing, "garment_coverage": dressing["garment_coverage"]}
    io.write("fitting.json", json.dumps(record, indent=2).encode(), "application/json")


def atlas_source(dressed: DressedBody) -> np.ndarray:
    """(S', S, 3) uint8, atlas.png's texels by where their colour came from: red how much was made up, green seen
    directly in the photo, blue the new garment; none of them the photo at the mirrored point (or off the layout).
    bench.look reads it to tell the dressing's made-up flat patches from the photo's own."""
    shape = dressed.atlas.shape[:2]
    made = dressed.made_texels if dressed.made_texels is not None else np.zeros(shape, np.float32)
    seen = dressed.seen_texels if dressed.seen_texels is not None else np.zeros(shape, bool)
    channels = [np.clip(made, 0.0, 1.0), seen.astype(np.float32), dressed.garment_texels.astype(np.float32)]
    return (np.stack(channels, axis=2) * 255.0 + 0.5).astype(np.uint8)


def summary(report: FitReport, identity: list[AngleIdentity], flags: list[str], dressing: dict[str, object]
            ) -> dict[str, object]:
    return {
        "size_evaluated": report.size_evaluated,
        "recommended_size": report.recommended_size,
        "overall_fit": report.overall_label,
        "prompt_cues": list(report.prompt_cues),
        "identity_distance": {f"{i.angle_deg:03d}": i.distance for i in identity},
        "quality_flags": flags,
        "garment_coverage": dressing["garment_coverage"],
        "dressing": dressing,
    }
