"""The parametric body fit (anny): the fast forward against anny's own, a synthetic round trip, measurements,
silhouettes, and fits to real dev photos through mediapipe.

The anny cache lives in the project's `.cache/anny` (built here if missing: about a minute, once).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline.backends.protocols import BodyFitter, PersonObservation
from pipeline.body import targets
from pipeline.body.initial import rotvec_to_matrix
from pipeline.body.measure import measure
from pipeline.body.silhouette import mask_iou, project_mesh, rasterize, reprojection_error_px, silhouette
from pipeline.geometry import BodyFit, Camera

torch = pytest.importorskip("torch")
pytest.importorskip("anny")

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "anny"
SIZE = (768, 1024)
FOCAL = 1.3 * 1024
FRONT = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # camera in front of the body, looking along +y
# The known pose of the synthetic body: arms out and bent, a leg forward with its knee bent, head turned.
POSE = {"upperarm01.L": (0.0, -0.5, 0.3), "lowerarm01.L": (0.6, 0.2, 0.0), "upperarm01.R": (0.3, 0.3, 0.0),
        "lowerarm01.R": (0.5, 0.0, -0.3), "upperleg01.L": (-0.3, 0.0, 0.1), "lowerleg01.L": (0.45, 0.0, 0.0),
        "upperleg01.R": (0.0, 0.15, 0.0), "head": (0.0, 0.0, 0.3)}  # fmt: skip
PHENOTYPES = {"gender": 0.2, "age": 0.7, "muscle": 0.5, "weight": 0.65, "height": 0.5, "proportions": 0.5}
# mediapipe landmarks with no COCO keypoint of their own take a neighbour's (eye corners, mouth, hand tips).
MP_FILL = {1: 1, 3: 1, 4: 2, 6: 2, 9: 0, 10: 0, 17: 9, 19: 9, 21: 9, 18: 10, 20: 10, 22: 10}


@pytest.fixture(scope="session")
def rig():  # -> pipeline.body.rig.Rig
    from pipeline.body.anny_model import load_rig, prepare

    prepare(CACHE)
    return load_rig(CACHE)


@dataclasses.dataclass(frozen=True)
class Synthetic:
    person: PersonObservation
    camera: Camera
    keypoints_cam: np.ndarray  # (23, 3) true COCO keypoints in the camera frame
    height_m: float


def posed_body(rig, pose: dict, phenotypes: dict, height_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posed vertices, COCO keypoints and rest vertices (metres, height_m tall), through anny's own forward."""
    import anny

    from pipeline.body.rig import PHENOTYPES as ORDER

    deltas = torch.eye(4).repeat(1, len(rig.bone_labels), 1, 1)
    for bone, rotvec in pose.items():
        deltas[0, rig.bone_index(bone), :3, :3] = torch.tensor(rotvec_to_matrix(np.array(rotvec)), dtype=torch.float32)
    with torch.no_grad():
        out = rig.model(deltas, phenotype_kwargs=torch.tensor([[phenotypes[n] for n in ORDER]]))
        keypoints = anny.KeypointsRegressor.coco(rig.model)(out)[0].double().numpy()
    rest = out["rest_vertices"][0].double().numpy()
    scale = height_m / np.ptp(rest[:, 2])
    return out["vertices"][0].double().numpy() * scale, keypoints * scale, rest * scale


def observe(camera: Camera, vertices: np.ndarray, keypoints: np.ndarray, faces: np.ndarray) -> PersonObservation:
    """What mediapipe would report for a body seen by `camera`: the 33 landmarks, world landmarks (camera
    axes, origin between the hips) and the mask."""
    cam = keypoints @ camera.rotation.T + camera.translation
    pixels = camera.project(keypoints)
    coco_of_mp = {int(m): k for k, m in enumerate(targets.MEDIAPIPE_FOR_COCO) if m >= 0} | MP_FILL
    order = [coco_of_mp[m] for m in range(33)]
    landmarks = np.column_stack([pixels[order], np.full(33, 0.99)])
    world = cam[order] - (cam[11] + cam[12]) / 2
    mask = rasterize(project_mesh(vertices, camera), faces, camera.image_size).astype(np.float32)
    ys, xs = np.nonzero(mask)
    return PersonObservation(image_size=camera.image_size, landmarks=landmarks, world=world, mask=mask,
                             box=(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))


@pytest.fixture(scope="session")
def synthetic(rig) -> Synthetic:
    vertices, keypoints, _ = posed_body(rig, POSE, PHENOTYPES, 1.68)
    turn = rotvec_to_matrix(np.array([0.0, 0.0, np.deg2rad(25)]))
    camera = Camera(FOCAL, SIZE[0] / 2, SIZE[1] / 2, FRONT @ turn, np.array([0.05, 0.12, 3.2]), SIZE)
    person = observe(camera, vertices, keypoints, rig.faces)
    return Synthetic(person, camera, keypoints @ camera.rotation.T + camera.translation, 1.68)


@pytest.fixture(scope="session")
def synthetic_fit(rig, synthetic: Synthetic) -> BodyFit:
    from pipeline.body.fit import fit_body

    return fit_body(rig, synthetic.person, synthetic.height_m)


# ---- the fast forward is anny's forward ---------------------------------------------------------------


def test_chain_keypoints_and_samples_equal_annys_forward(rig) -> None:
    import anny

    from pipeline.body.chain import Chain
    from pipeline.body.fit import FIT_BONES

    chain = Chain.build(rig, FIT_BONES)
    generator = torch.Generator().manual_seed(3)
    phenotypes = torch.rand(6, generator=generator)
    rotvecs = 0.5 * torch.randn(len(FIT_BONES), 3, generator=generator)
    with torch.no_grad():
        out = rig.model(rig.deltas(rotvecs, chain.bones), phenotype_kwargs=phenotypes[None])
        expected = anny.KeypointsRegressor.coco(rig.model)(out)[0]
        coeffs = rig.coefficients(phenotypes)
        reference, heads = chain.reference(rig, rig.rest_bone_poses(coeffs))
        groups = chain.moves(rotvecs, heads)
        keypoints = chain.apply(groups, chain.keypoint_partials(rig, coeffs, reference))
        samples = chain.apply(groups, chain.vertex_partials(rig.sample_bones, rig.sample_weights,
                                                            rig.sample_rest(coeffs), reference))
        height = float(np.ptp(out["rest_vertices"][0, :, 2].numpy()))
    assert torch.allclose(keypoints, expected, atol=1e-5)
    assert torch.allclose(samples, out["vertices"][0, rig.samples], atol=1e-5)
    assert float(rig.rest_height(coeffs)) == pytest.approx(height, abs=1e-6)


# ---- targets --------------------------------------------------------------------------------------------


def test_off_frame_points_are_not_used_even_when_mediapipe_sees_them(synthetic: Synthetic) -> None:
    landmarks = synthetic.person.landmarks.copy()
    landmarks[27] = (400.0, 1100.0, 0.7)  # left ankle below the frame, visibility 0.7 (a thigh-cropped photo)
    landmarks[28, 2] = 0.3  # right ankle: mediapipe unsure
    goal = targets.keypoint_targets(dataclasses.replace(synthetic.person, landmarks=landmarks))
    names = targets.COCO_NAMES
    assert goal[names.index("left_ankle"), 2] == 0.0
    assert goal[names.index("right_ankle"), 2] == 0.0
    assert goal[names.index("left_knee"), 2] > 0.9
    assert 0 < goal[names.index("left_ear"), 2] < 0.3 * goal[names.index("nose"), 2]
    assert goal[names.index("left_small_toe"), 2] == 0.0  # mediapipe has no small toe


# ---- synthetic round trip -------------------------------------------------------------------------------


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_round_trip_recovers_keypoints_camera_and_limbs(synthetic: Synthetic, synthetic_fit: BodyFit) -> None:
    fit, true = synthetic_fit, synthetic
    errors = np.linalg.norm(fit.keypoints_2d - fit.targets_2d[:, :2], axis=1)[fit.targets_2d[:, 2] > 0]
    assert np.median(errors) < 0.004 * SIZE[1]
    assert reprojection_error_px(fit) < 0.006 * SIZE[1]
    relative = fit.camera.rotation @ true.camera.rotation.T
    assert np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1))) < 10
    fitted_cam = fit.keypoints_3d @ fit.camera.rotation.T + fit.camera.translation
    for a, b in targets.LIMBS[:8]:
        assert angle_deg(fitted_cam[b] - fitted_cam[a], true.keypoints_cam[b] - true.keypoints_cam[a]) < 12
    assert fit.camera.translation[2] == pytest.approx(true.camera.translation[2], rel=0.08)
    assert mask_iou(silhouette(fit), true.person.mask) > 0.9


def test_fit_output_follows_the_contract(rig, synthetic: Synthetic, synthetic_fit: BodyFit) -> None:
    fit = synthetic_fit
    assert fit.vertices.dtype == np.float32 and fit.vertices.shape == fit.rest_vertices.shape
    assert fit.faces.dtype == np.int32 and fit.faces.max() < len(fit.vertices)
    assert fit.keypoints_3d.shape == (23, 3) and fit.keypoints_2d.shape == (23, 2) and fit.targets_2d.shape == (23, 3)
    assert fit.keypoint_names == targets.COCO_NAMES
    assert np.ptp(fit.rest_vertices[:, 2]) == pytest.approx(synthetic.height_m, abs=1e-4)
    assert np.allclose(fit.keypoints_2d, fit.camera.project(fit.keypoints_3d))
    assert fit.uvs is not None and fit.face_uvs is not None and fit.face_uvs.shape == fit.faces.shape
    assert fit.iterations > 0 and 0 <= fit.params["phenotype.weight"][0] <= 1 and len(fit.params["pose.head"]) == 3
    nose, ankle = fit.keypoints_3d[0], fit.keypoints_3d[15]
    assert nose[2] > ankle[2] and nose[1] < fit.keypoints_3d[3][1]  # z up; the face points to -y


# ---- measurements ---------------------------------------------------------------------------------------


def test_measurements_of_a_fitted_body(synthetic_fit: BodyFit, synthetic: Synthetic) -> None:
    m = measure(synthetic_fit)
    assert m.height.value_cm == pytest.approx(100 * synthetic.height_m, abs=1.0)
    assert 75 < m.chest.value_cm < 125 and 60 < m.waist.value_cm < 115 and 80 < m.hip.value_cm < 125
    assert m.waist.value_cm < m.chest.value_cm and m.waist.value_cm < m.hip.value_cm
    assert 65 < m.inseam.value_cm < 90 and 35 < m.shoulder_width.value_cm < 55
    assert all(0 < v.confidence <= 1 and v.basis for v in (m.chest, m.waist, m.hip, m.inseam, m.shoulder_width))


def test_inseam_confidence_drops_when_the_legs_were_not_seen(synthetic_fit: BodyFit) -> None:
    unseen = synthetic_fit.targets_2d.copy()
    unseen[13:, 2] = 0.0  # knees, ankles, feet
    cropped = measure(dataclasses.replace(synthetic_fit, targets_2d=unseen))
    full = measure(synthetic_fit)
    assert cropped.inseam.confidence < 0.5 * full.inseam.confidence
    assert cropped.chest.confidence == full.chest.confidence
    assert "not visible" in cropped.inseam.basis


def test_measurements_follow_the_body_shape(rig) -> None:
    def body(phenotypes: dict) -> BodyFit:
        vertices, keypoints, rest = posed_body(rig, {}, phenotypes, 1.70)
        camera = Camera(FOCAL, SIZE[0] / 2, SIZE[1] / 2, FRONT, np.array([0.0, 0.1, 3.2]), SIZE)
        goal = np.column_stack([camera.project(keypoints), np.ones(23)])
        return BodyFit(vertices.astype(np.float32), rig.faces, camera, targets.COCO_NAMES, keypoints,
                       camera.project(keypoints), goal, rest.astype(np.float32))

    slim = measure(body(PHENOTYPES | {"gender": 0.0, "weight": 0.2}))
    heavy = measure(body(PHENOTYPES | {"gender": 0.0, "weight": 0.9}))
    female = measure(body(PHENOTYPES | {"gender": 1.0, "weight": 0.5}))
    assert heavy.waist.value_cm > slim.waist.value_cm + 6 and heavy.hip.value_cm > slim.hip.value_cm + 4
    assert female.hip.value_cm - female.waist.value_cm > heavy.hip.value_cm - heavy.waist.value_cm + 10
    assert female.shoulder_width.value_cm < slim.shoulder_width.value_cm
    assert all(m.height.value_cm == pytest.approx(170, abs=1.0) for m in (slim, heavy, female))


# ---- silhouette -----------------------------------------------------------------------------------------


def test_silhouette_iou_is_one_against_itself_and_lower_when_shifted(synthetic_fit: BodyFit) -> None:
    mask = silhouette(synthetic_fit)
    assert mask.shape == (SIZE[1], SIZE[0]) and mask.dtype == bool
    assert 0.05 < mask.mean() < 0.5
    assert mask_iou(mask, mask) == 1.0
    shifted = np.roll(mask, 25, axis=1)
    assert 0.2 < mask_iou(mask, shifted) < 0.9
    assert mask_iou(mask, mask.astype(np.float32) * 0.8) == 1.0  # float masks threshold at 0.5
    assert mask_iou(np.zeros_like(mask), np.zeros_like(mask)) == 0.0


def test_reprojection_error_is_the_weighted_mean_over_used_keypoints(synthetic_fit: BodyFit) -> None:
    goal = np.zeros((23, 3))
    goal[:, :2] = synthetic_fit.keypoints_2d + [3.0, 4.0]  # 5 px off everywhere
    goal[:4, :2] += 100.0  # ...but these are not used
    goal[4:, 2] = np.linspace(0.2, 1.0, 19)
    assert reprojection_error_px(dataclasses.replace(synthetic_fit, targets_2d=goal)) == pytest.approx(5.0)


# ---- the backend ----------------------------------------------------------------------------------------


def test_backend_meets_the_protocol_and_refuses_absurd_heights(rig, synthetic: Synthetic) -> None:
    from pipeline.backends.anny_body import AnnyBodyFitter
    from pipeline.errors import InvalidInput

    fitter = AnnyBodyFitter(cache_dir=CACHE)
    assert isinstance(fitter, BodyFitter) and fitter.name == "anny" and fitter.version[0].isdigit()
    assert fitter.prepare() == 0.0  # the cache is built: nothing to do
    with pytest.raises(InvalidInput):
        fitter.fit(synthetic.person, 17.0)  # centimetres by mistake... of a 17 m person
    threads = torch.get_num_threads()
    fit = fitter.fit(synthetic.person, synthetic.height_m)
    assert reprojection_error_px(fit) < 0.006 * SIZE[1]
    assert torch.get_num_threads() == threads  # the fit's own thread count does not leak


def test_prepare_is_a_no_op_on_a_built_cache_and_knows_an_empty_one(tmp_path: Path, rig) -> None:
    from pipeline.body.anny_model import is_prepared, prepare

    assert is_prepared(CACHE) and prepare(CACHE) == 0.0
    assert not is_prepared(tmp_path)


def test_the_cached_rig_bases_are_the_ones_anny_gives(tmp_path: Path, rig) -> None:
    from pipeline.body.anny_model import cached_rig, rig_cache_path
    from pipeline.body.rig import BASES, Rig

    fresh = Rig.from_anny(rig.model)
    written = cached_rig(rig.model, tmp_path)  # no file yet: computed and written
    assert rig_cache_path(tmp_path).is_file()
    read = cached_rig(rig.model, tmp_path)  # read back
    for name in BASES:
        assert torch.equal(getattr(read, name), getattr(fresh, name)), name
        assert torch.equal(getattr(written, name), getattr(fresh, name)), name
    for name in ("faces", "uvs", "face_uvs"):
        assert np.array_equal(getattr(read, name), getattr(fresh, name)), name
    assert read.keypoint_names == fresh.keypoint_names and read.bone_labels == fresh.bone_labels
    rig_cache_path(tmp_path).write_bytes(b"not a torch file")  # a damaged cache is rebuilt, not trusted
    assert torch.equal(cached_rig(rig.model, tmp_path).kp_points, fresh.kp_points)
    assert torch.load(rig_cache_path(tmp_path), weights_only=True)["keypoint_names"] == list(fresh.keypoint_names)
    unwritable = tmp_path / "a file, not a folder"
    unwritable.write_text("")
    assert torch.equal(cached_rig(rig.model, unwritable).kp_points, fresh.kp_points)  # computed, not cached


# ---- real photos ------------------------------------------------------------------------------------------

PHOTOS = ("049205_0", "051918_0", "model_5", "01008_00", "07966_00")  # full body, and cropped at thigh or knee


def mediapipe_person(path: Path) -> PersonObservation:
    import cv2
    import mediapipe as mp

    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True) as pose:
        result = pose.process(rgb)
    assert result.pose_landmarks is not None, path.name
    landmarks = np.array([[p.x * width, p.y * height, p.visibility] for p in result.pose_landmarks.landmark])
    world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark])
    return PersonObservation(image_size=(width, height), landmarks=landmarks, world=world,
                             mask=result.segmentation_mask.astype(np.float32), box=(0, 0, width, height))


@pytest.mark.devdata
def test_fits_to_real_photos_reproject_and_overlap(rig, dev_people: list[Path]) -> None:
    from pipeline.body.fit import fit_body

    chosen = [p for p in dev_people if p.stem in PHOTOS]
    assert len(chosen) == len(PHOTOS)
    for path in chosen:
        person = mediapipe_person(path)
        fit = fit_body(rig, person, 1.70)
        height = person.image_size[1]
        assert reprojection_error_px(fit) < 0.015 * height, path.name  # measured: 0.2-0.6 %
        assert mask_iou(silhouette(fit), person.mask) > 0.7, path.name  # measured: 0.77-0.90
        assert measure(fit).height.value_cm == pytest.approx(170.0, abs=1.0)
