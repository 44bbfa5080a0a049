"""anny and what the fit precomputes from it once, so that its inner loop never skins the whole mesh.

anny skins all 13,718 vertices and then regresses the 23 COCO keypoints from them. Both steps are linear,
so the keypoints follow from the bone transforms alone: keypoint k = sum_j T_j @ c_kj, where the 4-vector
c_kj = sum_v w_kv a_vj [rest_v; 1] (w: regressor weights, a: skinning weights) is itself linear in the
shape's blendshape coefficients (`kp_points`, `kp_ones`). The silhouette terms use ~2k surface samples
(`sample_*`), and the body's height only the few vertices that can be its top or bottom (`extremes_basis`).
Everything here is torch, float32, unbatched; `chain` does the posing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RIG_CACHE_VERSION = 1  # bump when `from_anny` computes anything differently: the cached bases are then rebuilt
PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")  # anny's default phenotype order
SAMPLE_SPACING_M = 0.03  # surface samples for the silhouette terms: one vertex per cell of this size


@dataclass(frozen=True)
class Rig:
    """anny plus the precomputed bases. Tensors are torch, float32 (indices: int64)."""

    model: Any  # anny.Anny, float32, LBS skinning
    keypoint_names: tuple[str, ...]  # COCO-23 order
    bone_labels: tuple[str, ...]
    kp_points: Any  # (B+1, K, J, 3): sum_v w_kv a_vj rest_v, for the template (row 0) and each blendshape
    kp_ones: Any  # (K, J): sum_v w_kv a_vj
    samples: Any  # (S,) long: vertices spread evenly over the surface, for the silhouette terms
    sample_basis: Any  # (B+1, S, 3): the samples' template positions (row 0) and blendshapes
    sample_bones: Any  # (S, M) long: their skinning bones
    sample_weights: Any  # (S, M): and weights
    extremes_basis: Any  # (B+1, E): z of the vertices that can be the body's top or bottom, and blendshapes
    faces: np.ndarray  # (F, 3) int32
    uvs: np.ndarray | None  # (V', 2) float32
    face_uvs: np.ndarray | None  # (F, 3) int32

    @classmethod
    def from_anny(cls, model: Any) -> Rig:
        import anny
        import torch

        regressor = anny.KeypointsRegressor.coco(model)
        weights = regressor.regression_weights.to(torch.float32)  # (K, V)
        skin = model.dense_vertex_bone_weights.to(torch.float32)  # (V, J)
        shapes = torch.cat([model.template_vertices[None], model.blendshapes]).to(torch.float32)  # (B+1, V, 3)
        points, ones = [], []
        for row in weights:
            used = torch.nonzero(row).squeeze(1)
            weighted = row[used, None] * skin[used]  # (S, J)
            ones.append(weighted.sum(0))
            points.append(torch.einsum("sj,bsd->bjd", weighted, shapes[:, used]))
        uvs = model.texture_coordinates
        face_uvs = model.face_texture_coordinate_indices
        samples = torch.from_numpy(spread_vertices(model.template_vertices.cpu().numpy(), SAMPLE_SPACING_M))
        extremes = torch.from_numpy(extreme_vertices(model))
        return cls(
            model=model,
            keypoint_names=tuple(regressor.labels),
            bone_labels=tuple(model.bone_labels),
            kp_points=torch.stack(points, 1).contiguous(),
            kp_ones=torch.stack(ones).contiguous(),
            samples=samples,
            sample_basis=shapes[:, samples].contiguous(),
            sample_bones=model.vertex_bone_indices[samples].contiguous(),
            sample_weights=model.vertex_bone_weights[samples].to(torch.float32).contiguous(),
            extremes_basis=shapes[:, extremes, 2].contiguous(),
            faces=model.faces.cpu().numpy().astype(np.int32),
            uvs=None if uvs is None else uvs.cpu().numpy().astype(np.float32),
            face_uvs=None if face_uvs is None else face_uvs.cpu().numpy().astype(np.int32),
        )

    def bases(self) -> dict[str, Any]:
        """What `from_anny` derived from the model (tensors, arrays as tensors, names), for a cache file."""
        import torch

        arrays = {"faces": self.faces, "uvs": self.uvs, "face_uvs": self.face_uvs}
        return {
            "keypoint_names": list(self.keypoint_names),
            **{name: getattr(self, name) for name in BASES},
            **{name: None if value is None else torch.from_numpy(value) for name, value in arrays.items()},
        }

    @classmethod
    def from_bases(cls, model: Any, bases: dict[str, Any]) -> Rig:
        """The rig of `model` from the output of `bases()` (read back from a cache file)."""

        def array(name: str) -> np.ndarray | None:
            value = bases[name]
            return None if value is None else value.numpy()

        faces = array("faces")
        if faces is None:
            raise ValueError("cached rig bases have no faces")
        return cls(model=model, keypoint_names=tuple(bases["keypoint_names"]), bone_labels=tuple(model.bone_labels),
                   faces=faces, uvs=array("uvs"), face_uvs=array("face_uvs"),
                   **{name: bases[name] for name in BASES})

    def bone_index(self, label: str) -> int:
        return self.bone_labels.index(label)

    def coefficients(self, phenotypes: Any) -> Any:
        """(6,) phenotypes in PHENOTYPES order -> (B,) blendshape coefficients."""
        empty = phenotypes.new_zeros((1, 0))
        return self.model._get_phenotype_blendshape_coefficients(phenotypes[None], empty, empty)[0]

    def rest_bone_poses(self, coeffs: Any) -> Any:
        """(J, 4, 4) rest bone poses for a shape: anny's cached-orientation rest model without its vertices."""
        import roma
        import torch

        m = self.model
        heads = m.template_bone_heads + torch.einsum("b,bjd->jd", coeffs, m.bone_heads_blendshapes)
        cross = m.bone_template_orientation_matrices
        cross = cross + torch.einsum("b,bjxy->jxy", coeffs, m.bone_orientation_blendshapes)
        return roma.Rigid(linear=roma.special_procrustes(cross), translation=heads).to_homogeneous()

    def deltas(self, rotvecs: Any, bones: Any) -> Any:
        """(1, J, 4, 4) pose deltas (anny 'local-ref': world-aligned axes at each bone's head), rotations
        from the (n, 3) axis-angle vectors of the `bones` listed, identity elsewhere."""
        import roma
        import torch

        eye = torch.eye(4, dtype=rotvecs.dtype).repeat(len(self.bone_labels), 1, 1)
        eye[bones, :3, :3] = roma.rotvec_to_rotmat(rotvecs)
        return eye[None]

    def rest_vertices(self, coeffs: Any) -> Any:
        """(V, 3) rest-pose (A-pose) vertices for a shape."""
        import torch

        return self.model.template_vertices + torch.einsum("b,bvd->vd", coeffs, self.model.blendshapes)

    def sample_rest(self, coeffs: Any) -> Any:
        """(S, 3) rest positions of the surface samples."""
        import torch

        return self.sample_basis[0] + torch.einsum("b,bsd->sd", coeffs, self.sample_basis[1:])

    def skin(self, transforms: Any, rest: Any, weights: Any | None = None) -> Any:
        """(N, 3) posed vertices: LBS of rest vertices (all of them, or any N with their (N, J) `weights`)."""
        weights = self.model.dense_vertex_bone_weights if weights is None else weights
        blend = (weights @ transforms[:, :3, :].reshape(len(self.bone_labels), 12)).reshape(-1, 3, 4)
        return (blend[:, :, :3] @ rest[:, :, None])[:, :, 0] + blend[:, :, 3]

    def rest_height(self, coeffs: Any) -> Any:
        """The rest body's height (top of the head to the soles) in anny's units, differentiable in the shape."""
        z = self.extremes_basis[0] + coeffs @ self.extremes_basis[1:]
        return z.max() - z.min()


BASES = ("kp_points", "kp_ones", "samples", "sample_basis", "sample_bones", "sample_weights", "extremes_basis")


def spread_vertices(vertices: np.ndarray, spacing: float) -> np.ndarray:
    """Indices of one vertex per occupied cube of side `spacing`: a roughly even spread over the surface."""
    cells = np.floor(vertices / spacing).astype(np.int64)
    _, first = np.unique(cells, axis=0, return_index=True)
    return np.sort(first)


def extreme_vertices(model: Any, keep: int = 64, random: int = 200) -> np.ndarray:
    """Indices of the vertices that can be the highest or lowest of a body: the `keep` highest and lowest for
    every corner of the phenotype box and for `random` phenotype vectors inside it (seeded)."""
    import itertools

    import torch

    corners = torch.tensor(list(itertools.product([0.0, 1.0], repeat=len(PHENOTYPES))))
    inside = torch.rand(random, len(PHENOTYPES), generator=torch.Generator().manual_seed(0))
    phenotypes = torch.cat([corners, inside]).to(model.dtype)
    empty = phenotypes.new_zeros((len(phenotypes), 0))
    with torch.no_grad():
        coeffs = model._get_phenotype_blendshape_coefficients(phenotypes, empty, empty)
        z = model.template_vertices[:, 2] + coeffs @ model.blendshapes[:, :, 2]
    order = torch.argsort(z, dim=1)
    return torch.unique(torch.cat([order[:, :keep].ravel(), order[:, -keep:].ravel()])).numpy()
