"""The body's shape as the fit's inner loop sees it: what a phenotype vector fixes, exactly or linearised.

`shape_terms` runs anny's shape pipeline (blendshape coefficients, rest bones, reference pose) and the
chain's partial points: exact and differentiable, but ~10 ms a step with its backward. `linearise` takes
finite-difference slopes once (~50 ms) so the shape stage's steps cost a few multiply-adds instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.body.chain import Chain
from pipeline.body.rig import Rig

LINEAR_FIELDS = ("heads", "keypoints", "samples", "scale")  # the Shape fields the loss reads


@dataclass
class Shape:
    """What a phenotype vector fixes for the inner loop: the chain's partial points, heads and the scale."""

    coeffs: Any  # (B,) blendshape coefficients
    reference: Any  # (J, 4, 4) skinning transforms of the reference pose (identity deltas)
    heads: Any  # (n, 3) the moving bones' heads in the reference pose
    keypoints: Any  # (K, n + 1, 4) partial points of the COCO keypoints
    samples: Any  # (S, n + 1, 4) partial points of the surface samples
    scale: Any  # metres per anny unit, so that the rest body is `height_m` tall


def shape_terms(rig: Rig, chain: Chain, phenotypes: Any, height_m: float) -> Shape:
    """The `Shape` of a phenotype vector (differentiable in it, at ~10 ms a step with its backward: the
    shape stage uses `linearise` instead)."""
    coeffs = rig.coefficients(phenotypes)
    reference, heads = chain.reference(rig, rig.rest_bone_poses(coeffs))
    return Shape(
        coeffs=coeffs, reference=reference, heads=heads,
        keypoints=chain.keypoint_partials(rig, coeffs, reference),
        samples=chain.vertex_partials(rig.sample_bones, rig.sample_weights, rig.sample_rest(coeffs), reference),
        scale=height_m / rig.rest_height(coeffs),
    )


@dataclass
class LinearShape:
    """A `Shape` as a function of the free phenotypes, piecewise linear about a start (one slope for going
    up, one for going down: anny interpolates phenotypes linearly between anchors, so slopes break there).
    Evaluating it costs a few multiply-adds, where an exact `shape_terms` costs ~10 ms with its backward."""

    base: Shape
    start: Any  # (6,) phenotypes
    free: Any  # (P,) long: indices of the free phenotypes
    up: dict[str, Any]  # field -> (P, *shape) slope when a phenotype grows
    down: dict[str, Any]  # field -> (P, *shape) slope when it shrinks

    def at(self, phenotypes: Any) -> Shape:
        import torch

        change = phenotypes[self.free] - self.start[self.free]
        rise, fall = change.clamp(min=0), change.clamp(max=0)
        values = {
            name: getattr(self.base, name) + torch.tensordot(rise, self.up[name], 1)
            + torch.tensordot(fall, self.down[name], 1)
            for name in LINEAR_FIELDS
        }
        return Shape(coeffs=self.base.coeffs, reference=self.base.reference, **values)


def linearise(rig: Rig, chain: Chain, phenotypes: Any, free: Any, height_m: float, step: float = 0.05) -> LinearShape:
    """Finite-difference slopes of the shape terms in each free phenotype, both ways (one-sided at 0 and 1)."""
    import torch

    with torch.no_grad():
        start = phenotypes.detach().clone()
        base = shape_terms(rig, chain, start, height_m)
        up: list[dict[str, Any]] = []
        down: list[dict[str, Any]] = []
        for i in free.tolist():
            rise = slope(rig, chain, base, start, i, step, height_m)
            fall = slope(rig, chain, base, start, i, -step, height_m)
            either = rise if rise is not None else fall
            if either is None:
                raise ValueError(f"a phenotype step of {step} leaves [0, 1] both ways")
            up.append(either)
            down.append(fall if fall is not None else either)
    return LinearShape(
        base=base, start=start, free=free,
        up={name: torch.stack([s[name] for s in up]) for name in LINEAR_FIELDS},
        down={name: torch.stack([s[name] for s in down]) for name in LINEAR_FIELDS},
    )


def slope(rig: Rig, chain: Chain, base: Shape, start: Any, index: int, step: float,
          height_m: float) -> dict[str, Any] | None:
    """The shape terms' finite-difference slope for phenotype `index` moved by `step`; None when the move
    would leave [0, 1]."""
    moved = start.clone()
    moved[index] = (start[index] + step).clamp(0.0, 1.0)
    delta = float(moved[index] - start[index])
    if abs(delta) < 1e-6:
        return None
    other = shape_terms(rig, chain, moved, height_m)
    return {name: (getattr(other, name) - getattr(base, name)) / delta for name in LINEAR_FIELDS}
