"""anny posed through a handful of bones, exactly, at the cost of a 16-node chain instead of 104 bones.

With anny's 'local-ref' pose deltas, identity deltas give the reference pose (skinning transforms T0_j),
and a delta D_a on bone a turns everything below a, in world axes, about a's head. So when only the
bones in `bones` move, each bone j's skinning transform is T_j = G_a(j) T0_j, with a(j) its nearest moving
ancestor (or the root) and G_a the product of the moves [D | q - D q] (q: the head in the reference pose)
from the root down to a. A skinned point sum_j w_j T_j p then equals sum_a G_a e_a, with the partial points
e_a = sum_{j in a} w_j T0_j p fixed for a fixed shape: one small product per group and step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.body.rig import Rig


@dataclass(frozen=True)
class Chain:
    labels: tuple[str, ...]  # the moving bones, parents before children
    bones: Any  # (n,) long: their anny indices
    parents: tuple[int, ...]  # each one's nearest moving ancestor as a group index (0: the root group)
    group: Any  # (J,) long: the group every anny bone moves with
    membership: Any  # (J, n + 1) float: the same, one-hot

    @classmethod
    def build(cls, rig: Rig, labels: tuple[str, ...]) -> Chain:
        import torch

        anny_parents = [int(p) for p in rig.model.bone_parents]
        index = [rig.bone_index(label) for label in labels]

        def group(j: int) -> int:  # 0 for the root group, else 1 + position in `labels`
            while j > 0 and j not in index:
                j = anny_parents[j]
            return 0 if j <= 0 else 1 + index.index(j)

        parents = tuple(group(anny_parents[j]) for j in index)
        if any(p > i for i, p in enumerate(parents, start=1)):
            raise ValueError("list the moving bones parents first")
        groups = torch.tensor([group(j) for j in range(len(rig.bone_labels))])
        membership = torch.nn.functional.one_hot(groups, len(labels) + 1).to(torch.float32)
        return cls(labels=labels, bones=torch.tensor(index), parents=parents, group=groups, membership=membership)

    def reference(self, rig: Rig, rest_poses: Any) -> tuple[Any, Any]:
        """Skinning transforms (J, 4, 4) of the reference pose and the moving bones' heads in it (n, 3)."""
        import torch

        identity = torch.eye(4, dtype=rest_poses.dtype).expand(1, len(rig.bone_labels), 4, 4)
        transforms, poses = rig.model.get_bone_transforms(identity, rest_poses[None])
        return transforms[0], poses[0, self.bones, :3, 3]

    def keypoint_partials(self, rig: Rig, coeffs: Any, transforms: Any) -> Any:
        """(K, n + 1, 4) partial points of the COCO keypoints (see `Rig.kp_points`)."""
        import torch

        points = rig.kp_points[0] + torch.einsum("b,bkjd->kjd", coeffs, rig.kp_points[1:])
        moved = torch.einsum("jxy,kjy->kjx", transforms[:, :3, :3], points)
        moved = moved + rig.kp_ones[..., None] * transforms[:, :3, 3]
        return torch.cat([torch.einsum("kjx,ja->kax", moved, self.membership),
                          (rig.kp_ones @ self.membership)[..., None]], 2)

    def vertex_partials(self, bones: Any, weights: Any, rest: Any, transforms: Any) -> Any:
        """(N, n + 1, 4) partial points of vertices with sparse skinning (bone indices and weights, (N, M))
        and rest positions (N, 3)."""
        import torch

        count, groups = len(rest), len(self.labels) + 1
        blend = transforms[bones, :3, :]  # (N, M, 3, 4)
        moved = weights[..., None] * ((blend[..., :3] @ rest[:, None, :, None])[..., 0] + blend[..., 3])
        slot = (torch.arange(count)[:, None] * groups + self.group[bones]).ravel()
        points = moved.new_zeros(count * groups, 3).index_add(0, slot, moved.reshape(-1, 3))
        ones = weights.new_zeros(count * groups).index_add(0, slot, weights.ravel())
        return torch.cat([points, ones[:, None]], 1).reshape(count, groups, 4)

    def moves(self, rotvecs: Any, heads: Any) -> Any:
        """(n + 1, 4, 4) group transforms G for axis-angle rotations (n, 3) of the moving bones about their
        reference heads (n, 3), each composed onto its parent's."""
        import roma
        import torch

        rotations = roma.rotvec_to_rotmat(rotvecs)
        local = torch.cat([torch.cat([rotations, (heads - (rotations @ heads[..., None])[..., 0])[..., None]], 2),
                           rotvecs.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(len(rotvecs), 1, 4)], 1)
        groups = [torch.eye(4, dtype=rotvecs.dtype)]
        for i, parent in enumerate(self.parents):
            groups.append(groups[parent] @ local[i])
        return torch.stack(groups)

    @staticmethod
    def apply(groups: Any, partials: Any) -> Any:
        """(N, 3) posed points sum_a G_a e_a from group transforms (A, 4, 4) and partial points (N, A, 4)."""
        import torch

        return torch.einsum("axy,nay->nx", groups[:, :3, :], partials)
