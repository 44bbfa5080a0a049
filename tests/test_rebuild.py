"""Phase 4's rebuilt mesh (pipeline/viewer3d/rebuild.py): masks, the request, placing a model's mesh in the body's
frame, UVs, and declining what does not match. A "figure" stands in for the dressed person: a tall box with a
nose on its front (-y) and an arm on its right (-x), so that every turn and flip of it has other silhouettes.
The fake builder returns the figure as a shape model would: in its own frame (y up, turned, in a unit cube)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from pipeline.backends.protocols import MeshRequest, ShapeMesh
from pipeline.geometry import Camera
from pipeline.render.raster import rasterize
from pipeline.render.shade import BACKGROUND
from pipeline.render.views import orbit_cameras
from pipeline.viewer3d.rebuild import (
    MIN_IOU,
    MV_ANGLES,
    fit_to_body,
    mesh_request,
    place_shape,
    rebuild,
    silhouette_iou,
    subject_masks,
    unwrap,
    up_candidates,
)

ANGLES = ("000", "045", "090", "135", "180", "225", "270", "315")


def figure() -> trimesh.Trimesh:
    torso = trimesh.creation.box(extents=(0.45, 0.25, 1.7), transform=trimesh.transformations.translation_matrix(
        (0, 0, 0.85)))
    nose = trimesh.creation.box(extents=(0.12, 0.2, 0.12), transform=trimesh.transformations.translation_matrix(
        (0, -0.2, 1.5)))
    arm = trimesh.creation.box(extents=(0.12, 0.12, 0.7), transform=trimesh.transformations.translation_matrix(
        (-0.32, 0, 1.05)))
    return trimesh.util.concatenate([torso, nose, arm])


def photo_camera(size: tuple[int, int] = (240, 320)) -> Camera:
    """At -y looking at the figure's middle along +y, image up = world z; the figure fills the frame's height as a
    person fills a photo."""
    rotation = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    position = np.array([0.0, -4.0, 0.85])
    return Camera(focal_px=640.0, cx=size[0] / 2, cy=size[1] / 2, rotation=rotation,
                  translation=-rotation @ position, image_size=size)


def model_frame(vertices: np.ndarray) -> np.ndarray:
    """The figure as a shape model might return it: y up, turned 90 degrees, squeezed into [-1, 1]."""
    yup = vertices @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T  # world z -> y
    turn = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # 90 degrees about y
    turned = yup @ turn.T
    centred = turned - (turned.max(axis=0) + turned.min(axis=0)) / 2
    return centred / np.abs(centred).max() * 0.98


@pytest.fixture(scope="module")
def scene() -> dict[str, object]:
    mesh = figure()
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    cameras = orbit_cameras(photo_camera(), np.array([0.0, 0.0, 0.85]), tuple(int(a) for a in ANGLES))
    views = {}
    for angle, camera in zip(ANGLES, cameras, strict=True):
        raster = rasterize(vertices, faces, camera)
        image = np.full((*raster.mask.shape, 3), BACKGROUND, dtype=np.uint8)
        image[raster.mask] = (180, 40, 40)
        views[angle] = (image, camera)
    return {"vertices": vertices, "faces": faces, "views": views, "cameras": cameras}


class FigureBuilder:
    """A MeshBuilder that returns a fixed mesh (or none) and remembers what it was asked."""

    name = "figure"
    version = "test"

    def __init__(self, shape: ShapeMesh) -> None:
        self.shape = shape
        self.requests: list[MeshRequest] = []

    def build_mesh(self, request: MeshRequest) -> ShapeMesh:
        self.requests.append(request)
        return self.shape


def test_subject_masks_join_the_body_and_what_was_painted_past_it(scene: dict) -> None:
    vertices, faces = scene["vertices"], scene["faces"]
    image, camera = scene["views"]["000"]
    painted = image.copy()
    painted[10:20, 10:30] = (20, 20, 200)  # a skirt's hem, off the body
    painted[100, 5] = (0, 0, 0)  # a stray pixel
    masks = subject_masks({"000": (painted, camera)}, vertices, faces)
    body = rasterize(vertices, faces, camera).mask
    assert masks["000"][body].all()
    assert masks["000"][10:20, 10:30].all()
    assert not masks["000"][100, 5]
    assert masks["000"].sum() == body.sum() + 200 - int(body[10:20, 10:30].sum())


def test_the_request_tags_the_four_sides_with_the_subject_as_alpha(scene: dict) -> None:
    masks = {a: rasterize(scene["vertices"], scene["faces"], v[1]).mask for a, v in scene["views"].items()}
    request = mesh_request(scene["views"], masks)
    assert set(request.views) == {"front", "left", "back", "right"}
    assert MV_ANGLES == {"front": "000", "left": "270", "back": "180", "right": "090"}
    left = request.views["left"]
    assert left.shape[2] == 4
    assert np.array_equal(left[..., 3] == 255, masks["270"])
    assert np.array_equal(left[..., :3], scene["views"]["270"][0])
    with pytest.raises(ValueError, match="needs the views 090"):
        mesh_request({a: v for a, v in scene["views"].items() if a != "090"}, masks)


def test_up_candidates_are_proper_rotations_taking_the_longest_axis_up() -> None:
    tall_along_y = np.array([[0, 0, 0], [0.3, 2.0, 0.2]])
    candidates = up_candidates(tall_along_y)
    assert len(candidates) == 8
    ups = set()
    for _, _, rotation in candidates:
        assert np.allclose(rotation @ rotation.T, np.eye(3)) and np.isclose(np.linalg.det(rotation), 1.0)
        ups.add(tuple(np.round(rotation @ np.array([0, 1.0, 0]), 6)))
    assert ups == {(0.0, 0.0, 1.0), (0.0, 0.0, -1.0)}


def test_fit_to_body_matches_height_feet_and_centre() -> None:
    body = np.array([[-0.2, -0.1, 0.0], [0.2, 0.1, 1.8]])
    shape = np.array([[-1.0, -0.5, -1.0], [0.0, 0.5, 1.0]])
    placed = fit_to_body(shape, body)
    assert np.isclose(placed[:, 2].min(), 0.0) and np.isclose(placed[:, 2].max(), 1.8)
    assert np.allclose((placed.min(axis=0) + placed.max(axis=0))[:2] / 2, [0.0, 0.0])


def test_place_shape_undoes_the_model_frame(scene: dict) -> None:
    vertices, faces = scene["vertices"], scene["faces"]
    masks = [rasterize(vertices, faces, camera).mask for camera in scene["cameras"]]
    shape = ShapeMesh(model_frame(vertices).astype(np.float32), faces.astype(np.int32))
    placement = place_shape(shape, vertices, scene["cameras"], masks)
    assert np.abs(placement.vertices - vertices).max() < 0.02  # metres, on a 1.7 m figure
    assert placement.iou > 0.9
    assert placement.up_axis == "+y"


def test_a_wrong_orientation_scores_lower(scene: dict) -> None:
    vertices, faces = scene["vertices"], scene["faces"]
    masks = [rasterize(vertices, faces, camera).mask for camera in scene["cameras"]]
    turned = vertices @ np.array([[-1.0, 0, 0], [0, -1, 0], [0, 0, 1]]).T  # 180 degrees about z
    right = silhouette_iou(vertices, faces, scene["cameras"], masks)
    wrong = silhouette_iou(fit_to_body(turned, vertices), faces, scene["cameras"], masks)
    assert right > 0.9 and wrong < right - 0.03


def test_unwrap_gives_every_face_uvs_in_the_unit_square(scene: dict) -> None:
    mesh = unwrap(scene["vertices"], scene["faces"])
    assert mesh.face_uvs.shape == mesh.faces.shape
    assert np.array_equal(mesh.faces, scene["faces"])
    assert mesh.uvs.min() >= 0.0 and mesh.uvs.max() <= 1.0
    corners = mesh.uvs[mesh.face_uvs]
    area = np.abs(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])) / 2
    assert (area > 0).all()


def test_rebuild_places_and_unwraps_a_matching_mesh(scene: dict) -> None:
    vertices, faces = scene["vertices"], scene["faces"]
    builder = FigureBuilder(ShapeMesh(model_frame(vertices).astype(np.float32), faces.astype(np.int32)))
    rebuilt = rebuild(builder, scene["views"], vertices, faces)
    assert rebuilt.record["status"] == "rebuilt"
    assert rebuilt.mesh is not None and np.abs(rebuilt.mesh.vertices - vertices).max() < 0.02
    assert rebuilt.record["silhouette_iou"] > 0.9
    assert builder.requests[0].seed == rebuilt.record["seed"]


def test_rebuild_declines_no_surface_and_a_shape_that_does_not_match(scene: dict) -> None:
    vertices, faces = scene["vertices"], scene["faces"]
    empty = FigureBuilder(ShapeMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)))
    declined = rebuild(empty, scene["views"], vertices, faces)
    assert declined.mesh is None and declined.record["why"] == "the model found no surface"
    ball = trimesh.creation.icosphere(subdivisions=2)
    blob = FigureBuilder(ShapeMesh(np.asarray(ball.vertices, np.float32), np.asarray(ball.faces, np.int32)))
    declined = rebuild(blob, scene["views"], vertices, faces)
    assert declined.mesh is None and declined.record["silhouette_iou"] < MIN_IOU
    assert "IoU" in str(declined.record["why"])
