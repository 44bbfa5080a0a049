"""The made-up texels' terms on their own: the fitted shading and the hair strands (pure numpy)."""

from __future__ import annotations

import numpy as np

from pipeline.fitting import unseen


def test_the_shading_fit_reads_the_photos_side_darkening_and_is_bounded() -> None:
    rng = np.random.default_rng(0)
    normals = rng.standard_normal((4000, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    side, up = unseen.side_and_up(normals, np.array([0.0, 1.0, 0.0]))
    lum = 120.0 * (1.0 - 0.3 * side + 0.1 * up)
    part = np.zeros(len(lum), dtype=np.int64)
    a, b = unseen.fit_shading(lum, part, side, up, np.ones(len(lum), dtype=bool))
    assert abs(a + 0.3) < 0.05 and abs(b - 0.1) < 0.05
    assert unseen.fit_shading(120.0 * (1.0 - 2.0 * side), part, side, up, np.ones(len(lum), bool))[0] == -0.45
    light = unseen.shading(side, up, (a, b), np.ones(len(lum)))
    assert abs(light.mean() - 1.0) < 1e-9 and light[side > 0.9].mean() < light[side < 0.1].mean()
    assert np.all(unseen.shading(side, up, (a, b), np.zeros(len(lum))) == 1.0)  # nothing made up: no light added


def test_made_up_black_hair_takes_strands_and_photo_texels_do_not() -> None:
    angle, z = np.meshgrid(np.linspace(0, 2 * np.pi, 400), np.linspace(1.5, 1.7, 50))
    points = np.column_stack([0.1 * np.cos(angle.ravel()), 0.1 * np.sin(angle.ravel()), z.ravel()])
    black = np.full((len(points), 3), 20.0)
    pattern = unseen.strands(points, np.zeros(3))
    made = np.ones(len(points))
    out = unseen.hair_strands(black, made, np.zeros(len(points)), pattern)
    rows = out[:, 0].reshape(50, 400)
    assert rows.std(axis=1).mean() > 4.0  # streaks across the head
    assert np.abs(np.diff(rows, axis=0)).mean() < np.abs(np.diff(rows, axis=1)).mean()  # running down it
    assert np.array_equal(unseen.hair_strands(black, np.zeros(len(points)), np.zeros(len(points)), pattern), black)
    assert np.array_equal(unseen.hair_strands(black, made, np.full(len(points), 30.0), pattern), black)  # not hair


def _gradient(image: np.ndarray) -> np.ndarray:
    """(H, W) the largest channel's gradient magnitude after a 1.5-texel blur (bench.look's flatness, on texels)."""
    import cv2

    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.5)
    grads = [np.hypot(cv2.Sobel(blurred[..., c], cv2.CV_32F, 1, 0, ksize=3) / 8,
                      cv2.Sobel(blurred[..., c], cv2.CV_32F, 0, 1, ksize=3) / 8) for c in range(3)]
    return np.max(grads, axis=0)


def test_a_filled_unseen_region_takes_the_seen_texture_beside_it_and_is_not_flat() -> None:
    import cv2

    rng = np.random.default_rng(3)
    size = 128
    noise = cv2.GaussianBlur(rng.standard_normal((size, size, 3)).astype(np.float32), (0, 0), 1.2)
    seen_texture = np.clip(np.array([150.0, 110.0, 90.0]) * (1.0 + 0.5 * noise), 0, 255)  # skin with grain
    atlas = np.zeros((size, size, 3), np.uint8)
    atlas[:, :40] = seen_texture[:, :40].astype(np.uint8)  # the photo shows a 40-texel strip ...
    atlas[:, 40:] = (140, 100, 80)  # ... the rest is one made-up colour (the nearest-colour fill)
    source = np.zeros((size, size), bool)
    source[:, :40] = True
    part = np.zeros((size, size), np.int64)
    made = ~source
    grain = unseen.transfer_grain(atlas, source, part, made)
    assert np.count_nonzero(np.abs(grain[made]).max(axis=1)) > 0.99 * made.sum()  # every made texel found detail
    out = atlas.reshape(-1, 3).astype(np.float32).copy()
    todo = made.reshape(-1)
    out[todo] = unseen.apply(out[todo], np.ones(int(todo.sum())), grain.reshape(-1, 3)[todo], np.ones(int(todo.sum())))
    filled = out.reshape(size, size, 3)
    flat_before = (_gradient(atlas.astype(np.float32))[:, 44:-4] < 1.5).mean()
    flat_after = (_gradient(filled)[:, 44:-4] < 1.5).mean()
    flat_seen = (_gradient(atlas.astype(np.float32))[:, 4:36] < 1.5).mean()
    assert flat_before > 0.99 and flat_after < flat_seen + 0.1  # as varied as the seen strip, not one flat slab
    assert abs(filled[:, 40:].mean() - atlas[:, 40:].astype(np.float32).mean()) < 3.0  # its colour is kept
    assert np.array_equal(filled[:, :40], atlas[:, :40].astype(np.float32))  # the photo's texels are untouched
    hue = filled[:, 44:-4, 0] - filled[:, 44:-4, 2]  # chroma varies too, as it does in the photo
    assert hue.std() > 2.0


def test_a_fill_whose_reflection_lands_off_the_photo_still_takes_detail() -> None:
    size = 96
    rng = np.random.default_rng(5)
    atlas = np.full((size, size, 3), 120, np.uint8)
    source = np.zeros((size, size), bool)
    source[40:56, 40:56] = True  # a small seen island: most reflections of a wide fill land off it
    atlas[source] = np.clip(120 + 30 * rng.standard_normal((int(source.sum()), 3)), 0, 255).astype(np.uint8)
    part = np.zeros((size, size), np.int64)
    target = ~source
    grain = unseen.transfer_grain(atlas, source, part, target)
    found = np.abs(grain[target]).max(axis=1) > 0
    assert found.mean() > 0.95


def test_bench_look_counts_the_made_up_flat_patch_apart_from_the_photos_own() -> None:
    """bench.look's second flat figure: of a view's flat pixels, only those whose texels were made up count."""
    from bench.look import flat_patch
    from pipeline.render.shade import BACKGROUND

    rng = np.random.default_rng(1)
    view = np.empty((120, 100, 3), np.uint8)
    view[:] = BACKGROUND
    view[10:110, 20:80] = np.clip(110 + 25 * rng.standard_normal((100, 60, 3)), 0, 255).astype(np.uint8)  # grainy
    view[10:60, 20:80] = (60, 50, 45)  # a flat slab over the top half of the figure ...
    made = np.zeros(view.shape[:2], bool)
    made[10:35, 20:80] = True  # ... of which only its top half was made up
    no_garment = np.zeros((0, 3), np.float32)
    raw, only_made = flat_patch(view, no_garment), flat_patch(view, no_garment, made)
    assert 0.3 < raw < 0.5 and 0.15 < only_made < 0.25 and only_made < 0.6 * raw  # the slab less its edges
    assert flat_patch(view, no_garment, np.zeros_like(made)) == 0.0


def test_a_fill_takes_detail_from_its_own_part_when_another_parts_island_lies_nearer() -> None:
    size = 96
    rng = np.random.default_rng(8)
    atlas = np.clip(120 + 30 * rng.standard_normal((size, size, 3)), 0, 255).astype(np.uint8)
    part = np.zeros((size, size), np.int64)
    part[:, 48:] = 1  # the fill (columns 30 to 47) is part 0; the island right beside it is part 1's
    source = np.zeros((size, size), bool)
    source[:, :10] = True  # part 0's own seen texels, 20 texels away
    source[:, 48:60] = True  # part 1's, right beside the fill
    target = np.zeros((size, size), bool)
    target[:, 30:48] = True
    grain = unseen.transfer_grain(atlas, source, part, target)
    assert (np.abs(grain[target]).max(axis=1) > 0).mean() > 0.95
