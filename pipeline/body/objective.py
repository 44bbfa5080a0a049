"""The fit's objective in torch: what one photo asks of the body, and how far a body state is from it.

Units: image positions are centred on the photo and measured in percent of its height, so a keypoint 1 %
of the height off costs 1 and the weights below read the same on every photo size. The terms:
- keypoints: visibility-weighted squared 2D distance of anny's COCO keypoints to mediapipe's;
- limbs: 1 - cos between each limb's 3D direction and mediapipe's world-landmark direction for it;
- outside: surface samples projected outside the person mask, by their distance to it (the body lies
  within its clothes, so this holds under any clothing; outside the frame the mask says nothing);
- cover: the mask's contour points' distance to the nearest projected surface sample, robust (Cauchy)
  because loose clothing and hair stand off the body (keeps a heavy body from staying average-thin);
- priors: squared bone angles (per-bone stiffness) and phenotypes' distance from their start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.backends.protocols import PersonObservation
from pipeline.body import targets
from pipeline.body.chain import Chain
from pipeline.body.shape import Shape

CONTOUR_POINTS = 256


@dataclass(frozen=True)
class Weights:
    """Each term's weight against the keypoint term (tuned on the dev photos: bench/body_fit.py)."""

    limb: float = 4.0  # per unit of (1 - cos)
    outside: float = 0.5  # per squared percent of height
    cover: float = 0.5  # per unit of the Cauchy loss, in squared percent of height
    cover_scale: float = 2.0  # percent of height: contour points much farther than this from the body pull less
    pose_prior: float = 0.05  # per squared radian, times each bone's stiffness
    shape_prior: float = 0.2  # per squared phenotype unit


@dataclass
class Problem:
    """The fixed data of one fit, as torch tensors (positions in centred percent-of-height units)."""

    targets: Any  # (K, 3): x, y, weight
    limb_dirs: Any  # (L, 3) unit directions in the camera frame
    limb_weights: Any  # (L,)
    distance: Any  # (1, 1, H, W) distance to the person mask, percent of height
    contour: Any  # (M, 2) points on the person mask's contour
    focal: float
    height_m: float
    size: tuple[int, int]
    unit: float  # pixels per unit


@dataclass
class State:
    """What the fit moves (leaf tensors with gradients) and the fixed pieces they act on."""

    rotation0: Any  # (3, 3) the closed-form camera rotation
    camera: Any  # (3,) axis-angle correction of the camera rotation, on the camera side
    translation: Any  # (3,) camera translation, metres
    pose: Any  # (n, 3) axis-angle rotation per fitted bone (anny 'local-ref')
    phenotypes: Any  # (6,) in rig.PHENOTYPES order
    start_phenotypes: Any
    stiffness: Any  # (n,) pose prior weight per bone


def make_problem(person: PersonObservation, goal: np.ndarray, height_m: float, focal_px: float) -> Problem:
    import torch

    width, height = person.image_size
    unit = 0.01 * height
    centre = np.array([width / 2, height / 2])
    dirs, limb_weights = targets.limb_targets(person)
    if (person.mask > 0.5).any():
        distance = targets.outside_distance(person.mask) / unit
        contour = (targets.contour_points(person.mask, CONTOUR_POINTS) - centre) / unit
    else:  # no mask: the silhouette terms say nothing
        distance, contour = np.zeros(person.mask.shape, np.float32), np.zeros((0, 2))
    f32 = torch.float32
    return Problem(
        targets=torch.tensor(np.concatenate([(goal[:, :2] - centre) / unit, goal[:, 2:]], 1), dtype=f32),
        limb_dirs=torch.tensor(dirs, dtype=f32),
        limb_weights=torch.tensor(limb_weights, dtype=f32),
        distance=torch.from_numpy(distance)[None, None],
        contour=torch.tensor(contour, dtype=f32),
        focal=focal_px / unit, height_m=height_m, size=(width, height), unit=unit,
    )


def camera_rotation(state: State) -> Any:
    import roma

    return roma.rotvec_to_rotmat(state.camera) @ state.rotation0


def pixels(points: Any, rotation: Any, translation: Any, focal: float) -> Any:
    """(N, 2) projections, in problem units, of body-frame points (N, 3) in metres."""
    cam = points @ rotation.T + translation
    return focal * cam[:, :2] / cam[:, 2:].clamp(min=1e-3)


def loss(chain: Chain, state: State, problem: Problem, shape: Shape, weights: Weights) -> Any:
    groups = chain.moves(state.pose, shape.heads)
    points = chain.apply(groups, shape.keypoints) * shape.scale
    rotation = camera_rotation(state)
    projected = pixels(points, rotation, state.translation, problem.focal)
    w = problem.targets[:, 2]
    keypoint = (w * ((projected - problem.targets[:, :2]) ** 2).sum(1)).sum() / w.sum().clamp(min=1e-6)
    surface = pixels(chain.apply(groups, shape.samples) * shape.scale, rotation, state.translation, problem.focal)
    outside, cover = silhouette_terms(surface, problem, weights)
    pose = (state.stiffness * (state.pose**2).sum(1)).sum()
    phen = ((state.phenotypes - state.start_phenotypes) ** 2).sum()
    return (keypoint + weights.limb * limb_term(points, rotation, problem) + weights.outside * outside
            + weights.cover * cover + weights.pose_prior * pose + weights.shape_prior * phen)


def limb_term(points: Any, rotation: Any, problem: Problem) -> Any:
    limbs = targets.LIMBS
    segment = (points[limbs[:, 1]] - points[limbs[:, 0]]) @ rotation.T
    cosine = (segment / segment.norm(dim=1, keepdim=True).clamp(min=1e-6) * problem.limb_dirs).sum(1)
    return (problem.limb_weights * (1 - cosine)).sum() / problem.limb_weights.sum().clamp(min=1e-6)


def silhouette_terms(projected: Any, problem: Problem, weights: Weights) -> tuple[Any, Any]:
    """Mean squared distance of the projected samples outside the mask, and the mean Cauchy loss of the
    mask contour's distance to the nearest sample."""
    import torch

    width, height = problem.size
    px = projected * problem.unit + projected.new_tensor([width / 2, height / 2])
    grid = torch.stack([(2 * px[:, 0] + 1) / width - 1, (2 * px[:, 1] + 1) / height - 1], 1)
    outside = torch.nn.functional.grid_sample(problem.distance, grid[None, None], align_corners=False)
    if len(problem.contour) == 0:
        return (outside**2).mean(), projected.new_zeros(())
    with torch.no_grad():  # which sample is nearest needs no gradient; the distance to it does
        closest = torch.cdist(problem.contour, projected).argmin(1)
    nearest = (problem.contour - projected[closest]).norm(dim=1)
    scale = weights.cover_scale
    return (outside**2).mean(), (scale**2 * torch.log1p((nearest / scale) ** 2)).mean()
