"""Fit anny to one person's landmarks: pose, shape, scale and the camera that sees it as the photo does.

1. Targets (`targets`): mediapipe's landmarks mapped to anny's COCO keypoints, in-frame and visible only.
2. Closed-form start (`initial`): camera rotation from the torso (upright in the image, turned as
   mediapipe's world landmarks say), limb bones turned onto mediapipe's 3D limb directions, camera
   translation by linear least squares.
3. Adam on the `objective` (keypoints, limb directions, silhouette, priors) in three stages: pose and
   camera; then the free shape phenotypes too, on a piecewise-linear shape model; then pose and camera on
   the exact final shape. The inner loop poses 16 bone groups (`chain`) and never skins the whole mesh,
   so a step costs ~5 ms on 2 cores and the fit ~0.5 s.
4. One full forward for the mesh, scaled so the rest body is `height_m` tall.

World frame: anny's (metres, z up, facing -y, left is +x) with the body's root in its rest orientation; the
camera's rotation carries the body's overall turn and lean. Focal length: fixed from the image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.backends.protocols import PersonObservation
from pipeline.body import initial, targets
from pipeline.body.chain import Chain
from pipeline.body.objective import Problem, State, Weights, camera_rotation, loss, make_problem
from pipeline.body.rig import PHENOTYPES, Rig
from pipeline.body.shape import Shape, linearise, shape_terms
from pipeline.errors import InvalidInput
from pipeline.geometry import BodyFit, Camera

FIT_BONES = (
    "spine03", "neck01", "head", "clavicle.L", "clavicle.R", "upperarm01.L", "upperarm01.R", "lowerarm01.L",
    "lowerarm01.R", "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R",
)  # fmt: skip
# Pose prior weight per bone (on its squared rotation angle): the trunk, clavicles and feet move little.
STIFFNESS = (4.0, 2.0, 1.0, 4.0, 4.0, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 1.0, 1.0)
UNSEEN_STIFFNESS = 30.0  # a limb bone whose far end the photo does not show stays near its rest pose
FOOT_ENDS = {"foot.L": (15, 17, 21), "foot.R": (16, 18, 22)}  # COCO ankle, big toe, heel
START_PHENOTYPES = {"gender": 0.5, "age": 0.7, "muscle": 0.5, "weight": 0.5, "height": 0.5, "proportions": 0.5}
FREE_PHENOTYPES = ("gender", "muscle", "weight", "height", "proportions")  # age stays adult


@dataclass(frozen=True)
class FitSettings:
    focal_factor: float = 1.3  # focal length = factor x the image's longer side (~ a 47 mm lens)
    pose_steps: int = 40  # Adam steps on pose and camera, shape fixed
    shape_steps: int = 25  # then on pose, camera and shape together
    polish_steps: int = 10  # then pose and camera again, on the exact final shape
    lr_rotation: float = 0.03  # radians per step, roughly
    lr_translation: float = 0.01  # metres per step
    lr_shape: float = 0.03
    weights: Weights = field(default_factory=Weights)


def fit_body(rig: Rig, person: PersonObservation, height_m: float, settings: FitSettings | None = None) -> BodyFit:
    """Pose, shape and scale anny to the person, seen by a camera with a fixed focal length."""
    import torch

    settings = settings or FitSettings()
    check(person)
    goal = targets.keypoint_targets(person)
    if (goal[list(initial.TORSO), 2] > 0).sum() < 2:
        raise InvalidInput("too few of the person's shoulders and hips are visible to fit a body",
                           "use a photo with the head and both shoulders in view (a photo cut at the chest will do)")
    focal = targets.focal_length_px(person.image_size, settings.focal_factor)
    problem = make_problem(person, goal, height_m, focal)
    chain = Chain.build(rig, FIT_BONES)
    state = initial_state(rig, chain, person, problem, stiffness(goal))
    steps = optimise(rig, chain, state, problem, settings)
    with torch.no_grad():
        return assemble(rig, chain, state, goal, problem, steps)


def check(person: PersonObservation) -> None:
    """Shapes the landmarker must deliver (a mismatch is a bug upstream, not the user's input)."""
    width, height = person.image_size
    if person.landmarks.shape != (33, 3) or person.world.shape != (33, 3):
        raise ValueError(f"expected 33 mediapipe landmarks, got {person.landmarks.shape} and {person.world.shape}")
    if person.mask.shape != (height, width):
        raise ValueError(f"the person mask is {person.mask.shape}, the photo {(height, width)}")


def stiffness(goal: np.ndarray) -> np.ndarray:
    """Pose prior weight per fitted bone: STIFFNESS, raised for limbs whose far end went unseen (cropped
    legs: nothing in the photo says where they go, and the silhouette of a skirt would splay them)."""
    out = np.array(STIFFNESS)
    for bone, _, end, _ in initial.LIMB_BONES:
        if goal[end, 2] <= 0:
            out[FIT_BONES.index(bone)] *= UNSEEN_STIFFNESS
    for bone, ends in FOOT_ENDS.items():
        if (goal[list(ends), 2] <= 0).all():
            out[FIT_BONES.index(bone)] *= UNSEEN_STIFFNESS
    return out


def initial_state(rig: Rig, chain: Chain, person: PersonObservation, problem: Problem,
                  stiffness: np.ndarray) -> State:
    """The closed-form start: camera rotation, limb rotations, then camera translation."""
    import torch

    phenotypes = torch.tensor([START_PHENOTYPES[name] for name in PHENOTYPES], dtype=torch.float32)
    with torch.no_grad():
        shape = shape_terms(rig, chain, phenotypes, problem.height_m)

    def keypoints(rotvecs: np.ndarray) -> np.ndarray:
        groups = chain.moves(torch.tensor(rotvecs, dtype=torch.float32), shape.heads)
        return chain.apply(groups, shape.keypoints).double().numpy()

    rotvecs = np.zeros((len(FIT_BONES), 3))
    reference = keypoints(rotvecs)
    world = person.world[targets.MEDIAPIPE_FOR_COCO.clip(0)].astype(np.float64)
    rotation = initial.torso_rotation(world, problem.targets[:, :2].double().numpy())
    dirs, usable = initial_limb_directions(person)
    for name, value in initial.limb_rotvecs(reference, dirs @ rotation, usable).items():
        rotvecs[FIT_BONES.index(name)] = value
    posed = float(shape.scale) * keypoints(rotvecs) @ rotation.T
    translation = initial.solve_translation(posed, problem.targets.double().numpy(), problem.focal, (0.0, 0.0))
    return State(
        rotation0=torch.tensor(rotation, dtype=torch.float32), camera=torch.zeros(3, requires_grad=True),
        translation=torch.tensor(translation, dtype=torch.float32, requires_grad=True),
        pose=torch.tensor(rotvecs, dtype=torch.float32, requires_grad=True),
        phenotypes=phenotypes.clone().requires_grad_(True), start_phenotypes=phenotypes,
        stiffness=torch.tensor(stiffness, dtype=torch.float32),
    )


def initial_limb_directions(person: PersonObservation) -> tuple[np.ndarray, np.ndarray]:
    """mediapipe's 3D directions of the limb bones' segments, and whether each can be trusted to start from:
    both ends visible and inside the photo (mediapipe's guesses for cropped-off legs often splay out)."""
    dirs, weights = targets.limb_targets(person)
    pairs = targets.MEDIAPIPE_FOR_COCO[np.array([(a, b) for _, a, b, _ in initial.LIMB_BONES])]
    seen = targets.in_frame(person.landmarks[pairs.ravel(), :2], person.image_size).reshape(-1, 2).all(1)
    count = len(initial.LIMB_BONES)  # the limb bones' segments come first in targets.LIMBS, in the same order
    return dirs[:count], (weights[:count] > 0) & seen


def optimise(rig: Rig, chain: Chain, state: State, problem: Problem, settings: FitSettings) -> int:
    """Adam in three stages: pose and camera on the start shape; then the free phenotypes too, on a
    piecewise-linear model of the shape; then pose and camera again on the exact final shape (the linear
    model's small error would otherwise stay in the keypoints). Returns the number of steps taken."""
    import torch

    optimizer = torch.optim.Adam([
        {"params": [state.camera, state.pose], "lr": settings.lr_rotation},
        {"params": [state.translation], "lr": settings.lr_translation},
    ])
    descend(optimizer, chain, state, problem, exact_shape(rig, chain, state, problem), settings, settings.pose_steps)
    optimizer.add_param_group({"params": [state.phenotypes], "lr": settings.lr_shape})
    free = torch.tensor([PHENOTYPES.index(name) for name in FREE_PHENOTYPES])
    linear = linearise(rig, chain, state.phenotypes, free, problem.height_m)
    for _ in range(settings.shape_steps):
        optimizer.zero_grad(set_to_none=True)
        loss(chain, state, problem, linear.at(state.phenotypes), settings.weights).backward()
        optimizer.step()
        with torch.no_grad():
            state.phenotypes.clamp_(0.0, 1.0)
    state.phenotypes.requires_grad_(False)
    descend(optimizer, chain, state, problem, exact_shape(rig, chain, state, problem), settings, settings.polish_steps)
    return settings.pose_steps + settings.shape_steps + settings.polish_steps


def exact_shape(rig: Rig, chain: Chain, state: State, problem: Problem) -> Shape:
    import torch

    with torch.no_grad():
        return shape_terms(rig, chain, state.phenotypes, problem.height_m)


def descend(optimizer: Any, chain: Chain, state: State, problem: Problem, shape: Shape, settings: FitSettings,
            steps: int) -> None:
    """`steps` Adam steps on the pose and camera for a fixed shape."""
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss(chain, state, problem, shape, settings.weights).backward()
        optimizer.step()


def assemble(rig: Rig, chain: Chain, state: State, goal: np.ndarray, problem: Problem, steps: int) -> BodyFit:
    """The full mesh and everything `BodyFit` carries, from the optimised state."""
    shape = shape_terms(rig, chain, state.phenotypes, problem.height_m)
    scale = float(shape.scale)
    groups = chain.moves(state.pose, shape.heads)
    transforms = groups[chain.group] @ shape.reference  # every anny bone's skinning transform
    rest = rig.rest_vertices(shape.coeffs)
    keypoints = (chain.apply(groups, shape.keypoints) * scale).double().numpy()
    width, height = problem.size
    camera = Camera(
        focal_px=problem.focal * problem.unit, cx=width / 2, cy=height / 2,
        rotation=camera_rotation(state).double().numpy(), translation=state.translation.double().numpy(),
        image_size=problem.size,
    )
    params = {f"phenotype.{name}": [float(v)] for name, v in zip(PHENOTYPES, state.phenotypes, strict=True)}
    params |= {f"pose.{bone}": [float(v) for v in rv] for bone, rv in zip(FIT_BONES, state.pose, strict=True)}
    params["scale"] = [scale]
    return BodyFit(
        vertices=(rig.skin(transforms, rest) * scale).numpy().astype(np.float32), faces=rig.faces, camera=camera,
        keypoint_names=rig.keypoint_names, keypoints_3d=keypoints, keypoints_2d=camera.project(keypoints),
        targets_2d=goal, rest_vertices=(rest * scale).numpy().astype(np.float32), params=params,
        iterations=steps, uvs=rig.uvs, face_uvs=rig.face_uvs,
    )
