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


BAND = (0.3, 0.55)  # heights (metres) of the band below the garment that the photo does not show as it is
SKIN = (190, 140, 120)


def textured_photo() -> np.ndarray:
    """The photo of the cylinder lit from the camera (darker towards its sides) with a fine grain on it."""
    columns = (np.arange(300) + 0.5 - 150.0) / (300 * RADIUS / 3.0)  # -1 .. 1 across the cylinder's silhouette
    light = 0.55 + 0.45 * np.sqrt(np.clip(1.0 - columns**2, 0.0, 1.0))
    grain = 1.0 + 0.12 * np.random.default_rng(0).standard_normal((600, 300))
    return np.clip(np.asarray(RED, float)[None, None, :] * (light[None, :] * grain)[..., None], 0, 255).astype(np.uint8)


def band_rows() -> slice:
    """The photo rows showing the band (image y = cy - focal * (z - centre) / distance)."""
    return slice(round(300 - 100 * (BAND[1] - HEIGHT / 2)), round(300 - 100 * (BAND[0] - HEIGHT / 2)))


def dress_photo(photo: np.ndarray, mask: np.ndarray, made: np.ndarray | None = None) -> DressedBody:
    vertices, faces, uvs, face_uvs = cylinder()
    garment = np.zeros((100, 80, 4), np.uint8)
    garment[10:90, 10:70] = (*BLUE, 255)
    return dress_body(BodyMesh(vertices, faces, uvs, face_uvs), PersonPhoto(photo, mask, front_camera(), made=made),
                      GarmentLook(garment, "upper"), {"chest": 0.0, "waist": 0.0, "hip": 0.0}, atlas_size=256)


def band_texels(size: int, spread: float) -> np.ndarray:
    """The band's texels on the front (within `spread` radians of facing the camera), 2 cm inside its edges."""
    angle, height = texel_grid(size)
    return (np.abs(angle - 1.5 * np.pi) < spread) & (height > BAND[0] + 0.02) & (height < BAND[1] - 0.02)


def luminance(atlas: np.ndarray) -> np.ndarray:
    return atlas.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_a_flat_colour_the_photo_made_up_gets_the_photos_grain_and_shading() -> None:
    """photo.png refills bared skin with one colour: in the atlas it takes the grain of the photo's own texels
    nearby and darkens towards the sides like them, instead of staying one flat patch."""
    photo = textured_photo()
    made = np.zeros((600, 300), bool)
    made[band_rows()] = True
    photo[made] = SKIN
    dressed = dress_photo(photo, np.ones((600, 300), np.float32), made)
    lum = luminance(dressed.atlas)
    band = band_texels(256, 1.3)
    centre, sides = band & band_texels(256, 0.35), band & ~band_texels(256, 0.9)
    assert lum[centre].mean() > 1.08 * lum[sides].mean()  # shaded like the photo's texels: darker at the sides
    rows = np.flatnonzero(band.any(axis=1))
    columns = np.flatnonzero(centre.any(axis=0))
    patch = lum[np.ix_(rows, columns)]
    assert np.abs(np.diff(patch, axis=0)).mean() > 1.0 and np.abs(np.diff(patch, axis=1)).mean() > 1.0  # grain
    plain = dress_photo(photo, np.ones((600, 300), np.float32))
    assert plain.seen_texels is not None and plain.made_up < 0.02 < dressed.made_up  # the refill counts as made up
    outside = plain.seen_texels & ~dressed.garment_texels & (texel_grid(256)[1] < BAND[0] - 0.05)
    assert outside.sum() > 1000 and np.array_equal(dressed.atlas[outside], plain.atlas[outside])  # left alone


def test_an_unseen_band_is_filled_with_grain_not_streaks_of_its_edge() -> None:
    """Texels neither seen nor mirrored (a band the person mask leaves out) take the grain of the seen texels
    around them in both directions, not the edge's colours smeared across (one colour per column)."""
    mask = np.ones((600, 300), np.float32)
    mask[band_rows()] = 0.0
    dressed = dress_photo(textured_photo(), mask)
    assert dressed.seen_texels is not None and not dressed.seen_texels[band_texels(256, 1.0)].any()
    assert 0.05 < dressed.made_up < 0.5  # the band and the cylinder's ends, not the rest
    lum = luminance(dressed.atlas)
    band = band_texels(256, 0.6)
    rows, columns = np.flatnonzero(band.any(axis=1)), np.flatnonzero(band.any(axis=0))
    patch = lum[np.ix_(rows, columns)]
    assert np.abs(np.diff(patch, axis=0)).mean() > 1.0  # varies along the height too


def test_a_second_garment_on_the_same_body_reuses_its_texels_and_dresses_it_alike() -> None:
    """The body's texels and how the photo's camera sees them are kept for the next job on the same body (a
    catalog's garments on one photo): the same object, read-only, and the same atlas as a fresh computation."""
    from pipeline.fitting import dress as dressing

    vertices, faces, uvs, face_uvs = cylinder()
    body, camera = BodyMesh(vertices, faces, uvs, face_uvs), front_camera()
    garment = np.zeros((100, 80, 4), np.uint8)
    garment[10:90, 10:70] = (*BLUE, 255)
    photo = PersonPhoto(np.full((600, 300, 3), RED, np.uint8), np.ones((600, 300), np.float32), camera)
    dressing._BODY_SIGHTS.clear()
    upper = dressing.dress_geometry(body, camera, GarmentLook(garment, "upper"), atlas_size=128)
    lower = dressing.dress_geometry(body, camera, GarmentLook(garment, "lower"), atlas_size=128)
    assert lower.sight is upper.sight and lower.tex.points is upper.tex.points
    assert not upper.tex.points.flags.writeable and not upper.sight.xy.flags.writeable
    assert not np.array_equal(upper.tex.garment, lower.tex.garment)  # each garment its own region
    kept = dress_body(body, photo, GarmentLook(garment, "lower"), {}, atlas_size=128, geometry=lower)
    dressing._BODY_SIGHTS.clear()
    fresh = dress_body(body, photo, GarmentLook(garment, "lower"), {}, atlas_size=128)
    assert np.array_equal(kept.atlas, fresh.atlas) and np.array_equal(kept.vertices, fresh.vertices)
    other = BodyMesh(vertices * 1.01, faces, uvs, face_uvs)
    moved = dressing.dress_geometry(other, camera, GarmentLook(garment, "upper"), atlas_size=128)
    assert moved.sight is not upper.sight


def test_photo_pngs_garment_outline_follows_the_atlas_not_the_triangles() -> None:
    from pipeline.fitting.photo import garment_pixels
    from pipeline.render.raster import rasterize

    vertices, faces, uvs, face_uvs = cylinder()
    rotation = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # front_camera's view, 5 times as sharp
    camera = Camera(focal_px=1500.0, cx=450.0, cy=1500.0, rotation=rotation,
                    translation=-rotation @ np.array([0.0, -3.0, HEIGHT / 2]), image_size=(900, 3000))
    mesh = BodyMesh(vertices, faces, uvs, face_uvs)
    raster = rasterize(vertices, faces, camera)
    ring = HEIGHT / (RINGS - 1)
    hem_z = 30 * ring + ring / 3  # a hem a third of the way between two rings
    _, height = texel_grid(1024)
    texels = np.ascontiguousarray(height > hem_z)
    smooth = garment_pixels(raster, mesh, vertices[:, 2] > hem_z, texels)
    sawtooth = garment_pixels(raster, mesh, vertices[:, 2] > hem_z, None)
    columns = range(400, 500)  # the cylinder's middle, facing the camera
    expected = camera.cy - camera.focal_px * (hem_z - HEIGHT / 2) / (3.0 - RADIUS)  # the hem's row at the front
    lowest = [int(np.flatnonzero(smooth[:, c]).max()) for c in columns]
    assert max(lowest) - min(lowest) <= 1 and abs(np.mean(lowest) - expected) < 2
    teeth = [int(np.flatnonzero(sawtooth[:, c]).max()) for c in columns]
    assert max(teeth) - min(teeth) >= 10  # the triangles' staircase the old outline had


def test_the_body_under_photo_pngs_new_garment_takes_the_photos_own_colours_or_is_made_up() -> None:
    from pipeline.fitting.dress import PhotoSight, Texels, under_new_garment

    camera = Camera(focal_px=10.0, cx=5.0, cy=5.0, rotation=np.eye(3), translation=np.zeros(3), image_size=(10, 10))
    count = 5
    xy = np.array([[1.5, 1.5], [3.5, 3.5], [5.5, 5.5], [9.5, 9.5], [7.5, 1.5]])  # texel 3 is seen only mirrored
    mirror = xy.copy()
    mirror[3] = [3.5, 3.5]
    tex = Texels(index=np.arange(count), points=np.zeros((count, 3)), normals=np.zeros((count, 3)),
                 part=np.zeros(count, int), garment=np.array([0.0, 0.0, 1.0, 0.0, 0.0]), height=np.zeros(count))
    sight = PhotoSight(xy=xy, mirror_xy=mirror, facing=np.ones(count), in_front=np.ones(count, bool),
                       mirror_same_part=np.ones(count, bool))
    painted = np.zeros((10, 10), bool)
    painted[:7, :7] = True  # the new garment drawn over texels 0 to 3's pixels, not texel 4's
    beneath = np.zeros((10, 10), bool)
    beneath[1, 1] = True  # texel 0's pixel: the trousers under a longer top, in the photo itself
    original = np.zeros((10, 10, 3), np.uint8)
    original[1, 1] = (40, 60, 110)
    photo = PersonPhoto(rgb=np.full((10, 10, 3), 200, np.uint8), mask=np.ones((10, 10), np.float32), camera=camera,
                        painted=painted, beneath=beneath, original=original)
    colour = np.full((count, 3), 200.0, np.float32)
    seen = np.array([True, True, True, False, True])
    over = under_new_garment(tex, sight, camera, photo, colour, seen, np.ones(count, bool))
    assert over.tolist() == [False, True, False, True, False], "under the new garment, off it, seen or mirrored"
    assert np.allclose(colour[0], (40, 60, 110)), "the trousers the photo shows there, not the new top's colour"
    assert np.allclose(colour[1:], 200.0), "the rest keep their colours (the garment's own, what the photo shows)"
    without = under_new_garment(tex, sight, camera, PersonPhoto(rgb=photo.rgb, mask=photo.mask, camera=camera),
                                colour, seen, np.ones(count, bool))
    assert not without.any(), "no photo.png drawn: nothing is under a new garment"
