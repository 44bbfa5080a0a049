"""The same inputs give the same bytes, whatever ran before and on whichever thread: the k-means of the hair
tone and the garment's colours (seeded starts of their own, never OpenCV's per-thread RNG), and the rasterizer
(which leaves torch's thread count alone after setting it once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from conftest import fresh_thread_count
from pipeline.fitting import appearance as person
from pipeline.render.raster import Camera, rasterize  # Camera as the rasterizer takes it, wherever it is defined
from pipeline.wardrobe.appearance import dominant_colours


def hair(colour: np.ndarray) -> bytes:
    """The hair tone of a head whose texels above the eyes have these colours (no skin seen: the darker
    cluster)."""
    n = len(colour)
    found = person.tones(colour, np.ones(n, bool), np.ones(n), np.full(n, person.HEAD), np.full(n, 1.7), 1.6)
    assert found.hair is not None
    return found.hair.tobytes()


def swatches(lab: np.ndarray) -> tuple[Any, ...]:
    return dominant_colours(lab)


# One round blob and one even box of colours: no clear clusters, so where k-means starts decides where it ends.
BLOB = (np.random.default_rng(3).normal(size=(600, 3)) * 30 + 128).clip(0, 255).astype(np.float32)
BOX = np.random.default_rng(4).uniform([20, -40, -40], [90, 40, 40], size=(5000, 3)).astype(np.float32)


def other_kmeans(i: int) -> None:
    """Someone else's k-means on other data, drawing from this thread's OpenCV RNG."""
    data = np.random.default_rng(i).normal(size=(300 + i, 3)).astype(np.float32)
    flags = cv2.KMEANS_PP_CENTERS if i % 2 else cv2.KMEANS_RANDOM_CENTERS
    cv2.kmeans(data, 4, None, (cv2.TERM_CRITERIA_MAX_ITER, 5, 1.0), 2, flags)


def twice_with_others_between(calls: list[Callable[[], Any]], rounds: int = 6) -> list[list[Any]]:
    results = []
    for i in range(rounds):
        other_kmeans(i)
        results.append([call() for call in calls])
    return results


def test_the_k_means_give_the_same_colours_after_other_k_means_and_on_two_threads_at_once() -> None:
    calls: list[Callable[[], Any]] = [lambda: hair(BLOB), lambda: swatches(BOX)]
    reference = [call() for call in calls]
    assert len(reference[1]) >= 3
    assert twice_with_others_between(calls) == [reference] * 6
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(twice_with_others_between, calls) for _ in range(2)]
        assert [run.result() for run in runs] == [[reference] * 6] * 2


def sphere(cells: int = 60) -> tuple[np.ndarray, np.ndarray, Camera]:
    """A slightly rough sphere 2 m in front of a pinhole camera."""
    u, v = np.meshgrid(np.linspace(0, np.pi, cells), np.linspace(0, 2 * np.pi, cells), indexing="ij")
    unit = np.stack([np.sin(u) * np.cos(v), np.sin(u) * np.sin(v), np.cos(u)], axis=-1).reshape(-1, 3)
    vertices = unit * 0.5 + np.random.default_rng(0).normal(scale=0.004, size=unit.shape) + (0.0, 0.0, 2.0)
    grid = np.arange(cells * cells).reshape(cells, cells)
    a, b, c, d = grid[:-1, :-1].ravel(), grid[1:, :-1].ravel(), grid[:-1, 1:].ravel(), grid[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], axis=1), np.stack([b, d, c], axis=1)])
    camera = Camera(focal_px=300.0, cx=96.0, cy=96.0, rotation=np.eye(3), translation=np.zeros(3),
                    image_size=(192, 192))
    return vertices, faces, camera


def raster_bytes(threads: int | None) -> bytes:
    vertices, faces, camera = sphere()
    raster = rasterize(vertices, faces, camera, cull_back=False, threads=threads)
    return raster.triangle.tobytes() + raster.bary.tobytes() + raster.depth.tobytes()


def test_the_rasterizer_gives_the_same_bytes_from_many_threads_asking_for_other_thread_counts() -> None:
    reference = raster_bytes(1)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(raster_bytes, [1, 2, 3, None] * 3))
    assert all(result == reference for result in results)


def test_the_rasterizer_leaves_torch_s_thread_count_alone_after_the_first_call() -> None:
    """torch gives each thread that starts using it the count set last: one that starts while a call asks for
    another count gets the same as one that starts before."""
    raster_bytes(1)

    before = fresh_thread_count()
    stop = threading.Event()

    def keep_rasterizing() -> None:
        while not stop.is_set():
            raster_bytes(before + 3)

    worker = threading.Thread(target=keep_rasterizing)
    worker.start()
    try:
        during = {fresh_thread_count() for _ in range(200)}
    finally:
        stop.set()
        worker.join()
    assert during == {before} and fresh_thread_count() == before
