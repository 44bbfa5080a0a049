"""The textured GLB writer: validator-clean output (Khronos glTF validator), counts, axes, UVs and texture.

The validator runs through node (`tests/gltf_validator.py`); those checks skip with the reason when node or
the npm package is missing. The anny check needs anny's cache in `.cache/anny` (built if missing, ~1 min).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from gltf_validator import issue_codes, validate_glb
from PIL import Image

from pipeline.viewer3d import glb_summary, textured_glb
from pipeline.viewer3d.glb import ANNY_TO_GLTF, accessor_array, image_bytes, pack_glb, plain_glb, read_glb

ROOT = Path(__file__).resolve().parents[1]
ACCEPTED_WARNINGS: set[str] = set()  # the writer's output has none today; add a code here only with a reason
ACCEPTED_INFOS = {
    "ACCESSOR_INDEX_TRIANGLE_DEGENERATE",  # a body model may hold zero-area triangles
    "IMAGE_NPOT_DIMENSIONS",  # the small test textures; allowed by glTF 2.0, the body atlas itself is 1024x1024
}


def quad() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 1 m square in anny's frame, in the x-z plane facing the viewer (-y): vertices, faces, uvs, face_uvs."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    return vertices, faces, uvs, faces.copy()


def cube() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A unit cube (8 vertices, 12 outward triangles), each side on its own cell of a 3x2 atlas: UV seams on
    every edge, so the GLB needs 24 vertices."""
    vertices = np.array([[x, y, z] for z in (-0.5, 0.5) for y in (-0.5, 0.5) for x in (-0.5, 0.5)])
    sides = [[0, 2, 6, 4], [1, 3, 7, 5], [0, 1, 5, 4], [2, 3, 7, 6], [0, 1, 3, 2], [4, 5, 7, 6]]
    faces, uvs, face_uvs = [], [], []
    for side, (a, b, c, d) in enumerate(sides):
        u0, v0 = (side % 3) / 3, (side // 3) / 2
        uvs += [[u0, v0], [u0 + 1 / 3, v0], [u0 + 1 / 3, v0 + 0.5], [u0, v0 + 0.5]]
        first = 4 * side
        for tri, tri_uv in (([a, b, c], [0, 1, 2]), ([a, c, d], [0, 2, 3])):
            normal = np.cross(vertices[tri[1]] - vertices[tri[0]], vertices[tri[2]] - vertices[tri[0]])
            outward = normal @ vertices[tri].mean(0) > 0
            faces.append(tri if outward else tri[::-1])
            face_uvs.append([first + k for k in (tri_uv if outward else tri_uv[::-1])])
    return vertices, np.array(faces), np.array(uvs), np.array(face_uvs)


def gradient_texture(height: int, width: int) -> np.ndarray:
    """A smooth colour gradient with a grid every 64 px: an atlas-like image (not noise, which JPEG can't
    compress and no baked texture looks like)."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([cols / width, rows / height, 0.5 + 0.5 * np.sin(cols / 37.0 + rows / 53.0)], axis=-1)
    rgb[(rows.astype(int) % 64 == 0) | (cols.astype(int) % 64 == 0)] = 0.1
    return (rgb * 255 + 0.5).astype(np.uint8)


def assert_valid(data: bytes) -> dict:
    """The validator's report, after asserting no errors and only accepted warnings and infos."""
    report = validate_glb(data)
    assert report["issues"]["numErrors"] == 0, issue_codes(report, 0)
    assert set(issue_codes(report, 1)) <= ACCEPTED_WARNINGS, report["issues"]["messages"]
    assert set(issue_codes(report, 2)) <= ACCEPTED_INFOS, report["issues"]["messages"]
    assert report["info"]["generator"] == "dropfit" and report["info"]["hasTextures"]
    return report


# ---- small meshes ------------------------------------------------------------------------------------------


def test_textured_quad_is_valid_and_counted() -> None:
    data = textured_glb(*quad(), gradient_texture(32, 48))
    report = assert_valid(data)
    assert glb_summary(data) == {"vertices": 4, "triangles": 2, "textures": 1, "materials": 1, "images": 1,
                                 "bytes": len(data)}
    assert report["info"]["totalVertexCount"] == 4 and report["info"]["totalTriangleCount"] == 2


def test_textured_cube_splits_at_uv_seams_and_is_valid() -> None:
    data = textured_glb(*cube(), gradient_texture(64, 96), image_format="PNG")
    report = assert_valid(data)
    summary = glb_summary(data)
    assert (summary["vertices"], summary["triangles"], summary["textures"], summary["materials"]) == (24, 12, 1, 1)
    assert report["info"]["resources"][1]["mimeType"] == "image/png"


def test_anny_up_becomes_gltf_y_and_anny_front_becomes_gltf_z() -> None:
    vertices = np.array([[0, 0, 1], [0, -1, 0], [1, 0, 0]], dtype=np.float64)  # up, front, right in anny
    faces = np.array([[0, 1, 2]])
    data = textured_glb(vertices, faces, np.array([[0, 0], [1, 0], [0, 1]]), faces, gradient_texture(8, 8))
    document, binary = read_glb(data)
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    positions = accessor_array(document, binary, attributes["POSITION"])
    np.testing.assert_allclose(positions, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert document["accessors"][attributes["POSITION"]]["min"] == [0, 0, 0]


def test_front_facing_normals_point_to_gltf_z_and_v_is_flipped() -> None:
    data = textured_glb(*quad(), gradient_texture(16, 16))
    document, binary = read_glb(data)
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    np.testing.assert_allclose(accessor_array(document, binary, attributes["NORMAL"]), [[0, 0, 1]] * 4, atol=1e-6)
    texcoords = accessor_array(document, binary, attributes["TEXCOORD_0"])  # anny v up -> glTF v down
    np.testing.assert_allclose(texcoords, [[0, 1], [1, 1], [1, 0], [0, 0]])


def test_embedded_texture_decodes_to_the_same_image() -> None:
    texture = gradient_texture(40, 72)
    for image_format, mime in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
        document, binary = read_glb(textured_glb(*quad(), texture, image_format=image_format))
        assert document["images"][0]["mimeType"] == mime
        decoded = np.asarray(Image.open(io.BytesIO(image_bytes(document, binary))).convert("RGB"))
        assert decoded.shape == texture.shape
        if image_format == "PNG":
            assert np.array_equal(decoded, texture)


def test_buffer_views_are_aligned_and_material_is_textured_pbr() -> None:
    document, binary = read_glb(textured_glb(*cube(), gradient_texture(30, 30)))
    assert all(view["byteOffset"] % 4 == 0 for view in document["bufferViews"])
    assert document["buffers"][0]["byteLength"] == len(binary) and len(binary) % 4 == 0
    pbr = document["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorTexture"] == {"index": 0} and pbr["metallicFactor"] == 0.0
    assert document["textures"][0] == {"sampler": 0, "source": 0}


@pytest.mark.parametrize(
    "change",
    [
        {"texture_rgb": np.zeros((4, 4, 3), np.float32)},
        {"texture_rgb": np.zeros((4, 4), np.uint8)},
        {"face_uvs": np.array([[0, 1, 2]])},
        {"faces": np.array([[0, 1, 9], [0, 2, 3]])},
    ],
)
def test_inconsistent_inputs_are_refused(change: dict) -> None:
    vertices, faces, uvs, face_uvs = quad()
    arguments = {"vertices": vertices, "faces": faces, "uvs": uvs, "face_uvs": face_uvs,
                 "texture_rgb": gradient_texture(4, 4)} | change
    with pytest.raises(ValueError):
        textured_glb(**arguments)


def test_the_validator_harness_reports_errors() -> None:
    """A GLB whose POSITION max is wrong must come back with errors: the harness is not a no-op."""
    document, binary = read_glb(textured_glb(*quad(), gradient_texture(16, 16)))
    position = document["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    document["accessors"][position]["max"] = [5.0, 5.0, 5.0]
    report = validate_glb(pack_glb(document, binary))
    assert report["issues"]["numErrors"] > 0 and "ACCESSOR_MAX_MISMATCH" in issue_codes(report, 0)


# ---- the real anny mesh ------------------------------------------------------------------------------------


def test_the_untextured_body_glb_is_valid_and_turned_like_the_textured_one(anny_mesh) -> None:
    vertices, faces, _, _ = anny_mesh
    data = plain_glb(vertices, faces)
    report = validate_glb(data)
    assert report["issues"]["numErrors"] == 0, issue_codes(report, 0)
    assert set(issue_codes(report, 1)) <= ACCEPTED_WARNINGS, report["issues"]["messages"]
    assert report["info"]["totalVertexCount"] == len(vertices) and report["info"]["totalTriangleCount"] == len(faces)
    document, binary = read_glb(data)
    positions = accessor_array(document, binary, document["meshes"][0]["primitives"][0]["attributes"]["POSITION"])
    np.testing.assert_allclose(positions, vertices @ ANNY_TO_GLTF.T, atol=1e-6)
    with pytest.raises(ValueError):
        plain_glb(vertices, faces + len(vertices))


@pytest.fixture(scope="module")
def anny_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """anny's rest mesh with its UVs: (13718, 3) vertices, (27420, 3) faces, (21334, 2) uvs, face_uvs."""
    pytest.importorskip("torch")
    pytest.importorskip("anny")
    from pipeline.body.anny_model import build_anny

    model = build_anny(ROOT / ".cache" / "anny")
    return (model.template_vertices.cpu().numpy(), model.faces.cpu().numpy(),
            model.texture_coordinates.cpu().numpy(), model.face_texture_coordinate_indices.cpu().numpy())


def test_anny_body_glb_is_valid_and_small(anny_mesh, record_property) -> None:
    vertices, faces, uvs, face_uvs = anny_mesh
    texture = gradient_texture(1024, 1024)
    textured_glb(*anny_mesh, texture)  # warm-up (imports, allocator)
    start = time.perf_counter()
    data = textured_glb(*anny_mesh, texture)
    seconds = time.perf_counter() - start
    report = assert_valid(data)
    summary = glb_summary(data)
    record_property("anny_glb_bytes", len(data))
    record_property("anny_glb_export_s", round(seconds, 3))
    assert summary["triangles"] == len(faces) == 27420
    assert len(vertices) <= summary["vertices"] <= len(faces) * 3
    assert report["info"]["totalVertexCount"] == summary["vertices"]
    assert len(data) < 2_000_000, len(data)
