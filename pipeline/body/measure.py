"""Body measurements in centimetres, read off the fitted body's rest-pose mesh, each with how far to trust it.

Levels come from the body's own joints: the fitted (posed) keypoints are carried to the rest pose by the
local rigid motion of their nearest vertices. Girths are tape-measure girths (convex hull perimeters) of
the torso's loop in horizontal sections (`slices`): chest = the fullest section below the armpits, waist =
the narrowest between chest and hips, hip = the fullest between the crotch and the waist. The inseam runs
from the crotch (where the legs' loops part) to the floor; the shoulder width is the body's breadth across
the deltoids at shoulder-joint height. Confidence falls with what the photo did not show: the keypoints'
target weights (0 = unseen) say which parts were visible, and girths carry the doubt of a clothed photo.
On a photo cut at the chest (both hips unseen) the waist and hip are the body model's shape below what the
photo shows: their basis says so (`HIPS_UNSEEN`) and their confidence is halved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.body import slices
from pipeline.body.initial import kabsch
from pipeline.geometry import BodyFit

NEIGHBOURS = 48  # vertices whose motion carries a keypoint from the posed to the rest mesh
STEP_M = 0.01  # spacing of the sections searched
COCO = {"left_shoulder": 5, "right_shoulder": 6, "left_hip": 11, "right_hip": 12, "left_knee": 13,
        "right_knee": 14, "left_ankle": 15, "right_ankle": 16}  # fmt: skip
HIPS_UNSEEN = "hips not in the photo: assumed from the body model's proportions"
ARMS_JOIN_JUMP = 0.2  # the torso loop widening by this times the shoulder-joint distance in one step: the armpit


class Measurement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value_cm: float
    confidence: float = Field(ge=0.0, le=1.0)
    basis: str


class Measurements(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    height: Measurement
    chest: Measurement
    waist: Measurement
    hip: Measurement
    inseam: Measurement
    shoulder_width: Measurement


@dataclass(frozen=True)
class Frame:
    """The rest mesh (floor at z = 0) and the joint levels measurements are placed by."""

    vertices: np.ndarray
    faces: np.ndarray
    shoulder_z: float
    hip_z: float
    knee_z: float
    shoulder_span: float  # distance between the shoulder joints
    centre: np.ndarray  # (x, y) inside the trunk

    @property
    def torso(self) -> float:
        return self.shoulder_z - self.hip_z


def measure(fit: BodyFit) -> Measurements:
    frame = rest_frame(fit)
    seen = visibility(fit)
    torso_seen = float(np.mean([seen["left_shoulder"], seen["right_shoulder"], seen["left_hip"], seen["right_hip"]]))
    legs_seen = float(np.mean([seen[k] for k in ("left_knee", "right_knee", "left_ankle", "right_ankle")]))
    shoulders_seen = (seen["left_shoulder"] + seen["right_shoulder"]) / 2
    hips_seen = (seen["left_hip"] + seen["right_hip"]) / 2
    crotch = crotch_height(frame)
    girth = 0.35 + 0.3 * torso_seen
    clothed = "shape fitted to landmarks and a clothed silhouette"
    low, low_note = (1.0, "") if hips_seen > 0 else (0.5, f"; {HIPS_UNSEEN}")  # cut at the chest
    return Measurements(
        height=cm(float(frame.vertices[:, 2].max()), 1.0, "the requested height: the body is scaled to it"),
        chest=cm(chest_girth(frame), girth, f"fullest torso girth below the armpits, rest pose; {clothed}"),
        waist=cm(waist_girth(frame), low * (girth - 0.05),
                 f"narrowest torso girth between chest and hips; {clothed}{low_note}"),
        hip=cm(hip_girth(frame, crotch), low * girth, f"fullest girth between crotch and waist; {clothed}{low_note}"),
        inseam=cm(crotch, 0.15 + 0.55 * legs_seen, "crotch to floor, rest pose" + (
            "" if legs_seen > 0.5 else "; legs not visible: their length follows the body model's proportions")),
        shoulder_width=cm(shoulder_breadth(frame), 0.3 + 0.4 * shoulders_seen,
                          "breadth across the deltoids at shoulder-joint height, rest pose"),
    )


def cm(metres: float, confidence: float, basis: str) -> Measurement:
    if not np.isfinite(metres):
        return Measurement(value_cm=0.0, confidence=0.0, basis=f"not measurable on this mesh ({basis})")
    return Measurement(value_cm=round(100.0 * metres, 1), confidence=round(float(np.clip(confidence, 0, 1)), 2),
                       basis=basis)


def visibility(fit: BodyFit) -> dict[str, float]:
    """How well the photo showed each body joint: its target weight, clipped to [0, 1] (0 = not used)."""
    names = list(fit.keypoint_names)
    return {name: float(np.clip(fit.targets_2d[names.index(name), 2], 0.0, 1.0)) for name in COCO}


def rest_keypoints(fit: BodyFit) -> np.ndarray:
    """(K, 3) the fitted keypoints carried from the posed mesh to the rest mesh: each moves with the best
    rigid fit to the motion of its NEIGHBOURS nearest posed vertices."""
    posed, rest = fit.vertices.astype(np.float64), fit.rest_vertices.astype(np.float64)
    out = np.empty_like(fit.keypoints_3d, dtype=np.float64)
    for k, point in enumerate(fit.keypoints_3d):
        near = np.argpartition(np.linalg.norm(posed - point, axis=1), NEIGHBOURS)[:NEIGHBOURS]
        rotation = kabsch(posed[near], rest[near], np.ones(NEIGHBOURS))
        out[k] = rotation @ (point - posed[near].mean(0)) + rest[near].mean(0)
    return out


def rest_frame(fit: BodyFit) -> Frame:
    vertices = fit.rest_vertices.astype(np.float64)
    floor = vertices[:, 2].min()
    vertices = vertices - [0.0, 0.0, floor]
    kp = rest_keypoints(fit) - [0.0, 0.0, floor]
    ls, rs, lh, rh, lk, rk = (kp[COCO[n]] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip",
                                                   "left_knee", "right_knee"))
    return Frame(
        vertices=vertices, faces=fit.faces.astype(np.int64), shoulder_z=float(ls[2] + rs[2]) / 2,
        hip_z=float(lh[2] + rh[2]) / 2, knee_z=float(lk[2] + rk[2]) / 2,
        shoulder_span=float(np.linalg.norm(ls - rs)), centre=np.mean([ls, rs, lh, rh], axis=0)[:2],
    )


def girths(frame: Frame, low: float, high: float) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Levels every STEP_M from low to high, and the torso loop's hull at each (None: no loop there)."""
    levels = np.arange(low, high + 1e-9, STEP_M)
    faces = slices.faces_between(frame.vertices, frame.faces, low, high)
    return levels, [slices.loop_around(frame.vertices, faces, float(z), frame.centre) for z in levels]


def armpit_height(frame: Frame) -> float:
    """The level just below the armpits: where the torso loop's width jumps, going up, as the arms join it."""
    levels, hulls = girths(frame, frame.shoulder_z - 0.45 * frame.torso, frame.shoulder_z)
    widths = np.array([np.ptp(h[:, 0]) if h is not None else 0.0 for h in hulls])
    jumps = np.diff(widths)
    if len(jumps) == 0 or jumps.max() < ARMS_JOIN_JUMP * frame.shoulder_span:
        return frame.shoulder_z - 0.2 * frame.torso  # no clear armpit (arms held against the body)
    return float(levels[int(np.argmax(jumps))])


def chest_girth(frame: Frame) -> float:
    top = armpit_height(frame) - STEP_M
    _, hulls = girths(frame, min(top, frame.shoulder_z - 0.45 * frame.torso), top)
    return max((slices.perimeter(h) for h in hulls if h is not None), default=float("nan"))


def waist_girth(frame: Frame) -> float:
    _, hulls = girths(frame, frame.hip_z + 0.15 * frame.torso, frame.shoulder_z - 0.35 * frame.torso)
    return min((slices.perimeter(h) for h in hulls if h is not None), default=float("nan"))


def hip_girth(frame: Frame, crotch: float) -> float:
    _, hulls = girths(frame, crotch + STEP_M, frame.hip_z + 0.15 * frame.torso)
    return max((slices.perimeter(h) for h in hulls if h is not None), default=float("nan"))


def crotch_height(frame: Frame, tolerance: float = 0.002) -> float:
    """Bisection between knee and hip joint for the lowest level whose section still has a trunk loop."""
    low, high = frame.knee_z, frame.hip_z  # no trunk loop at the knee; one at the hip joint
    faces = slices.faces_between(frame.vertices, frame.faces, low, high)
    while high - low > tolerance:
        mid = (low + high) / 2
        if slices.loop_around(frame.vertices, faces, mid, frame.centre) is None:
            low = mid
        else:
            high = mid
    return high


def shoulder_breadth(frame: Frame) -> float:
    """The section's width at shoulder-joint height (deltoid to deltoid)."""
    points, _ = slices.section(frame.vertices, frame.faces, frame.shoulder_z)
    return float(np.ptp(points[..., 0])) if len(points) else float("nan")
