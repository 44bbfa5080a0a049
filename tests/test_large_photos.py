"""A 48-megapixel photo (6000x8000) no longer ties up a worker: intake checks it from a 1/8-scale decode, every
phase works at the working size (docs/inputs.md), and a whole job's peak memory stays bounded. Memory is
measured as the peak RSS of a subprocess (resource), never by timing."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.badinput import measure
from pipeline.codec import WORKING_PIXELS, WORKING_SIDE, decode_upload, open_upright, upright_size, working_size


def big_jpeg(path: Path, size: tuple[int, int] = (6000, 8000)) -> Path:
    """A JPEG of `size` with detail everywhere (a flat one would decode trivially)."""
    small = np.random.default_rng(0).integers(0, 255, (size[1] // 50, size[0] // 50, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BILINEAR).save(path, quality=90)
    return path


def peak_rss_of(code: str, path: Path) -> tuple[float, str]:
    """Run `code` in a fresh interpreter (argv[1] is `path`): its peak RSS in MB and its output. Measured by a
    small launcher: a child forked straight from pytest would count pytest's own memory as its peak."""
    measured = measure([sys.executable, "-c", code, str(path)], path.parent)
    assert measured.returncode == 0, measured.output
    return measured.peak_rss_mb, measured.output


@pytest.mark.parametrize(("size", "expected"), [
    ((6000, 8000), (1536, 2048)),
    ((8000, 6000), (2048, 1536)),
    ((4000, 4000), (1773, 1773)),  # the pixel budget binds before the side
    ((768, 1024), (768, 1024)),  # never scaled up
    ((2048, 100), (2048, 100)),
])
def test_the_working_size_bounds_the_long_side_and_the_pixels(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert working_size(size) == expected
    width, height = expected
    assert max(width, height) <= WORKING_SIDE and width * height <= WORKING_PIXELS


def test_a_48_megapixel_jpeg_decodes_at_the_working_size_in_bounded_memory(tmp_path: Path) -> None:
    path = big_jpeg(tmp_path / "big.jpg")
    rss, out = peak_rss_of("import sys; from pipeline.codec import decode_upload; from pipeline.images import "
                           "inspect_image\ndata = open(sys.argv[1], 'rb').read()\nprint(inspect_image(data, 'p'))\n"
                           "print('shape', decode_upload(data).shape)", path)
    assert "shape (2048, 1536, 3)" in out and "width=6000, height=8000" in out
    assert rss < 300, f"peak RSS {rss:.0f} MB"  # the whole image decoded would be 144 MB more, twice over


def test_an_exif_turned_photo_is_scaled_upright() -> None:
    image = Image.new("RGB", (3000, 2000), (90, 120, 150))
    exif = image.getexif()
    exif[0x0112] = 6  # shown turned a quarter
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    assert upright_size(buf.getvalue()) == (2000, 3000)
    assert working_size((2000, 3000)) == (1365, 2048)
    assert decode_upload(buf.getvalue()).shape == (2048, 1365, 3)
    assert open_upright(buf.getvalue()).size == (2000, 3000)  # no limit asked: the whole photo


def test_a_garment_photo_is_decoded_at_its_analysis_size(tmp_path: Path) -> None:
    path = big_jpeg(tmp_path / "big.jpg")
    rss, out = peak_rss_of("import sys; from pipeline.wardrobe.photo import decode_photo\n"
                           "photo = decode_photo(open(sys.argv[1], 'rb').read())\n"
                           "print('shape', photo.rgb.shape, photo.original_size)", path)
    assert "shape (1024, 768, 3) (6000, 8000)" in out
    assert rss < 300, f"peak RSS {rss:.0f} MB"


def test_a_whole_job_on_a_48_megapixel_photo_succeeds_within_2_gb(tmp_path: Path) -> None:
    sample = pytest.importorskip("pipeline.sample")
    person = Image.open(io.BytesIO(sample.sample_person())).convert("RGB")
    person.resize((6000, 8000), Image.Resampling.BILINEAR).save(tmp_path / "person.jpg", quality=90)
    (tmp_path / "garment.png").write_bytes(sample.sample_garment())
    command = [sys.executable, "-m", "functions.cli", "run", "person.jpg", "garment.png", "--bucket", "b",
               "--job-id", "big"]
    measured = measure(command, tmp_path, timeout=280)
    assert measured.returncode == 0, measured.output[-3000:]
    assert measured.peak_rss_mb < 2048, f"peak RSS {measured.peak_rss_mb:.0f} MB"
    avatar = json.loads(next((tmp_path / "b/work/avatar").glob("*/avatar.json")).read_text())
    assert avatar["image_size"] == [1536, 2048]
    assert "the photo (6000x8000) was worked on at 1536x2048, the pipeline's working size" in avatar["notes"]
    with Image.open(next((tmp_path / "b/work/avatar").glob("*/upright.png"))) as upright:
        assert upright.size == (1536, 2048)
    with Image.open(tmp_path / "b/results/big/photo.png") as result:
        assert max(result.size) <= WORKING_SIDE
