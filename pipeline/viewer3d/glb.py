"""The textured GLB (glTF 2.0 binary) of the dressed body, the avatar's untextured one, and a reader of their counts.

Written directly with numpy + struct rather than through trimesh: the file is one mesh, one material, one
texture, so ~150 lines give full control over what the Khronos validator checks (exact float32 accessor
min/max, 4-byte aligned buffer views, uint16 indices when they fit) and let the base-colour texture be
embedded as JPEG (a 1024x1024 atlas is ~0.2 MB at quality 90 against ~1.5 MB as PNG) with no re-encoding
or extras added by a third-party exporter. PIL encodes the image; nothing heavy is imported.

Conventions of the inputs:
- `vertices` are in anny's world frame (metres, z up, the person facing -y); the GLB is glTF's y up with
  the person facing +z, the same turn for `plain_glb` (the avatar's untextured body).
- `uvs` follow anny's (OBJ / OpenGL) convention: origin at the bottom-left of the texture, v up.
  `texture_rgb` is an ordinary image array, row 0 at the top. The writer flips v for glTF (origin top-left).
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np

ANNY_TO_GLTF = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)  # (x, y, z) <- (x, z, -y)
GENERATOR = "dropfit"
GLB_MAGIC = 0x46546C67  # b"glTF"
CHUNK_JSON = 0x4E4F534A  # b"JSON"
CHUNK_BIN = 0x004E4942  # b"BIN\0"
FLOAT, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
LINEAR, LINEAR_MIPMAP_LINEAR, CLAMP_TO_EDGE = 9729, 9987, 33071


def textured_glb(
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray,
    face_uvs: np.ndarray,
    texture_rgb: np.ndarray,
    *,
    name: str = "dropfit body",
    image_format: str = "JPEG",
    jpeg_quality: int = 90,
) -> bytes:
    """A GLB of a UV-mapped triangle mesh with `texture_rgb` (H, W, 3) uint8 as its base colour.

    Vertices are split at UV seams (one glTF vertex per distinct (vertex, uv) pair); normals are smooth
    across seams (computed on the unsplit mesh). Raises ValueError on inconsistent inputs.
    """
    _check_inputs(vertices, faces, uvs, face_uvs, texture_rgb)
    source, corner_uv, indices = _split_seams(faces, face_uvs)
    normals = _vertex_normals(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))[source]
    positions = (np.asarray(vertices, np.float64)[source] @ ANNY_TO_GLTF.T).astype(np.float32)
    normals = (normals @ ANNY_TO_GLTF.T).astype(np.float32)
    texcoords = np.asarray(uvs, np.float32)[corner_uv] * np.array([1, -1], np.float32) + np.array([0, 1], np.float32)
    image, mime = encode_texture(texture_rgb, image_format, jpeg_quality)
    builder = _BinaryBuilder()
    attributes = {
        "POSITION": builder.accessor(positions, "VEC3", ARRAY_BUFFER, bounds=True),
        "NORMAL": builder.accessor(normals, "VEC3", ARRAY_BUFFER),
        "TEXCOORD_0": builder.accessor(texcoords.astype(np.float32), "VEC2", ARRAY_BUFFER),
    }
    index_accessor = _indices(builder, indices, len(positions))
    image_view = builder.view(image)
    document = _document(name, attributes, index_accessor, image_view, mime, builder)
    return pack_glb(document, builder.data())


def plain_glb(vertices: np.ndarray, faces: np.ndarray, *, name: str = "dropfit body") -> bytes:
    """An untextured GLB of a triangle mesh (positions, smooth normals, indices; the default material), in the
    same frame turn as `textured_glb`. Raises ValueError on a mesh it cannot write."""
    _check_mesh(vertices, faces)
    points = np.asarray(vertices, np.float64)
    normals = (_vertex_normals(points, np.asarray(faces, np.int64)) @ ANNY_TO_GLTF.T).astype(np.float32)
    builder = _BinaryBuilder()
    attributes = {
        "POSITION": builder.accessor((points @ ANNY_TO_GLTF.T).astype(np.float32), "VEC3", ARRAY_BUFFER, bounds=True),
        "NORMAL": builder.accessor(normals, "VEC3", ARRAY_BUFFER),
    }
    primitive = {"attributes": attributes, "indices": _indices(builder, np.asarray(faces), len(points)), "mode": 4}
    return pack_glb(_scene(name, primitive, {}, builder), builder.data())


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> None:
    if np.ndim(vertices) != 2 or np.shape(vertices)[1] != 3 or len(vertices) == 0:
        raise ValueError(f"vertices must be (V, 3), got {np.shape(vertices)}")
    if np.ndim(faces) != 2 or np.shape(faces)[1] != 3 or len(faces) == 0:
        raise ValueError(f"faces must be (F, 3), got {np.shape(faces)}")
    if np.min(faces) < 0 or np.max(faces) >= len(vertices):
        raise ValueError("faces index outside vertices")
    if not np.all(np.isfinite(vertices)):
        raise ValueError("vertices must be finite")


def _indices(builder: _BinaryBuilder, triangles: np.ndarray, vertex_count: int) -> int:
    """The triangles' index accessor: uint16 when the vertices fit, else uint32."""
    index_type = np.uint16 if vertex_count < 65535 else np.uint32
    return builder.accessor(triangles.astype(index_type).ravel(), "SCALAR", ELEMENT_ARRAY_BUFFER)


def _check_inputs(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, face_uvs: np.ndarray, texture_rgb: np.ndarray
) -> None:
    """Refuse inputs the writer would otherwise have to guess about (never silently fixed)."""
    _check_mesh(vertices, faces)
    if np.shape(face_uvs) != np.shape(faces):
        raise ValueError(f"face_uvs {np.shape(face_uvs)} must match faces {np.shape(faces)}")
    if np.ndim(uvs) != 2 or np.shape(uvs)[1] != 2:
        raise ValueError(f"uvs must be (V', 2), got {np.shape(uvs)}")
    if np.min(face_uvs) < 0 or np.max(face_uvs) >= len(uvs):
        raise ValueError("face_uvs index outside uvs")
    if not np.all(np.isfinite(uvs)):
        raise ValueError("uvs must be finite")
    rgb = np.asarray(texture_rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) == 0:
        raise ValueError(f"texture_rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")


def _split_seams(faces: np.ndarray, face_uvs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source vertex, uv index) of each glTF vertex, and (F, 3) triangle indices into them.

    glTF vertices are ordered by first use in `faces`, so the split is deterministic and cache friendly.
    """
    corners_v = np.asarray(faces, np.int64).ravel()
    corners_uv = np.asarray(face_uvs, np.int64).ravel()
    keys = corners_v * (int(corners_uv.max()) + 1) + corners_uv
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    corner_of_vertex = first[order]
    indices = rank[inverse.ravel()].reshape(-1, 3)
    return corners_v[corner_of_vertex], corners_uv[corner_of_vertex], indices


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals; a vertex on no non-degenerate face gets +z (anny's up)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)
    sums = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(sums, faces[:, k], face_normals)
    lengths = np.linalg.norm(sums, axis=1, keepdims=True)
    unit = np.divide(sums, lengths, out=np.zeros_like(sums), where=lengths > 1e-20)
    unit[lengths[:, 0] <= 1e-20] = (0.0, 0.0, 1.0)
    return unit


def encode_texture(texture_rgb: np.ndarray, image_format: str = "JPEG", jpeg_quality: int = 90) -> tuple[bytes, str]:
    """(H, W, 3) uint8 -> (encoded bytes, MIME type) for JPEG or PNG."""
    from PIL import Image

    fmt = image_format.upper()
    if fmt not in ("JPEG", "PNG"):
        raise ValueError(f"image_format must be JPEG or PNG, got {image_format!r}")
    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(texture_rgb), mode="RGB")
    if fmt == "JPEG":
        image.save(buf, format="JPEG", quality=jpeg_quality, optimize=True)
    else:
        image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue(), f"image/{fmt.lower()}"


class _BinaryBuilder:
    """The BIN chunk under construction: buffer views padded to 4 bytes, and accessors on them."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.length = 0
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, payload: bytes, target: int | None = None) -> int:
        """Append `payload` as a buffer view starting on a 4-byte boundary; its index."""
        entry: dict[str, Any] = {"buffer": 0, "byteOffset": self.length, "byteLength": len(payload)}
        if target is not None:
            entry["target"] = target
        self.views.append(entry)
        padding = -len(payload) % 4
        self.parts += [payload, b"\0" * padding]
        self.length += len(payload) + padding
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int, *, bounds: bool = False) -> int:
        """Append a tightly packed float32 / uint16 / uint32 array and its accessor; its index."""
        component = {np.dtype(np.float32): FLOAT, np.dtype(np.uint16): UNSIGNED_SHORT,
                     np.dtype(np.uint32): UNSIGNED_INT}[array.dtype]
        entry: dict[str, Any] = {"bufferView": self.view(np.ascontiguousarray(array).tobytes(), target),
                                 "componentType": component, "count": int(len(array)), "type": kind}
        if bounds:
            entry["min"] = [float(v) for v in array.min(axis=0)]
            entry["max"] = [float(v) for v in array.max(axis=0)]
        self.accessors.append(entry)
        return len(self.accessors) - 1

    def data(self) -> bytes:
        return b"".join(self.parts)


def _document(
    name: str, attributes: dict[str, int], indices: int, image_view: int, mime: str, builder: _BinaryBuilder
) -> dict[str, Any]:
    """The glTF JSON: one scene, node, mesh, PBR material, texture, sampler and image."""
    material = {
        "name": f"{name} material",
        "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 0.8},
        "doubleSided": False,
    }
    primitive = {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}
    return _scene(name, primitive, {
        "materials": [material],
        "textures": [{"sampler": 0, "source": 0}],
        "samplers": [{"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR,
                      "wrapS": CLAMP_TO_EDGE, "wrapT": CLAMP_TO_EDGE}],
        "images": [{"name": f"{name} texture", "bufferView": image_view, "mimeType": mime}],
    }, builder)


def _scene(name: str, primitive: dict[str, Any], extra: dict[str, Any], builder: _BinaryBuilder) -> dict[str, Any]:
    """The glTF JSON of one scene, node and mesh of one primitive, with `extra` (materials, textures, ...)."""
    return {
        "asset": {"version": "2.0", "generator": GENERATOR},
        "scene": 0,
        "scenes": [{"name": name, "nodes": [0]}],
        "nodes": [{"name": name, "mesh": 0}],
        "meshes": [{"name": name, "primitives": [primitive]}],
        **extra,
        "accessors": builder.accessors,
        "bufferViews": builder.views,
        "buffers": [{"byteLength": builder.length}],
    }


def pack_glb(document: dict[str, Any], binary: bytes) -> bytes:
    """The 12-byte header, the JSON chunk (space padded) and the BIN chunk (zero padded, already aligned)."""
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    header = struct.pack("<III", GLB_MAGIC, 2, total)
    json_chunk = struct.pack("<II", len(text), CHUNK_JSON) + text
    return header + json_chunk + struct.pack("<II", len(binary), CHUNK_BIN) + binary


def read_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A GLB's JSON document and its BIN chunk (empty when it has none). Raises ValueError if not a GLB."""
    if len(data) < 20:
        raise ValueError("too short to be a GLB")
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != 2 or total != len(data):
        raise ValueError(f"not a glTF 2.0 binary (magic {magic:#x}, version {version}, length {total})")
    json_length, json_type = struct.unpack_from("<II", data, 12)
    if json_type != CHUNK_JSON:
        raise ValueError("the first GLB chunk is not JSON")
    document = json.loads(data[20:20 + json_length])
    binary = b""
    offset = 20 + json_length
    if offset + 8 <= len(data):
        bin_length, bin_type = struct.unpack_from("<II", data, offset)
        if bin_type == CHUNK_BIN:
            binary = data[offset + 8:offset + 8 + bin_length]
    return document, binary


def glb_summary(data: bytes) -> dict[str, int]:
    """Counts read back from a GLB's JSON chunk: vertices, triangles, textures, materials, images, bytes."""
    document, _ = read_glb(data)
    accessors = document.get("accessors", [])
    vertices = triangles = 0
    for mesh in document.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            vertices += accessors[primitive["attributes"]["POSITION"]]["count"]
            if primitive.get("mode", 4) == 4 and "indices" in primitive:
                triangles += accessors[primitive["indices"]]["count"] // 3
    return {
        "vertices": vertices,
        "triangles": triangles,
        "textures": len(document.get("textures", [])),
        "materials": len(document.get("materials", [])),
        "images": len(document.get("images", [])),
        "bytes": len(data),
    }


def accessor_array(document: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """The data of a tightly packed accessor as a numpy array (shape (count,) or (count, n))."""
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = {FLOAT: np.float32, UNSIGNED_SHORT: np.uint16, UNSIGNED_INT: np.uint32}[accessor["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[accessor["type"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    flat = np.frombuffer(binary, dtype=dtype, count=accessor["count"] * width, offset=start)
    return flat if width == 1 else flat.reshape(-1, width)


def image_bytes(document: dict[str, Any], binary: bytes, index: int = 0) -> bytes:
    """The encoded bytes of an image embedded in the BIN chunk."""
    view = document["bufferViews"][document["images"][index]["bufferView"]]
    start = view.get("byteOffset", 0)
    return binary[start:start + view["byteLength"]]
