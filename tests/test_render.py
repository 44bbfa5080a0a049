"""The software renderer on small meshes with hand-computed answers: coverage, depth order, barycentrics,
texture sampling, shading and the turntable cameras."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.geometry import Camera
from pipeline.render.raster import rasterize
from pipeline.render.shade import Lighting, Surface, sample_texture, shade, vertex_normals
from pipeline.render.views import ANGLES_DEG, camera_position, orbit_cameras, render_views

FLAT = Lighting(ambient=1.0, diffuse=0.0, antialias=False)


def pinhole(focal: float = 10.0, size: tuple[int, int] = (10, 10)) -> Camera:
    """Camera frame = world frame, principal point at the origin: u = f x / z, v = f y / z."""
    return Camera(focal_px=focal, cx=0.0, cy=0.0, rotation=np.eye(3), translation=np.zeros(3), image_size=size)


def quad(x0: float, x1: float, y0: float, y1: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle at depth z as two triangles wound to face a camera at the origin (looking along +z)."""
    vertices = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=np.float64)
    return vertices, np.array([[0, 3, 1], [1, 3, 2]])


def box(half: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A cube centred at the world origin, every triangle wound so its normal points outwards."""
    corners = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
    quads = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    faces = []
    for a, b, c, d in quads:
        for tri in ((a, b, c), (a, c, d)):
            v = corners[list(tri)]
            if np.cross(v[1] - v[0], v[2] - v[0]) @ v.mean(axis=0) < 0:
                tri = (tri[0], tri[2], tri[1])
            faces.append(tri)
    return corners, np.array(faces)


def front_camera(distance: float = 3.0, size: tuple[int, int] = (60, 80)) -> Camera:
    """The photo's camera in the body's world frame: in front (at -y), looking along +y, image up = world z."""
    rotation = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    return Camera(focal_px=100.0, cx=size[0] / 2, cy=size[1] / 2, rotation=rotation,
                  translation=-rotation @ np.array([0.0, -distance, 0.0]), image_size=size)


def test_a_quad_covers_exactly_the_pixels_whose_centres_it_contains() -> None:
    vertices, faces = quad(0.2, 0.6, 0.3, 0.7, 1.0)  # pixels: u in [2, 6], v in [3, 7]
    raster = rasterize(vertices, faces, pinhole())
    expected = np.zeros((10, 10), dtype=bool)
    expected[3:7, 2:6] = True  # centres 2.5 .. 5.5 and 3.5 .. 6.5
    np.testing.assert_array_equal(raster.mask, expected)
    np.testing.assert_allclose(raster.depth[expected], 1.0, rtol=1e-6)
    assert np.isinf(raster.depth[~expected]).all()
    assert set(np.unique(raster.triangle[expected])) == {0, 1}
    assert (raster.triangle[~expected] == -1).all()
    np.testing.assert_allclose(raster.bary[expected].sum(axis=1), 1.0, atol=1e-6)
    assert (raster.bary[expected] >= 0).all()


def box_coverage(corners: np.ndarray, camera: Camera) -> np.ndarray:
    """The pixels one front-facing triangle (3, 3) covers, the slow way: every pixel of its bounding box
    through the rasterizer's float32 edge test."""
    cam = corners @ camera.rotation.T + camera.translation
    uv = np.stack([camera.focal_px * cam[:, 0] / cam[:, 2] + camera.cx,
                   camera.focal_px * cam[:, 1] / cam[:, 2] + camera.cy], 1).astype(np.float32)
    a, ab, ac = uv[0], uv[1] - uv[0], uv[2] - uv[0]
    area = ab[0] * ac[1] - ab[1] * ac[0]
    covered = np.zeros(camera.image_size[::-1], dtype=bool)
    if area == 0:
        return covered
    width, height = camera.image_size
    xs = np.arange(max(0, int(np.ceil(uv[:, 0].min() - 0.5))), min(width - 1, int(np.floor(uv[:, 0].max() - 0.5))) + 1)
    ys = np.arange(max(0, int(np.ceil(uv[:, 1].min() - 0.5))), min(height - 1, int(np.floor(uv[:, 1].max() - 0.5))) + 1)
    px, py = np.meshgrid(xs, ys)
    dx, dy = px.astype(np.float32) + np.float32(0.5) - a[0], py.astype(np.float32) + np.float32(0.5) - a[1]
    inv = np.float32(1.0) / area
    l1, l2 = (dx * ac[1] - dy * ac[0]) * inv, (ab[0] * dy - ab[1] * dx) * inv
    inside = (l1 >= -1e-6) & (l2 >= -1e-6) & (np.float32(1.0) - l1 - l2 >= -1e-6)
    covered[py[inside], px[inside]] = True
    return covered


def test_row_spans_find_every_pixel_of_slivers_needles_and_large_triangles() -> None:
    """The rasterizer tests only each row's span between a triangle's edges; on random triangles (a third
    of them needles with nearly parallel long edges) it covers exactly what testing the whole box covers."""
    rng = np.random.default_rng(7)
    centres = rng.uniform([-0.5, -0.4, 2.0], [0.5, 0.4, 3.0], (60, 3))
    spokes = rng.normal(0.0, [0.3, 0.3, 0.05], (60, 2, 3))
    spokes[:20, 1] = spokes[:20, 0] * 1.03 + rng.normal(0.0, 0.002, (20, 3))  # needles
    camera = Camera(focal_px=120.0, cx=40.0, cy=30.0, rotation=np.eye(3), translation=np.zeros(3), image_size=(80, 60))
    covered = 0
    for centre, (u, v) in zip(centres, spokes, strict=True):
        corners = np.stack([centre, centre + u, centre + v])
        if np.cross(corners[1] - corners[0], corners[2] - corners[0]) @ corners[0] >= 0:
            corners = corners[::-1].copy()  # wound to face the camera
        expected = box_coverage(corners, camera)
        np.testing.assert_array_equal(rasterize(corners, np.array([[0, 1, 2]]), camera).mask, expected)
        covered += int(expected.sum())
    assert covered > 2500  # big triangles and slivers both


@pytest.mark.parametrize("near_first", [True, False])
def test_the_nearer_triangle_occludes_the_farther_whatever_their_order(near_first: bool) -> None:
    near_v, near_f = quad(0.2, 0.6, 0.2, 0.6, 1.0)  # pixels 2..5
    far_v, far_f = quad(0.0, 2.0, 0.0, 2.0, 2.0)  # the whole image, behind
    parts = [(near_v, near_f), (far_v, far_f)] if near_first else [(far_v, far_f), (near_v, near_f)]
    vertices = np.concatenate([parts[0][0], parts[1][0]])
    faces = np.concatenate([parts[0][1], parts[1][1] + 4])
    raster = rasterize(vertices, faces, pinhole())
    near_ids = {0, 1} if near_first else {2, 3}
    assert set(np.unique(raster.triangle[2:6, 2:6])) == near_ids
    np.testing.assert_allclose(raster.depth[2:6, 2:6], 1.0, rtol=1e-6)
    np.testing.assert_allclose(raster.depth[7:, 7:], 2.0, rtol=1e-6)
    assert raster.mask.all()


def test_back_faces_are_culled_unless_asked_and_triangles_behind_the_camera_are_skipped() -> None:
    vertices, faces = quad(0.2, 0.6, 0.3, 0.7, 1.0)
    flipped = faces[:, ::-1]
    assert not rasterize(vertices, flipped, pinhole()).mask.any()
    assert rasterize(vertices, flipped, pinhole(), cull_back=False).mask.sum() == 16
    behind = vertices * np.array([1.0, 1.0, -1.0])
    assert not rasterize(behind, faces, pinhole(), cull_back=False).mask.any()
    straddling = vertices.copy()
    straddling[0, 2] = -0.5
    assert rasterize(straddling, faces, pinhole(), cull_back=False).triangle.max() == 1  # only the other one


def test_barycentrics_are_perspective_correct_on_a_slanted_quad() -> None:
    vertices = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 6.0], [1.0, 1.0, 6.0], [-1.0, 1.0, 2.0]])
    faces = np.array([[0, 3, 1], [1, 3, 2]])
    camera = Camera(focal_px=40.0, cx=32.0, cy=32.0, rotation=np.eye(3), translation=np.zeros(3), image_size=(64, 64))
    raster = rasterize(vertices, faces, camera)
    ys, xs = np.nonzero(raster.mask)
    assert len(ys) > 500
    bary = raster.bary[ys, xs]
    points = np.einsum("nk,nkc->nc", bary, vertices[faces[raster.triangle[ys, xs]]])
    np.testing.assert_allclose(camera.project(points), np.stack([xs + 0.5, ys + 0.5], 1), atol=1e-3)
    np.testing.assert_allclose(raster.depth[ys, xs], points[:, 2], rtol=1e-5)


def test_sample_texture_is_exact_at_texel_centres_and_bilinear_between() -> None:
    texture = np.array([[[0, 0, 0], [100, 0, 0]], [[0, 200, 0], [100, 200, 0]]], dtype=np.uint8)
    uv = np.array([[0.25, 0.75], [0.75, 0.75], [0.25, 0.25], [0.5, 0.5]])  # v up: v = 0.75 is the top row
    colours = sample_texture(texture, uv)
    np.testing.assert_allclose(colours, [[0, 0, 0], [100, 0, 0], [0, 200, 0], [50, 100, 0]])


def test_a_textured_quad_shows_each_quadrant_of_the_texture_where_it_belongs() -> None:
    quadrants = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 0]]], dtype=np.uint8)
    texture = np.repeat(np.repeat(quadrants, 8, axis=0), 8, axis=1)  # 16 x 16, four solid quadrants
    vertices, faces = quad(0.0, 1.6, 0.0, 1.6, 1.0)  # the whole 16 x 16 image
    uvs = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # image top-left = texture top-left
    surface = Surface(vertices, faces, texture=texture, uvs=uvs, face_uvs=faces)
    image = shade(rasterize(vertices, faces, pinhole(size=(16, 16))), surface, pinhole(size=(16, 16)), FLAT)
    for (row, col), colour in {(3, 3): quadrants[0, 0], (3, 12): quadrants[0, 1], (12, 3): quadrants[1, 0],
                               (12, 12): quadrants[1, 1]}.items():
        np.testing.assert_array_equal(image[row, col], colour)


def test_shading_fills_the_background_and_lights_facing_surfaces_more() -> None:
    vertices, faces = quad(0.2, 0.6, 0.3, 0.7, 1.0)
    surface = Surface(vertices, faces, vertex_colours=np.full((4, 3), 200.0))
    lit = Lighting(direction=(0.0, 0.0, 1.0), ambient=0.2, diffuse=0.8, background=(10, 20, 30), antialias=False)
    image = shade(rasterize(vertices, faces, pinhole()), surface, pinhole(), lit)
    np.testing.assert_array_equal(image[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(image[4, 3], [200, 200, 200])  # the light shines straight at the quad
    grazing = Lighting(direction=(1.0, 0.0, 0.0), ambient=0.2, diffuse=0.8, antialias=False)
    np.testing.assert_array_equal(shade(rasterize(vertices, faces, pinhole()), surface, pinhole(), grazing)[4, 3],
                                  [40, 40, 40])
    np.testing.assert_allclose(vertex_normals(vertices, faces), np.tile([0.0, 0.0, -1.0], (4, 1)))


def test_antialiasing_softens_only_the_silhouette() -> None:
    vertices, faces = quad(0.2, 0.6, 0.3, 0.7, 1.0)
    surface = Surface(vertices, faces, vertex_colours=np.zeros((4, 3)))
    soft = Lighting(ambient=1.0, diffuse=0.0, background=(255, 255, 255))
    image = shade(rasterize(vertices, faces, pinhole()), surface, pinhole(), soft)
    assert 0 < image[3, 1, 0] < 255 and 0 < image[3, 2, 0] < 255  # either side of the left edge
    np.testing.assert_array_equal(image[0, 0], [255, 255, 255])


def test_orbit_angle_000_is_the_input_camera_and_all_are_equidistant_from_the_centre() -> None:
    camera = front_camera()
    centre = np.array([0.1, 0.05, 0.3])
    cameras = orbit_cameras(camera, centre)
    assert len(cameras) == 8 and cameras[0] == camera
    distances = [np.linalg.norm(camera_position(c) - centre) for c in cameras]
    np.testing.assert_allclose(distances, distances[0], rtol=1e-9)
    for cam in cameras:
        assert cam.focal_px == camera.focal_px and (cam.cx, cam.cy) == (camera.cx, camera.cy)
        assert cam.image_size == camera.image_size
        np.testing.assert_allclose(cam.rotation @ cam.rotation.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(cam.project(centre[None]), camera.project(centre[None]), atol=1e-9)
    heights = [camera_position(c)[2] for c in cameras]
    np.testing.assert_allclose(heights, heights[0], atol=1e-12)  # the turn is about the vertical only


@pytest.mark.parametrize(("angle", "seen"), [(0, "front"), (90, "right"), (180, "back"), (270, "left")])
def test_the_orbit_sees_front_right_back_and_left_in_turn(angle: int, seen: str) -> None:
    """The person faces -y and their left is +x: 000 sees the front (-y), 180 the back (+y), 090 their right."""
    vertices, faces = box()
    normal_of_side = {"front": [0, -1, 0], "back": [0, 1, 0], "right": [-1, 0, 0], "left": [1, 0, 0]}
    camera = orbit_cameras(front_camera(), np.zeros(3), (angle,))[0]
    raster = rasterize(vertices, faces, camera)
    tri = raster.triangle[40, 30]
    a, b, c = vertices[faces[tri]]
    normal = np.cross(b - a, c - a)
    np.testing.assert_allclose(normal / np.linalg.norm(normal), normal_of_side[seen], atol=1e-9)
    marker = np.array(normal_of_side[seen]) * 0.2  # the centre of the side seen projects to the image centre
    np.testing.assert_allclose(camera.project(marker[None])[0], [30.0, 40.0], atol=1e-9)


def test_render_views_gives_eight_angles_at_the_input_resolution() -> None:
    vertices, faces = box()
    surface = Surface(vertices, faces)
    views = render_views(surface, front_camera(), centre=np.zeros(3))
    assert [v.angle_deg for v in views] == list(ANGLES_DEG)
    for view in views:
        assert view.image.shape == (80, 60, 3) and view.image.dtype == np.uint8
        assert view.mask[40, 30] and not view.mask[0, 0]
    assert views[0].mask.sum() < views[1].mask.sum()  # at 045 two sides of the cube show


def test_the_turntable_frames_a_small_off_centre_figure_whole_and_alike_at_every_angle() -> None:
    """A person small and off to one side in the photo, seen from above: every view holds the whole figure at one
    scale, inside the margins, whatever the angle (the cameras share one distance and look-at point)."""
    from pipeline.render.views import FRAME_MARGIN, turntable

    vertices, faces = box(0.2)
    vertices = vertices * np.array([1.0, 0.6, 4.5]) + np.array([0.5, 0.0, 0.9])  # a tall slab, 1.8 m, off-axis
    looking_down = np.array([[1.0, 0, 0], [0, -0.2588, -0.9659], [0, 0.9659, -0.2588]])  # 15 degrees down
    photo = Camera(focal_px=500.0, cx=200.0, cy=300.0, rotation=looking_down,
                   translation=-looking_down @ np.array([-1.0, -9.0, 2.5]), image_size=(400, 600))
    table = turntable(photo, vertices)
    surface = Surface(vertices, faces, np.full((2, 2, 3), 200, np.uint8), np.zeros((8, 2)), faces)
    heights, tops = [], []
    for view in render_views(surface, table.camera, table.centre, lighting=FLAT):
        rows, cols = np.nonzero(view.mask)
        assert cols.min() >= FRAME_MARGIN * 400 - 2 and cols.max() <= (1 - FRAME_MARGIN) * 400 + 2, view.angle_deg
        assert rows.min() >= FRAME_MARGIN * 600 - 2 and rows.max() <= (1 - FRAME_MARGIN) * 600 + 2, view.angle_deg
        heights.append(rows.max() - rows.min())
        tops.append(rows.min())
    assert max(heights) - min(heights) <= 0.05 * np.mean(heights)  # one scale
    assert np.mean(heights) > 0.6 * 600  # and a large one, though the figure was small in the photo
    assert max(tops) - min(tops) <= 0.05 * np.mean(heights)
    positions = [camera_position(c) for c in orbit_cameras(table.camera, table.centre)]
    assert np.ptp([np.linalg.norm((p - table.centre)[:2]) for p in positions]) < 1e-9  # one distance
    assert abs(table.camera.rotation[1] @ np.array([0, 0, 1.0]) + 1) < 1e-9  # level: image down is world down


def crouch() -> tuple[np.ndarray, np.ndarray]:
    """A crouching figure: a torso slab 1.0 m tall and, at its foot, a leg 0.9 m long reaching out along -y (towards
    the photo's camera at 000, away from it at 180), one mesh."""
    cube, faces = box(0.5)
    torso = cube * np.array([0.4, 0.3, 1.0]) + np.array([0.0, 0.0, 0.5])
    leg = cube * np.array([0.2, 0.9, 0.2]) + np.array([0.0, -0.6, 0.1])
    return np.vstack([torso, leg]), np.vstack([faces, faces + 8])


def test_a_crouch_reaching_towards_the_camera_keeps_one_height_at_every_angle() -> None:
    """Seen from 5 half-heights, the leg reaching towards the camera looks larger at 000 than at 180 (perspective:
    the rendered height changes by over 5 % as it turns); the turntable moves the one camera back for this figure
    until it changes by under `TURNTABLE_SPREAD`, and still frames it whole inside the margins at every angle."""
    from pipeline.render.views import (
        FRAME_MARGIN,
        TURNTABLE_DISTANCE,
        TURNTABLE_SPREAD,
        height_spread,
        turntable,
        turntable_at,
        visible_vertices,
    )

    vertices, faces = crouch()
    photo = front_camera(6.0, (400, 600))
    near = turntable_at(photo, vertices[visible_vertices(vertices, photo)], TURNTABLE_DISTANCE)
    assert height_spread(near, vertices) > 0.05
    table = turntable(photo, vertices)
    assert table.distance_hh > TURNTABLE_DISTANCE and height_spread(table, vertices) <= TURNTABLE_SPREAD
    surface = Surface(vertices, faces, np.full((2, 2, 3), 200, np.uint8), np.zeros((16, 2)), faces)
    heights = []
    for view in render_views(surface, table.camera, table.centre, lighting=FLAT):
        rows, cols = np.nonzero(view.mask)
        assert cols.min() >= FRAME_MARGIN * 400 - 2 and cols.max() <= (1 - FRAME_MARGIN) * 400 + 2, view.angle_deg
        assert rows.min() >= FRAME_MARGIN * 600 - 2 and rows.max() <= (1 - FRAME_MARGIN) * 600 + 2, view.angle_deg
        heights.append(rows.max() - rows.min() + 1)
    assert np.ptp(heights) <= TURNTABLE_SPREAD * np.mean(heights) + 2  # the rendered silhouettes too


def test_a_standing_figure_keeps_the_near_camera() -> None:
    """A slab standing upright barely changes height as it turns: the turntable keeps `TURNTABLE_DISTANCE` (the face
    keeps the perspective the identity check was tuned on)."""
    from pipeline.render.views import TURNTABLE_DISTANCE, turntable

    vertices, _ = box(0.5)
    vertices = vertices * np.array([0.45, 0.25, 1.8]) + np.array([0.0, 0.0, 0.9])
    assert turntable(front_camera(6.0, (400, 600)), vertices).distance_hh == TURNTABLE_DISTANCE
