"""The same job gives the same bytes alone and inside a concurrent batch (two workers, the real CPU models):
nothing a backend does on one worker thread (torch's thread count above all, which the body fitter used to set
and restore around every fit, process-wide) may change another job's float reductions."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from PIL import Image, ImageOps

from conftest import fresh_thread_count, job_finished
from functions.app import build_local
from infra.settings import Settings
from pipeline import layout
from pipeline.manifests import ResultManifest
from pipeline.sample import sample_garment, sample_person
from pipeline.state import read_model


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def published(root: Path, job: str) -> dict[str, bytes]:
    manifest = read_model(build_local(root).store, layout.result_manifest_key(job), ResultManifest)
    assert manifest is not None, (root / "results" / job / "error.json").read_text()
    return {entry.name: (root / entry.key).read_bytes() for entry in manifest.files}


def test_a_job_alone_and_in_a_concurrent_batch_publishes_identical_bytes(tmp_path: Path) -> None:
    person, garment = sample_person(), sample_garment()
    alone = build_local(tmp_path / "alone", Settings(workers=2))
    with alone.runtime:
        alone.store.put(layout.incoming_image_key("one", "person", "png"), person)
        alone.store.put(layout.incoming_image_key("one", "garment", "png"), garment)
        assert alone.runtime.run_until(lambda: job_finished(alone.store, "one"), timeout=600)

    batch = build_local(tmp_path / "batch", Settings(workers=2))
    with Image.open(io.BytesIO(person)) as p, Image.open(io.BytesIO(garment)) as g:
        others = {"people": {"mirrored.png": png(ImageOps.mirror(p.convert("RGB")))},
                  "garments": {"blue.png": png(Image.merge("RGB", g.convert("RGB").split()[::-1]))}}
    with batch.runtime:
        batch.store.put(f"{layout.catalog_people_prefix('b')}sample.png", person)
        batch.store.put(f"{layout.catalog_garments_prefix('b')}sample.png", garment)
        for name, data in others["people"].items():
            batch.store.put(f"{layout.catalog_people_prefix('b')}{name}", data)
        for name, data in others["garments"].items():
            batch.store.put(f"{layout.catalog_garments_prefix('b')}{name}", data)
        batch.store.put(layout.batch_marker_key("b"), b"{}")
        assert batch.runtime.run_until(lambda: batch.store.head(layout.batch_report_key("b")) is not None,
                                       timeout=900)

    single = published(tmp_path / "alone", "one")
    among = published(tmp_path / "batch", layout.catalog_job_id("b", "sample.png", "sample.png"))
    assert set(single) == set(among) and {"model.glb", "angles/000.png", "fitting.json"} <= set(single)
    # the page says which job and batch it shows, and how long each phase took: the rest is the same bytes
    differ = sorted(name for name in single if name != "index.html" and single[name] != among[name])
    assert differ == [], f"these published files differ between the job alone and inside the batch: {differ}"


def test_a_body_fit_leaves_torch_s_thread_count_to_the_process() -> None:
    """The mechanism behind the test above, without its timing: while one worker fits a body, a thread starting
    elsewhere gets the process's count, not the one the fitter used to set around its fit."""
    import numpy as np
    import torch

    from pipeline.backends.anny_body import AnnyBodyFitter
    from pipeline.backends.mediapipe_person import MediapipePersonLandmarker

    with Image.open(io.BytesIO(sample_person())) as image:
        person = MediapipePersonLandmarker().find_person(np.asarray(image.convert("RGB")))
    assert person is not None
    fitter = AnnyBodyFitter(cache_dir=Settings().models().cache / "anny")
    fitter.prepare()
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # whatever the process fixed: a fit must not change it for anyone else
    try:
        done = threading.Event()
        fitting = threading.Thread(target=lambda: (fitter.fit(person, 1.7), done.set()))
        fitting.start()
        seen = [fresh_thread_count()]
        while not done.is_set():
            seen.append(fresh_thread_count())
            time.sleep(0.002)
        fitting.join()
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {3}, f"threads starting during a fit got {sorted(set(seen))} torch threads"
