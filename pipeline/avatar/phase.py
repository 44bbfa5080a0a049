"""Phase 1, avatar: person photo (+ job.json height) -> landmarks, mask, face bank, fitted 3D body, measurements.

Find the person (refuse clearly when there is none), embed the face into the job's face bank (carry on
without one), fit the parametric body to the landmarks with the camera, measure it, and write an overlay
that shows what the phase saw. Backends arrive as arguments; this module loads no model itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from pipeline.avatar.contracts import DEFAULT_HEIGHT_CM, AvatarRecord, FaceBank, FaceReference, FitQuality
from pipeline.avatar.keypoints import keypoints_json
from pipeline.avatar.overlay import draw_overlay
from pipeline.backends.protocols import BodyFitter, Face, FaceEmbedder, PersonLandmarker, PersonObservation
from pipeline.body.measure import measure
from pipeline.body.silhouette import mask_iou, reprojection_error_px, silhouette
from pipeline.codec import decode_upload, encode_png, upright_size
from pipeline.errors import InvalidInput
from pipeline.geometry import BodyFit
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.viewer3d.glb import plain_glb

NO_PERSON = "no person found in the person photo with the head and both shoulders in view"
NO_PERSON_ACTION = ("use a photo with one standing person, the head and both shoulders visible (a photo cut at "
                    "the chest will do; head to feet is best)")
SHOULDERS, HIPS, HEAD = (11, 12), (23, 24), (0, 2, 5)  # mediapipe: shoulders, hips, nose and eyes
MIN_VISIBILITY = 0.5


@dataclass(frozen=True)
class AvatarBackends:
    landmarker: PersonLandmarker
    faces: FaceEmbedder
    body: BodyFitter


def build_avatar(task: PhaseTask, io: PhaseIO, backends: AvatarBackends) -> PhaseResult:
    photo = io.read_input("person")
    rgb = decode_upload(photo)  # at the working size: the camera, upright.png and every later phase share it
    person = find_person(backends.landmarker, rgb)
    face = pick_face(backends.faces.faces(rgb), person.box)
    height_cm = task.spec.person.height_cm or DEFAULT_HEIGHT_CM
    fit = backends.body.fit(person, height_cm / 100.0)
    body_mask = silhouette(fit)
    quality = fit_quality(fit, body_mask, person.mask)
    measurements = measure(fit)
    notes = list(person.notes) + scaled_note(photo, rgb)
    bank = face_bank(task, io, backends.faces, face)
    if not bank.references:
        notes.append("no face visible: identity checks will be skipped")
    elif face is None:
        notes.append("no face in this photo: identity checks use the batch's other photos of the person")
    if task.spec.person.height_cm is None:
        notes.append(f"no height in job.json: assumed {DEFAULT_HEIGHT_CM:.0f} cm, so absolute sizes are estimates")
    used = {"landmarker": backends.landmarker, "faces": backends.faces, "body": backends.body}
    record = AvatarRecord(
        image_size=person.image_size, person_box=person.box, people_found=person.people, face_found=face is not None,
        height_cm=height_cm, height_source="job.json" if task.spec.person.height_cm else "default",
        fit=quality, measurements=measurements_dict(measurements), notes=tuple(notes),
        backends={role: f"{b.name} {b.version}" for role, b in used.items()},
    )
    overlay = draw_overlay(rgb, person, face, fit, body_mask, record)
    io.write("body.glb", plain_glb(fit.vertices, fit.faces), "model/gltf-binary")
    io.write("body.npz", fit.posed_body().to_npz())
    io.write("camera.json", fit.camera.to_json(), "application/json")
    io.write("keypoints.json", keypoints_json(person, fit), "application/json")
    io.write("mask.png", encode_png(person.mask), "image/png")
    io.write("upright.png", encode_png(rgb), "image/png")  # upright, lossless: what phase 3 projects and repaints
    io.write("face_bank.json", bank.to_bytes(), "application/json")
    io.write("measurements.json", measurements.model_dump_json(indent=2).encode(), "application/json")
    io.write("overlay.png", encode_png(overlay), "image/png")
    io.write("avatar.json", record.to_bytes(), "application/json")
    return PhaseResult(data=summary(record), backends=record.backends)


def scaled_note(photo: bytes, rgb: np.ndarray) -> list[str]:
    """A note when the photo was larger than the working size it is worked on at (docs/inputs.md)."""
    width, height = upright_size(photo)
    if (width, height) == (rgb.shape[1], rgb.shape[0]):
        return []
    return [f"the photo ({width}x{height}) was worked on at {rgb.shape[1]}x{rgb.shape[0]}, the pipeline's working size"]


def find_person(landmarker: PersonLandmarker, rgb: np.ndarray) -> PersonObservation:
    """The person, refused only where the garment cannot be placed: both shoulders must be seen, and each hip
    seen or below the frame (a photo cut at the chest), which then needs the face to place the head."""
    person = landmarker.find_person(rgb)
    if person is None:
        raise InvalidInput(NO_PERSON, NO_PERSON_ACTION)
    seen = person.landmarks[:, 2] >= MIN_VISIBILITY
    if not seen[list(SHOULDERS)].all():
        raise InvalidInput("the person's shoulders are not both visible in the person photo: the garment cannot "
                           "be placed", NO_PERSON_ACTION)
    below = person.landmarks[list(HIPS), 1] > person.image_size[1]
    if not (seen[list(HIPS)] | below).all():
        raise InvalidInput("the person's hips are hidden in the person photo (in the frame but not visible)",
                           NO_PERSON_ACTION)
    if below.all() and not seen[list(HEAD)].all():
        raise InvalidInput("the person photo is cut above the hips and shows no face: the head and the garment "
                           "cannot be placed", NO_PERSON_ACTION)
    return person


def pick_face(faces: list[Face], box: tuple[int, int, int, int]) -> Face | None:
    """The largest face whose centre lies in the chosen person's box (not a bystander's face)."""
    x0, y0, x1, y1 = box
    for face in faces:  # largest first
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            return face
    return None


def fit_quality(fit: BodyFit, body_mask: np.ndarray, person_mask: np.ndarray) -> FitQuality:
    error = reprojection_error_px(fit)
    return FitQuality(
        reprojection_error_px=round(error, 2),
        reprojection_error_rel=round(error / fit.camera.image_size[1], 5),
        mask_iou=round(mask_iou(body_mask, person_mask > 0.5), 4),
        keypoints_used=int((fit.targets_2d[:, 2] > 0).sum()),
        iterations=fit.iterations,
    )


def measurements_dict(measurements: object) -> dict[str, dict[str, float | str]]:
    data = json.loads(measurements.model_dump_json())  # type: ignore[attr-defined]
    return {name: value for name, value in data.items() if isinstance(value, dict)}


def face_bank(task: PhaseTask, io: PhaseIO, embedder: FaceEmbedder, face: Face | None) -> FaceBank:
    """The person photo's face, then the largest face of each other photo of the same person (a catalog's
    `references`), so identity checks compare against every view of the person the user gave."""
    found = [] if face is None else [reference(task.inputs["person"].key, face)]
    for name in sorted(n for n in task.inputs if n.startswith("face_ref_")):
        faces = embedder.faces(decode_upload(io.read_input(name)))
        if faces:
            found.append(reference(task.inputs[name].key, faces[0]))
    backend = f"{embedder.name} {embedder.version}"
    if not found:
        return FaceBank(backend=backend, threshold=embedder.threshold, skipped_reason="no face visible in the photo")
    return FaceBank(backend=backend, threshold=embedder.threshold, references=tuple(found))


def reference(source: str, face: Face) -> FaceReference:
    return FaceReference(source=source, box=tuple(int(v) for v in face.box),  # type: ignore[arg-type]
                         embedding=tuple(round(float(v), 6) for v in face.embedding))


def summary(record: AvatarRecord) -> dict[str, object]:
    return {
        "people_found": record.people_found,
        "face_found": record.face_found,
        "height_cm": record.height_cm,
        "reprojection_error_px": record.fit.reprojection_error_px,
        "mask_iou": record.fit.mask_iou,
        "notes": list(record.notes),
    }
