"""The skirt shell (pipeline.fitting.skirt, skirt_look, kept_skirt) on a synthetic body: a torso and two leg
cylinders, seen from the front by a known camera, wearing a made-up A-line dress photo, or a photo of the person in
a long skirt of their own."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.fitting import skirt
from pipeline.fitting.dress import DressedBody, GarmentLook, PersonPhoto
from pipeline.fitting.kept_skirt import kept_plan
from pipeline.fitting.skirt_look import kept_skirt, make_skirt, plan_for, put_on
from pipeline.fitting.worn import Worn, gap_hem
from pipeline.geometry import Camera, PosedBody
from pipeline.render.raster import rasterize
from pipeline.render.shade import Lighting, Surface
from pipeline.render.views import render_view

ATLAS, AROUND, RINGS = 128, 32, 24
HIP_Z, KNEE_Z, ANKLE_Z, SHOULDER_Z = 0.9, 0.5, 0.08, 1.45
LEG_X, LEG_R, TORSO_R = 0.1, 0.07, 0.16
DRESS, SKIN = (40, 160, 60), (200, 150, 120)


def tube(centre_x: float, radius: float, z0: float, z1: float, first: int) -> tuple[np.ndarray, np.ndarray]:
    """An open cylinder about a vertical axis (outward counter-clockwise faces), vertex ids from `first`."""
    angle = np.arange(AROUND) * 2 * np.pi / AROUND
    z = np.linspace(z0, z1, RINGS)
    vertices = np.array([(centre_x + radius * np.cos(a), radius * np.sin(a), h) for h in z for a in angle])
    faces = []
    for r in range(RINGS - 1):
        for i in range(AROUND):
            a, b = r * AROUND + i, r * AROUND + (i + 1) % AROUND
            faces += [(a, b, b + AROUND), (a, b + AROUND, a + AROUND)]
    return vertices, np.array(faces) + first


def keypoints(knee: tuple[float, float] = (0.0, KNEE_Z)) -> np.ndarray:
    """COCO-23 keypoints of the synthetic body; `knee` (y, z) moves both knees (a seated pose: forward, up)."""
    kp = np.zeros((23, 3))
    kp[5], kp[6] = (-0.17, 0, SHOULDER_Z), (0.17, 0, SHOULDER_Z)
    kp[11], kp[12] = (-LEG_X, 0, HIP_Z), (LEG_X, 0, HIP_Z)
    kp[13], kp[14] = (-LEG_X, *knee), (LEG_X, *knee)
    kp[15], kp[16] = (-LEG_X, 0, ANKLE_Z), (LEG_X, 0, ANKLE_Z)
    kp[0:5] = (0, -0.05, 1.62)
    kp[1, 0], kp[2, 0], kp[3, 0], kp[4, 0] = -0.03, 0.03, -0.07, 0.07
    kp[7], kp[8] = (-0.32, 0, 1.15), (0.32, 0, 1.15)
    kp[9], kp[10] = (-0.36, 0, 0.9), (0.36, 0, 0.9)
    kp[17], kp[18] = (-LEG_X, -0.12, 0.0), (LEG_X, -0.12, 0.0)
    return kp


def body(knee: tuple[float, float] = (0.0, KNEE_Z)) -> tuple[PosedBody, np.ndarray]:
    """The posed body and its per-vertex parts (torso 0, thigh 4)."""
    pieces = [tube(0.0, TORSO_R, HIP_Z - 0.05, SHOULDER_Z, 0)]
    pieces.append(tube(-LEG_X, LEG_R, 0.05, HIP_Z, len(pieces[0][0])))
    pieces.append(tube(LEG_X, LEG_R, 0.05, HIP_Z, 2 * len(pieces[0][0])))
    vertices = np.concatenate([p[0] for p in pieces])
    faces = np.concatenate([p[1] for p in pieces])
    part = np.repeat([0, 4, 4], len(pieces[0][0]))
    uvs = np.column_stack([np.linspace(0.02, 0.98, len(vertices)), np.linspace(0.02, 0.98, len(vertices)) ** 2])
    kp = keypoints(knee)
    posed = PosedBody(vertices.astype(np.float32), faces, uvs.astype(np.float32), faces, vertices, kp,
                      np.zeros((23, 2)), np.zeros((23, 3)))
    return posed, part


def front_camera() -> Camera:
    """4 m in front of the body (at -y), looking along +y, image y down = world -z."""
    rotation = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    centre = np.array([0.0, -4.0, 0.8])
    return Camera(focal_px=500.0, cx=200.0, cy=300.0, rotation=rotation, translation=-rotation @ centre,
                  image_size=(400, 600))


def a_line(height: int = 400, width: int = 300) -> np.ndarray:
    """An RGBA dress photo: a narrow bodice with a waist at 35 % of its height, then a skirt flaring to the hem."""
    rgba = np.zeros((height, width, 4), np.uint8)
    for y in range(10, height - 10):
        t = (y - 10) / (height - 20)
        half = 55 - 15 * min(t / 0.35, 1.0) if t < 0.35 else 40 + 80 * (t - 0.35) / 0.65
        rgba[y, int(width / 2 - half):int(width / 2 + half)] = (*DRESS, 255)
    return rgba


def trousers(height: int = 400, width: int = 300) -> np.ndarray:
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[10:150, 80:220] = (*DRESS, 255)
    rgba[150:390, 80:145] = (*DRESS, 255)
    rgba[150:390, 155:220] = (*DRESS, 255)
    return rgba


def dressed_body(posed: PosedBody, part: np.ndarray) -> DressedBody:
    atlas = np.zeros((ATLAS, ATLAS, 3), np.uint8)
    atlas[:] = SKIN
    return DressedBody(vertices=np.asarray(posed.vertices), atlas=atlas,
                       garment_texels=np.zeros((ATLAS, ATLAS), bool),
                       garment_vertices=np.zeros(len(posed.vertices), bool), coverage=1.0, seen=1.0,
                       vertex_part=part)


@pytest.fixture(scope="module")
def worn() -> tuple[DressedBody, PosedBody]:
    posed, part = body()
    made = make_skirt(dressed_body(posed, part), front_camera(), GarmentLook(a_line(), "full"),
                      plan_for(posed, front_camera(), GarmentLook(a_line(), "full")))
    return put_on(dressed_body(posed, part), posed, made), posed


def test_a_dress_gets_a_shell_from_the_hips_to_below_the_knees(worn: tuple[DressedBody, PosedBody]) -> None:
    dressed, posed = worn
    assert dressed.skirt is not None and dressed.skirt["status"] == "shell"
    shell = dressed.vertices[len(posed.vertices):]
    assert shell[:, 2].max() == pytest.approx(HIP_Z, abs=1e-3)
    assert ANKLE_Z - 0.05 < shell[:, 2].min() < KNEE_Z  # the photo's dress, waist to hem, ends below the knee
    top = shell[np.abs(shell[:, 2] - HIP_Z) < 1e-3]
    hem = shell[np.abs(shell[:, 2] - shell[:, 2].min()) < 1e-3]
    assert np.ptp(hem[:, 0]) > 1.3 * np.ptp(top[:, 0])  # it flares as the photo's outline does


def test_the_shell_encloses_both_legs_and_hides_them(worn: tuple[DressedBody, PosedBody]) -> None:
    dressed, posed = worn
    mesh = dressed.mesh(posed)
    assert len(mesh.faces) < len(posed.faces) + 2 * (skirt.RINGS - 1) * skirt.AROUND  # leg faces were dropped
    image = render_view(Surface(mesh.vertices, mesh.faces, dressed.atlas, mesh.uvs, mesh.face_uvs), front_camera(),
                        Lighting(ambient=1.0, diffuse=0.0, antialias=False)).image
    xy = front_camera().project(np.array([[0.0, 0.0, (HIP_Z + KNEE_Z) / 2], [0.0, 0.0, KNEE_Z]]))
    between = image[int(xy[0, 1]):int(xy[1, 1]), int(xy[0, 0]) - 3:int(xy[0, 0]) + 4].reshape(-1, 3).astype(float)
    assert np.abs(between - DRESS).max(axis=1).mean() < 25  # the gap between the legs shows the dress


def test_the_atlas_grows_by_the_skirts_strip_and_the_body_keeps_its_texels(
        worn: tuple[DressedBody, PosedBody]) -> None:
    dressed, posed = worn
    assert dressed.atlas.shape[1] == ATLAS and dressed.atlas.shape[0] > ATLAS
    assert (dressed.atlas[:ATLAS] == SKIN).all()
    mesh = dressed.mesh(posed)
    body_uv = mesh.uvs[: len(posed.uvs)]
    rows = (1 - body_uv[:, 1]) * dressed.atlas.shape[0]
    assert np.allclose(rows, (1 - posed.uvs[:, 1]) * ATLAS, atol=1e-3)  # texel for texel where it was
    assert dressed.garment_vertices[len(posed.vertices):].all()


def test_a_seated_person_keeps_the_painting_and_says_so() -> None:
    posed, part = body(knee=(-0.4, HIP_Z - 0.05))
    made = make_skirt(dressed_body(posed, part), front_camera(), GarmentLook(a_line(), "full"),
                      plan_for(posed, front_camera(), GarmentLook(a_line(), "full")))
    dressed = put_on(dressed_body(posed, part), posed, made)
    assert made.mesh is None and dressed.skirt is not None and dressed.skirt["status"] == "painted"
    assert dressed.faces is None and len(dressed.vertices) == len(posed.vertices)


def test_trousers_and_tops_get_no_shell() -> None:
    posed, part = body()
    for garment in (GarmentLook(trousers(), "lower"), GarmentLook(a_line(), "upper")):
        made = make_skirt(dressed_body(posed, part), front_camera(), garment, plan_for(posed, front_camera(), garment))
        assert made.mesh is None and made.record["status"] == "none"


def test_the_shells_rings_are_the_legs_hull_eased() -> None:
    points = np.array([[-0.1, -0.07], [0.1, 0.07], [-0.1, 0.07], [0.1, -0.07], [0.0, 0.0]])
    angles = np.array([0.0, np.pi / 2, np.pi])
    assert skirt.radial_hull(points, np.zeros(2), angles) == pytest.approx([0.1, 0.07, 0.1], abs=1e-6)


def test_the_rings_cover_every_leg_vertex_between_the_hips_and_the_hem(worn: tuple[DressedBody, PosedBody]) -> None:
    import cv2

    dressed, posed = worn
    shell = dressed.vertices[len(posed.vertices):].reshape(skirt.RINGS, skirt.AROUND + 1, 3)
    legs = np.asarray(posed.vertices)[len(posed.vertices) // 3:]
    checked = 0
    for ring in shell[1:]:
        near = legs[np.abs(legs[:, 2] - ring[0, 2]) < 0.01]
        polygon = np.ascontiguousarray(ring[:-1, :2], np.float32).reshape(-1, 1, 2)
        checked += len(near)
        assert all(cv2.pointPolygonTest(polygon, (float(x), float(y)), False) > 0 for x, y in near[:, :2])
    assert checked > 5 * skirt.AROUND


def test_the_bake_and_the_glb_carry_the_shell(worn: tuple[DressedBody, PosedBody]) -> None:
    from gltf_validator import issue_codes, validate_glb

    from pipeline.viewer3d.bake import bake_views
    from pipeline.viewer3d.glb import glb_summary, textured_glb
    from pipeline.viewer3d.phase import atlas_size

    dressed, posed = worn
    mesh = dressed.mesh(posed)
    light = Lighting(ambient=1.0, diffuse=0.0)
    view = render_view(Surface(mesh.vertices, mesh.faces, dressed.atlas, mesh.uvs, mesh.face_uvs), front_camera(),
                       light)
    size = atlas_size(dressed.atlas)
    assert size == (1024, round(1024 * dressed.atlas.shape[0] / ATLAS))
    baked = bake_views(mesh.vertices, mesh.faces, mesh.uvs, mesh.face_uvs, [(view.image, view.camera)], light,
                       size=size, fallback_atlas=dressed.atlas)
    assert baked.atlas.shape == (size[1], size[0], 3)
    strip = baked.atlas[1024:][baked.covered[1024:] & baked.seen[1024:]].astype(float)
    assert len(strip) and np.abs(strip - DRESS).max(axis=1).mean() < 25  # the front of the skirt, from the view
    model = textured_glb(mesh.vertices, mesh.faces, mesh.uvs, mesh.face_uvs, baked.atlas)
    assert glb_summary(model)["triangles"] == len(mesh.faces)
    report = validate_glb(model)
    assert report["issues"]["numErrors"] == 0 and report["issues"]["numWarnings"] == 0, issue_codes(report)


def test_the_torso_reads_the_photo_at_the_heights_the_skirt_does() -> None:
    from pipeline.fitting.dress import region_box

    posed, _ = body()
    planned = plan_for(posed, front_camera(), GarmentLook(a_line(), "full"))
    assert planned.heights is not None and planned.plan is not None and planned.outline is not None
    top, bottom = planned.heights
    _, y0, _, y1 = region_box(np.asarray(posed.vertices), np.ones(len(posed.vertices), bool), front_camera(),
                              planned.heights)
    seen = front_camera().project(np.array([[0.0, 0.0, top], [0.0, 0.0, bottom]]))
    assert (y0, y1) == pytest.approx((seen[0, 1], seen[1, 1]), abs=0.5)
    hip_row = planned.plan.row(np.array([HIP_Z]))[0]  # the box's linear map puts the hip line on that row too
    box_row = planned.outline.top + (front_camera().project(np.array([[0, 0, HIP_Z]]))[0, 1] - y0) / (y1 - y0) * (
        planned.outline.bottom - planned.outline.top)
    assert box_row == pytest.approx(hip_row, abs=2.0)


def person_photo(hem_z: float | None) -> tuple[PersonPhoto, PosedBody]:
    """The synthetic body's photo: its own silhouette as the person mask, plus a skirt down to `hem_z` (None:
    trousers, the legs apart) in a colour of its own."""
    posed, part = body()
    camera = front_camera()
    mask = rasterize(np.asarray(posed.vertices), posed.faces, camera).mask.astype(np.float32)
    rgb = np.zeros((600, 400, 3), np.uint8)
    rgb[:] = SKIN
    if hem_z is not None:
        corners = camera.project(np.array([[-0.2, 0, HIP_Z], [0.2, 0, hem_z]]))
        (x0, y0), (x1, y1) = corners.astype(int)
        mask[y0:y1, x0:x1] = 1.0
        rgb[y0:y1, x0:x1] = SKIRT
    kp2d = camera.project(posed.keypoints_3d)
    posed = PosedBody(posed.vertices, posed.faces, posed.uvs, posed.face_uvs, posed.rest_vertices,
                      posed.keypoints_3d, kp2d, np.zeros((23, 3)))
    return PersonPhoto(rgb, mask, camera), posed


SKIRT = (120, 40, 140)


def kept_hem(photo: PersonPhoto, posed: PosedBody) -> int | None:
    return gap_hem(photo.mask > 0.5, posed.keypoints_2d)


def test_a_kept_long_skirt_in_the_photo_becomes_a_shell_not_trousers() -> None:
    photo, posed = person_photo(hem_z=0.25)
    _, part = body()
    hem = kept_hem(photo, posed)
    assert hem is not None
    found = kept_plan(photo, posed.keypoints_2d, posed.keypoints_3d, np.asarray(posed.vertices), part, hem)
    assert found is not None
    plan, _, _ = found
    assert plan.top_z == pytest.approx(HIP_Z, abs=1e-6) and plan.hem_z == pytest.approx(0.25, abs=0.02)
    dressed = dressed_body(posed, part)
    made = kept_skirt(dressed, posed, photo, Worn("skirt", hem))
    assert made is not None and made.record["status"] == "kept"
    worn = put_on(dressed, posed, made)
    assert not worn.garment_vertices[len(posed.vertices):].any()  # the person's own skirt is not the new garment
    strip = worn.atlas[ATLAS:].reshape(-1, 3).astype(float)
    assert np.median(np.abs(strip - SKIRT).max(axis=1)) < 20  # in the photo's skirt colour


def test_trousers_and_a_short_skirt_in_the_photo_stay_painted() -> None:
    for hem in (None, KNEE_Z + 0.1):
        photo, posed = person_photo(hem_z=hem)
        assert kept_hem(photo, posed) is None
        assert kept_skirt(dressed_body(*body()), posed, photo, Worn("separates")) is None


def test_a_long_coat_over_trousers_is_never_a_kept_skirt() -> None:
    photo, posed = person_photo(hem_z=0.25)  # the coat closes the gap between the legs to the calves
    hem = kept_hem(photo, posed)
    assert hem is not None
    assert kept_skirt(dressed_body(*body()), posed, photo, Worn("coat", hem)) is None
    assert kept_skirt(dressed_body(*body()), posed, photo, Worn("one_piece", hem)) is not None


def test_sleeves_hanging_apart_from_the_dress_are_not_its_width() -> None:
    rgba = a_line()
    rgba[20:250, 40:60, 3] = 255  # a long sleeve on each side, apart from the bodice
    rgba[20:250, 240:260, 3] = 255
    outline = skirt.garment_outline(rgba[..., 3])
    assert outline is not None
    waist = int(10 + 0.35 * 380)
    assert outline.width(np.array([waist]))[0] == pytest.approx(80, abs=3)  # the bodice's, not the sleeves' span


def test_a_bag_beside_the_kept_skirt_is_not_part_of_it() -> None:
    photo, posed = person_photo(hem_z=0.25)
    camera = front_camera()
    (x0, y0), (x1, y1) = camera.project(np.array([[0.2, 0, HIP_Z - 0.05], [0.45, 0, HIP_Z - 0.3]])).astype(int)
    photo.mask[y0:y1, x0:x1] = 1.0  # a bag held against the skirt's side
    hem = kept_hem(photo, posed)
    assert hem is not None
    found = kept_plan(photo, posed.keypoints_2d, posed.keypoints_3d, np.asarray(posed.vertices), body()[1], hem)
    assert found is not None
    _, outline, _ = found
    row = (y0 + y1) // 2
    legs_right = camera.project(np.array([[LEG_X + LEG_R, 0, HIP_Z - 0.2]]))[0, 0]
    assert outline.right[row] < legs_right + 0.3 * (x0 - camera.project(np.array([[0.0, 0, 0]]))[0, 0])


def test_fitting_json_says_what_was_done_for_the_skirt(worn: tuple[DressedBody, PosedBody]) -> None:
    from pipeline.fitting.phase import dressing_record

    dressed, posed = worn
    record = dressing_record(dressed, None)["skirt"]
    assert isinstance(record, dict) and record["status"] == "shell" and record["hidden_body_faces"] > 0
    assert dressing_record(dressed_body(*body()), None)["skirt"] == {"status": "none"}
