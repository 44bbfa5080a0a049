"""The fill along the body's surface (`pipeline.fitting.surface_fill`) and where the dressing uses it."""

from __future__ import annotations

import numpy as np

from pipeline.fitting import appearance, dress, regions, surface_fill

RED, BLUE, SKIN = np.array([200.0, 30.0, 30.0]), np.array([30.0, 30.0, 200.0]), np.array([220.0, 170.0, 140.0])


def _sheet(columns: int, rows: int, step: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A flat sheet of vertices in the x-z plane (z the height), two triangles a cell."""
    x, z = np.meshgrid(np.arange(columns) * step, np.arange(rows) * step)
    vertices = np.column_stack([x.ravel(), np.zeros(x.size), z.ravel()])
    faces = []
    for r in range(rows - 1):
        for c in range(columns - 1):
            a = r * columns + c
            faces += [(a, a + 1, a + columns), (a + 1, a + columns + 1, a + columns)]
    return vertices, np.array(faces, dtype=np.int64)


def _texels_at_vertices(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One texel on each vertex: its corners a face holding it, its barycentrics all on that vertex."""
    corners = np.zeros((n, 3), dtype=np.int64)
    bary = np.zeros((n, 3))
    for face in faces:
        for k, v in enumerate(face):
            corners[v] = np.roll(face, -k)
    bary[:, 0] = 1.0
    return corners, bary


def test_unknown_texels_take_the_connected_surface_and_not_another_piece() -> None:
    left, left_faces = _sheet(6, 6)
    right, right_faces = _sheet(6, 6)
    right[:, 0] += 0.055  # a second piece beside the first, not joined to it
    vertices = np.vstack([left, right])
    faces = np.vstack([left_faces, right_faces + len(left)])
    corners, bary = _texels_at_vertices(faces, len(vertices))
    colour = np.zeros((len(vertices), 3))
    known = np.zeros(len(vertices), dtype=bool)
    known[: 6] = True  # the first piece's bottom row: red
    colour[: 6] = RED
    known[len(left) + 30:] = True  # the second piece's top row: blue
    colour[len(left) + 30:] = BLUE
    part = np.zeros(len(vertices), dtype=np.int64)
    filled = surface_fill.fill_on_surface(colour, known, known, corners, bary, vertices, vertices[:, 2], faces, part,
                                          None, np.zeros(len(vertices), dtype=bool))
    assert filled[~known].all() and not filled[known].any()
    assert np.allclose(colour[6:len(left)], RED, atol=1.0)  # the whole first piece red, nearest or not
    assert np.allclose(colour[len(left):len(left) + 30], BLUE, atol=1.0)


def test_a_piece_with_nothing_known_is_left_to_the_atlas_fill() -> None:
    vertices, faces = _sheet(4, 4)
    corners, bary = _texels_at_vertices(faces, len(vertices))
    colour = np.zeros((len(vertices), 3))
    known = np.zeros(len(vertices), dtype=bool)
    filled = surface_fill.fill_on_surface(colour, known, known, corners, bary, vertices, vertices[:, 2], faces,
                                          np.zeros(len(vertices), np.int64), SKIN, np.zeros(len(vertices), bool))
    assert not filled.any() and np.all(colour == 0.0)


def test_the_back_of_a_limb_takes_its_sides_at_the_same_height_before_what_is_below() -> None:
    vertices, faces = _sheet(9, 9)
    corners, bary = _texels_at_vertices(faces, len(vertices))
    colour = np.zeros((len(vertices), 3))
    known = np.zeros(len(vertices), dtype=bool)
    grid = np.arange(len(vertices)).reshape(9, 9)
    known[grid[:, 0]] = True  # a side: red
    colour[grid[:, 0]] = RED
    known[grid[0, 1:]] = True  # below (the height's low end): blue
    colour[grid[0, 1:]] = BLUE
    surface_fill.fill_on_surface(colour, known, known, corners, bary, vertices, vertices[:, 2], faces,
                                 np.zeros(len(vertices), np.int64), None, np.zeros(len(vertices), bool))
    # (row 2, column 3): 3 steps from the side, 2 from below; a vertical step costs double, so the side's red
    assert colour[grid[2, 3], 0] > colour[grid[2, 3], 2]
    # (row 1, column 4): 1 step from below against 4 from the side: blue
    assert colour[grid[1, 4], 2] > colour[grid[1, 4], 0]


def test_far_fills_turn_to_the_known_areas_mean_and_past_the_frame_to_skin() -> None:
    vertices, faces = _sheet(3, 30)  # 29 cm tall
    corners, bary = _texels_at_vertices(faces, len(vertices))
    grid = np.arange(len(vertices)).reshape(30, 3)
    colour = np.zeros((len(vertices), 3))
    known = np.zeros(len(vertices), dtype=bool)
    known[grid[25:].ravel()] = True  # the top rows known: stripes of red and blue (a print), red at their edge
    colour[grid[25:].ravel()] = np.where((np.arange(5)[:, None, None] % 2 == 1), BLUE, RED).repeat(3, axis=1) \
        .reshape(-1, 3)
    part = np.zeros(len(vertices), np.int64)
    kept = colour.copy()
    surface_fill.fill_on_surface(kept, known, known, corners, bary, vertices, vertices[:, 2], faces, part, SKIN,
                                 np.zeros(len(vertices), bool))
    near, far = kept[grid[24, 1]], kept[grid[2, 1]]
    assert near[0] > 150  # next to the known rows: their edge's colour
    assert abs(far[0] - far[2]) < 60  # far below: the print's mean, neither stripe
    bare = colour.copy()
    outside = vertices[:, 2] < 0.2  # the frame cuts the sheet 20 cm up: below it is taken for bare skin
    surface_fill.fill_on_surface(bare, known, known, corners, bary, vertices, vertices[:, 2], faces, part, SKIN,
                                 outside)
    assert np.allclose(bare[grid[2, 1]], SKIN, atol=1.0)


def test_legs_ending_in_skin_are_bare_below_the_frame_and_trousers_are_not() -> None:
    n = 400
    height = np.linspace(0.5, 0.9, n)
    part = np.full(n, regions.PARTS.index("thigh"))
    seen = np.ones(n, dtype=bool)
    shorts = np.where((height < 0.6)[:, None], SKIN, BLUE)
    assert appearance.legs_end_bare(shorts, seen, part, height, SKIN)
    trousers = np.tile(BLUE, (n, 1))
    assert not appearance.legs_end_bare(trousers, seen, part, height, SKIN)
    assert not appearance.legs_end_bare(shorts, seen, part, height, None)
    assert not appearance.legs_end_bare(shorts, np.zeros(n, bool), part, height, SKIN)  # no legs seen


def test_the_atlas_nearest_known_texel_is_found_per_texel() -> None:
    size = 8
    index = np.arange(size * size)
    tex = dress.Texels(index, np.zeros((len(index), 3)), np.zeros((len(index), 3)), np.zeros(len(index), np.int64),
                       np.zeros(len(index)), np.zeros(len(index)))
    known = np.zeros(len(index), dtype=bool)
    known[[0, size * size - 1]] = True
    nearest = dress.atlas_nearest(tex, known, size)
    assert nearest[1] == 0 and nearest[size * size - 2] == size * size - 1 and nearest[0] == 0
    assert np.array_equal(dress.atlas_nearest(tex, np.zeros(len(index), bool), size), index)
