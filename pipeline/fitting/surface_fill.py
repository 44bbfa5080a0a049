"""Fill the texels nothing was known for along the body's surface, not across the atlas.

The atlas's islands are laid out by the UV map, not by the body: the back of a calf's island borders the scalp's,
so a fill from the nearest known texel in the atlas painted calves in hair (dev pairs 01008 and 02849, whose photos
are cut above the knee). Here every unknown texel takes its colour from the nearest known part of the body along
the mesh: each vertex with known texels nearest it holds their mean colour, each other vertex the colour of the
nearest such vertex by Dijkstra over the mesh's edges (a vertical step costs `VERTICAL_COST` times a step round
the body, so the back of a limb takes its sides at the same height before the ankle or the knee), and each
unknown texel the barycentric mix of its triangle's three vertex colours.
"""

from __future__ import annotations

import numpy as np

VERTICAL_COST = 2.0  # a step along the rest pose's height costs this much more than one round the body
MIN_TEXELS = 1  # a vertex holds a colour when this many known texels are nearer it than its triangles' others
FADE_M = 0.08  # over this distance from what is known, a fill turns from its nearest colour to the area's mean
CUT_FADE_M = 0.03  # the same for a limb the photo's frame cuts: it turns to skin, as below a skirt's hem
SMOOTH_ROUNDS = 40  # rounds of neighbour averaging over the known vertices for that mean (about 10 cm)


def vertex_colours(colour: np.ndarray, source: np.ndarray, corners: np.ndarray, bary: np.ndarray,
                   n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) the mean colour of the `source` texels nearest each vertex (each texel counts for the corner its
    barycentrics favour: a vertex's share of the atlas, about 16 texels on anny's at 1024), and (V,) which
    vertices have at least `MIN_TEXELS` of them."""
    at = corners[source, np.argmax(bary[source], axis=1)]
    total = np.bincount(at, minlength=n_vertices).astype(np.float64)
    means = np.zeros((n_vertices, 3), dtype=np.float64)
    values = np.asarray(colour)[source]
    for channel in range(3):
        means[:, channel] = np.bincount(at, weights=values[:, channel], minlength=n_vertices)
    held = total >= MIN_TEXELS
    means[held] /= total[held, None]
    return means, held


def _edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tri = np.asarray(faces, dtype=np.int64)
    return np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2]]), np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]])


def nearest_held(vertices: np.ndarray, height: np.ndarray, faces: np.ndarray, held: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(V,) for each vertex the nearest `held` vertex along the mesh (itself when held; -1 where none is
    connected) and (V,) the distance to it, a vertical step costing `VERTICAL_COST` times a step round the body."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    n = len(vertices)
    a, b = _edges(faces)
    step = np.linalg.norm(vertices[a] - vertices[b], axis=1)
    rise = np.abs(height[a] - height[b])
    cost = np.sqrt(step ** 2 + (VERTICAL_COST ** 2 - 1.0) * rise ** 2) + 1e-9
    graph = coo_matrix((np.concatenate([cost, cost]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                       shape=(n, n)).tocsr()
    sources = np.flatnonzero(held)
    if not len(sources):
        return np.full(n, -1, dtype=np.int64), np.full(n, np.inf)
    distance, _, nearest = dijkstra(graph, directed=False, indices=sources, min_only=True,
                                    return_predecessors=True)
    nearest = np.asarray(nearest, dtype=np.int64)
    nearest[nearest < 0] = -1
    return nearest, np.asarray(distance, dtype=np.float64)


def area_means(means: np.ndarray, held: np.ndarray, faces: np.ndarray, part: np.ndarray) -> np.ndarray:
    """(V, 3) each held vertex's colour averaged with its held neighbours' on the same body part over
    `SMOOTH_ROUNDS` rounds: the mean colour of the known surface round it (a shadow or a print's spot at the fill's
    edge does not run on)."""
    from scipy.sparse import coo_matrix

    a, b = _edges(faces)
    keep = held[a] & held[b] & (part[a] == part[b])
    a, b = a[keep], b[keep]
    n = len(means)
    graph = coo_matrix((np.ones(2 * len(a)), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n)).tocsr()
    degree = np.asarray(graph.sum(axis=1)).reshape(-1)
    smooth = means.copy()
    for _ in range(SMOOTH_ROUNDS):
        around = graph @ smooth
        smooth = np.where(degree[:, None] > 0, 0.5 * smooth + 0.5 * around / np.maximum(degree, 1)[:, None], smooth)
    return smooth


def fill_on_surface(colour: np.ndarray, known: np.ndarray, source: np.ndarray, corners: np.ndarray,
                    bary: np.ndarray, vertices: np.ndarray, height: np.ndarray, faces: np.ndarray,
                    part: np.ndarray, skin: np.ndarray | None, outside: np.ndarray) -> np.ndarray:
    """In place: the unknown texels' colours from the nearest `source` texels along the body. `corners` (N, 3) and
    `bary` (N, 3) are each texel's triangle's vertices and its barycentrics; `height` (V,) the rest pose's, `part`
    (V,) the body part of each vertex. Vertices `outside` the photo's frame (legs below a photo cut at the hip)
    turn to `skin` within `CUT_FADE_M` of what is known, the rest to the mean of the known surface round their
    nearest known vertex within `FADE_M`. Returns (N,) the texels filled (those on a piece of mesh with no source
    stay unknown)."""
    todo = ~known
    if not todo.any() or not source.any():
        return np.zeros(len(known), dtype=bool)
    means, held = vertex_colours(colour, source, corners, bary, len(vertices))
    nearest, distance = nearest_held(np.asarray(vertices, np.float64), np.asarray(height, np.float64), faces, held)
    reached = nearest >= 0
    at = np.maximum(nearest, 0)
    target = area_means(means, held, faces, part)[at]
    reach = np.full(len(vertices), FADE_M)
    if skin is not None:
        target[outside] = np.asarray(skin, np.float64)[:3]
        reach[outside] = CUT_FADE_M
    fade = np.clip(np.where(reached, distance, 0.0) / reach, 0.0, 1.0)[:, None]
    filled_colour = (1.0 - fade) * means[at] + fade * target
    corner = corners[todo]
    ok = reached[corner].all(axis=1)
    rows = np.flatnonzero(todo)[ok]
    colour[rows] = np.einsum("nk,nkc->nc", bary[rows], filled_colour[corners[rows]])
    filled = np.zeros(len(known), dtype=bool)
    filled[rows] = True
    return filled
