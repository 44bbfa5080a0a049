"""dress_body on a synthetic cylinder 'body' with UVs, seen by a known camera from the front (-y)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.fitting import regions
from pipeline.fitting.dress import DressedBody, GarmentLook, PersonPhoto, dress_body
from pipeline.geometry import BodyMesh, Camera

RADIUS, HEIGHT, AROUND, RINGS = 0.15, 1.7, 48, 60
RED, BLUE = (200, 40, 40), (30, 60, 210)


def cylinder() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An open cylinder about z (outward CCW faces), its UV grid (a seam column) and face UVs."""
    angle = np.arange(AROUND) * 2 * np.pi / AROUND
    z = np.linspace(0.0, HEIGHT, RINGS)
    vertices = np.array([(RADIUS * np.cos(a), RADIUS * np.sin(a), h) for h in z for a in angle])
    uvs = np.array([(i / AROUND, r / (RINGS - 1)) for r in range(RINGS) for i in range(AROUND + 1)])
    faces, face_uvs = [], []
    for r in range(RINGS - 1):
        for i in range(AROUND):
            a, b = r * AROUND + i, r * AROUND + (i + 1) % AROUND
            c, d = a + AROUND, b + AROUND
            ua, ub = r * (AROUND + 1) + i, r * (AROUND + 1) + i + 1
            uc, ud = ua + AROUND + 1, ub + AROUND + 1
            faces += [(a, b, d), (a, d, c)]
            face_uvs += [(ua, ub, ud), (ua, ud, uc)]
    return vertices, np.array(faces), uvs, np.array(face_uvs)


def front_camera() -> Camera:
    """3 m in front of the cylinder (at -y), looking along +y, image y down = world -z."""
    rotation = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    centre = np.array([0.0, -3.0, HEIGHT / 2])
    return Camera(focal_px=300.0, cx=150.0, cy=300.0, rotation=rotation, translation=-rotation @ centre,
                  image_size=(300, 600))


def dress(ease: float, size: int = 256, worn_in_photo: bool = False) -> tuple[DressedBody, np.ndarray, np.ndarray]:
    vertices, faces, uvs, face_uvs = cylinder()
    photo = np.zeros((600, 300, 3), np.uint8)
    photo[:] = RED
    garment = np.zeros((100, 80, 4), np.uint8)
    garment[10:90, 10:70] = (*BLUE, 255)
    dressed = dress_body(BodyMesh(vertices, faces, uvs, face_uvs),
                         PersonPhoto(photo, np.ones((600, 300), np.float32), front_camera()),
                         GarmentLook(garment, "upper"), {"chest": ease, "waist": ease, "hip": ease}, atlas_size=size,
                         worn_in_photo=worn_in_photo)
    return dressed, vertices, uvs


def texel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per texel of the atlas: its angle round the cylinder (radians) and its height (metres)."""
    u = (np.arange(size) + 0.5) / size
    v = 1.0 - (np.arange(size) + 0.5) / size
    return np.broadcast_to(u[None, :] * 2 * np.pi, (size, size)), np.broadcast_to(v[:, None] * HEIGHT, (size, size))


@pytest.fixture(scope="module")
def dressed() -> DressedBody:
    return dress(2 * np.pi * 2.0)[0]  # ease 4 pi cm -> 2 cm offset


def garment_band() -> tuple[float, float]:
    parts = regions.body_parts(cylinder()[0], None)
    return regions._bounds("upper", parts.levels)


def test_front_texels_take_the_photo_colour(dressed: DressedBody) -> None:
    angle, height = texel_grid(dressed.atlas.shape[0])
    bottom, top = garment_band()
    front = (np.abs(angle - 1.5 * np.pi) < 0.6) & ((height < bottom - 0.1) | (height > top + 0.1))
    front &= (height > 0.05) & (height < HEIGHT - 0.05)
    colours = dressed.atlas[front].astype(float)
    assert np.abs(colours - RED).max(axis=1).mean() < 6


def test_back_texels_are_filled_not_black(dressed: DressedBody) -> None:
    angle, height = texel_grid(dressed.atlas.shape[0])
    back = (np.abs(angle - 0.5 * np.pi) < 0.6) & (height > 0.05) & (height < HEIGHT - 0.05)
    assert dressed.atlas[back].max(axis=1).min() > 100  # no black texel on the back
    assert dressed.atlas.reshape(-1, 3).max(axis=1).min() > 0  # and none anywhere in the atlas


def test_garment_texels_only_inside_the_region(dressed: DressedBody) -> None:
    _, height = texel_grid(dressed.atlas.shape[0])
    bottom, top = garment_band()
    on = dressed.garment_texels
    assert on.any() and dressed.coverage > 0
    assert height[on].min() > bottom - 0.05 and height[on].max() < top + 0.05
    middle = (height > bottom + 0.05) & (height < top - 0.05)
    assert on[middle].all()
    assert np.abs(dressed.atlas[middle].astype(float) - BLUE).max(axis=1).mean() < 10  # front cutout, back tile


def test_a_photo_that_already_wears_the_garment_keeps_its_pixels_where_it_sees_them() -> None:
    """photo.png from a try-on model: the garment's front is the photo's own (red here), only the unseen back
    takes the garment photo (blue); the seen texels are recorded for the views' repaint mask."""
    worn, _, _ = dress(0.0, worn_in_photo=True)
    angle, height = texel_grid(worn.atlas.shape[0])
    bottom, top = garment_band()
    middle = (height > bottom + 0.05) & (height < top - 0.05)
    front, back = middle & (np.abs(angle - 1.5 * np.pi) < 0.6), middle & (np.abs(angle - 0.5 * np.pi) < 0.6)
    assert np.abs(worn.atlas[front].astype(float) - RED).max(axis=1).mean() < 10
    assert np.abs(worn.atlas[back].astype(float) - BLUE).max(axis=1).mean() < 10
    assert worn.seen_texels is not None and worn.seen_texels[front].mean() > 0.9 and not worn.seen_texels[back].any()


def test_ease_pushes_garment_vertices_out_by_ease_over_two_pi(dressed: DressedBody) -> None:
    vertices = cylinder()[0]
    bottom, top = garment_band()
    radius = np.linalg.norm(dressed.vertices[:, :2], axis=1)
    middle = (vertices[:, 2] > bottom + 0.1) & (vertices[:, 2] < top - 0.1)
    assert np.allclose(radius[middle], RADIUS + 0.02, atol=2e-3)
    outside = (vertices[:, 2] < bottom - 0.15) | (vertices[:, 2] > top + 0.15)
    assert np.allclose(radius[outside], RADIUS, atol=1e-5)
    assert dressed.garment_vertices[middle].all() and not dressed.garment_vertices[outside].any()


def test_zero_ease_leaves_the_body() -> None:
    dressed, vertices, _ = dress(0.0, size=128)
    assert np.allclose(dressed.vertices, vertices, atol=1e-6)
    assert dressed.atlas.shape == (128, 128, 3) and dressed.atlas.dtype == np.uint8
