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
