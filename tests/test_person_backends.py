"""The CPU person backends on real models: mediapipe landmarks and mask, dlib face identity.

Generated images (drawn figures, a blank wall, noise, the drawn sample garment) always run; the dev photos
add real people, flat-lay garments and composites of two people when ../shared/data/tryon is there. The
pure helpers (rejection rules, coordinate mapping, notes) and the fakes run without any model.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fakes_person import FakeFaceEmbedder, FakePersonLandmarker, fake_face, standing_person
from pipeline.backends import mediapipe_person as mpp
from pipeline.backends.dlib_face import DlibFaceEmbedder
from pipeline.backends.mediapipe_person import MediapipePersonLandmarker
from pipeline.backends.protocols import FaceEmbedder, PersonLandmarker, PersonObservation
from pipeline.sample import sample_garment

TORSO = [11, 12, 23, 24]
DISTINCT = ("01008_00", "07966_00", "model_6", "model_7")  # four clearly different people, each with a face
HEAD_CROPPED = "049205_0"  # the photo stops at the nose: no face


@pytest.fixture(scope="module")
def landmarker() -> MediapipePersonLandmarker:
    return MediapipePersonLandmarker()


@pytest.fixture(scope="module")
def embedder() -> DlibFaceEmbedder:
    return DlibFaceEmbedder()


# ---- generated images ---------------------------------------------------------------------------------------

SKIN, TOP, LEGS, HAIR, SHOES = (224, 178, 150), (90, 110, 140), (50, 55, 70), (70, 50, 40), (30, 30, 30)


def draw_figure(draw: ImageDraw.ImageDraw, cx: int, top: int, s: float) -> None:
    """A flat drawn person (face, hair, top, arms, trousers, shoes), 920 * s px tall, that Pose finds."""
    def p(x: float, y: float) -> tuple[float, float]:
        return cx + x * s, top + y * s

    def w(v: float) -> int:
        return max(1, round(v * s))

    draw.ellipse([*p(-50, 0), *p(50, 130)], fill=SKIN)
    draw.chord([*p(-54, -6), *p(54, 90)], 180, 360, fill=HAIR)
    for ex in (-20, 20):
        draw.ellipse([*p(ex - 9, 55), *p(ex + 9, 66)], fill=(255, 255, 255))
        draw.ellipse([*p(ex - 5, 56), *p(ex + 5, 65)], fill=(40, 30, 30))
        draw.line([p(ex - 12, 47), p(ex + 12, 45)], fill=HAIR, width=w(4))
    draw.line([p(0, 65), p(-6, 90), p(4, 92)], fill=(170, 120, 100), width=w(3))
    draw.line([p(-16, 106), p(0, 110), p(16, 106)], fill=(170, 70, 70), width=w(5))
    draw.rectangle([*p(-22, 120), *p(22, 165)], fill=SKIN)
    draw.polygon([p(-115, 165), p(115, 165), p(95, 470), p(-95, 470)], fill=TOP)
    for side in (-1, 1):
        draw.line([p(side * 108, 180), p(side * 170, 330), p(side * 195, 480)], fill=SKIN, width=w(40))
        draw.ellipse([*p(side * 195 - 22, 470), *p(side * 195 + 22, 530)], fill=SKIN)
        draw.line([p(side * 50, 470), p(side * 65, 690), p(side * 75, 880)], fill=LEGS, width=w(66))
        draw.ellipse([*p(side * 80 - 40, 865), *p(side * 80 + 40, 905)], fill=SHOES)
    draw.rectangle([*p(-95, 450), *p(95, 530)], fill=LEGS)


def drawn_scene(figures: list[tuple[int, int, float]], size: tuple[int, int]) -> np.ndarray:
    """Figures (centre x, top y, scale) drawn on a light studio-grey wall."""
    image = Image.new("RGB", size, (232, 232, 228))
    draw = ImageDraw.Draw(image)
    for cx, top, scale in figures:
        draw_figure(draw, cx, top, scale)
    return np.asarray(image)


def figure_box(cx: int, top: int, s: float) -> tuple[float, float, float, float]:
    return cx - 220 * s, top - 6 * s, cx + 220 * s, top + 905 * s


def inside(points: np.ndarray, box: tuple[float, float, float, float], slack: float = 0.0) -> bool:
    x0, y0, x1, y1 = box
    x, y = points[:, 0], points[:, 1]
    return bool(((x >= x0 - slack) & (x <= x1 + slack) & (y >= y0 - slack) & (y <= y1 + slack)).all())


def check_observation(person: PersonObservation, rgb: np.ndarray) -> None:
    """The contract's shapes and types, and landmarks that agree with the box and the frame."""
    height, width = rgb.shape[:2]
    assert person.image_size == (width, height)
    assert person.landmarks.shape == (33, 3) and person.world.shape == (33, 3)
    assert person.mask.shape == (height, width) and person.mask.dtype == np.float32
    assert 0.0 <= person.mask.min() and person.mask.max() <= 1.0
    seen = person.landmarks[person.landmarks[:, 2] > 0.5]
    assert inside(seen, person.box, slack=0.01 * height), person.box
    off = ~mpp.inside_frame(person.landmarks, width, height)
    assert (person.landmarks[off, 2] == 0).all()  # off-frame points are never visible
    assert float(np.median(np.abs(person.world[:, :2]))) < 1.5  # metres, not pixels


def test_a_drawn_figure_is_found_with_its_torso_inside_it(landmarker: MediapipePersonLandmarker) -> None:
    figure = (384, 100, 0.9)
    rgb = drawn_scene([figure], (768, 1024))
    person = landmarker.find_person(rgb)
    assert person is not None
    check_observation(person, rgb)
    assert person.people == 1 and person.notes == ()
    assert inside(person.landmarks[TORSO, :2], figure_box(*figure))
    assert (person.landmarks[TORSO, 2] > 0.5).all()
    assert mpp.support(person.mask, person.landmarks[TORSO, :2]) > 0.5


@pytest.mark.parametrize("what", ["blank wall", "noise", "drawn garment"])
def test_nothing_person_like_yields_none(landmarker: MediapipePersonLandmarker, what: str) -> None:
    if what == "blank wall":
        rgb = np.full((1024, 768, 3), 235, np.uint8)
    elif what == "noise":
        rgb = np.random.default_rng(5).integers(0, 255, (1024, 768, 3), dtype=np.uint8)
    else:
        rgb = np.asarray(Image.open(io.BytesIO(sample_garment())).convert("RGB"))
    assert landmarker.find_person(rgb) is None


@pytest.mark.parametrize("figures, chosen, where", [
    ([(330, 100, 0.9), (900, 450, 0.55)], 0, "on the left"),
    ([(330, 450, 0.55), (850, 100, 0.9)], 1, "on the right"),
])
def test_of_two_drawn_people_the_larger_is_used_and_both_are_counted(
        landmarker: MediapipePersonLandmarker, figures: list[tuple[int, int, float]], chosen: int, where: str) -> None:
    rgb = drawn_scene(figures, (1200, 1024))
    person = landmarker.find_person(rgb)
    assert person is not None
    check_observation(person, rgb)
    assert person.people == 2
    assert inside(person.landmarks[TORSO, :2], figure_box(*figures[chosen]))
    assert person.notes[0] == f"2 people found; used the most prominent (the largest, {where})"
    other = figure_box(*figures[1 - chosen])
    assert person.mask[int(other[1]):int(other[3]), max(0, int(other[0])):int(other[2])].max() < 0.5


def test_three_drawn_people_are_counted(landmarker: MediapipePersonLandmarker) -> None:
    figures = [(250, 450, 0.55), (700, 100, 0.9), (1150, 420, 0.6)]
    person = landmarker.find_person(drawn_scene(figures, (1400, 1024)))
    assert person is not None and person.people == 3
    assert inside(person.landmarks[TORSO, :2], figure_box(*figures[1]))
    assert "in the middle" in person.notes[0]


def test_calls_from_several_threads_agree_with_one_at_a_time(landmarker: MediapipePersonLandmarker) -> None:
    images = [drawn_scene([(384, 100, 0.9)], (768, 1024)), drawn_scene([(330, 100, 0.9), (900, 450, 0.55)],
                                                                       (1200, 1024))]
    expected = [landmarker.find_person(rgb) for rgb in images]
    results: dict[int, PersonObservation | None] = {}

    def work(i: int) -> None:
        results[i] = landmarker.find_person(images[i % 2])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, got in results.items():
        want = expected[i % 2]
        assert got is not None and want is not None and got.people == want.people
        np.testing.assert_allclose(got.landmarks, want.landmarks, atol=0.5)


@pytest.mark.parametrize("what", ["blank wall", "drawn figure without a face"])
def test_no_face_yields_an_empty_list(embedder: DlibFaceEmbedder, what: str) -> None:
    rgb = np.full((1024, 768, 3), 235, np.uint8)
    if what != "blank wall":
        figure = drawn_scene([(384, 100, 0.9)], (768, 1024)).copy()
        figure[90:230, 300:470] = SKIN  # a blank oval of skin where the face was
        rgb = figure
    assert embedder.faces(rgb) == []


def test_bad_input_is_refused(landmarker: MediapipePersonLandmarker, embedder: DlibFaceEmbedder) -> None:
    grey = np.zeros((64, 64), np.uint8)
    with pytest.raises(ValueError):
        landmarker.find_person(grey)
    with pytest.raises(ValueError):
        embedder.faces(grey.astype(np.float32))


# ---- the pure helpers --------------------------------------------------------------------------------------


def detection_of(person: PersonObservation) -> mpp.Detection:
    return mpp.Detection(landmarks=person.landmarks.copy(), world=person.world, mask=person.mask)


def test_the_rules_reject_degenerate_poses() -> None:
    good = detection_of(standing_person())
    assert mpp.rejection(good) is None

    few = detection_of(standing_person())
    few.landmarks[[23, 24], 2] = 0.2  # hips not confident
    assert "too few" in str(mpp.rejection(few))

    flipped = detection_of(standing_person())
    flipped.landmarks[:, 1] = 1024 - flipped.landmarks[:, 1]  # a print posed upside down
    assert "upright" in str(mpp.rejection(flipped))

    lying = detection_of(standing_person())
    lying.landmarks[:, :2] = lying.landmarks[:, ::-1][:, 1:]  # x <-> y: the body lies along x
    assert "upright" in str(mpp.rejection(lying))

    hollow = mpp.Detection(landmarks=good.landmarks, world=good.world, mask=np.zeros_like(good.mask))
    assert "mask" in str(mpp.rejection(hollow))


def test_the_shoulder_span_tells_a_twisted_pose() -> None:
    person = detection_of(standing_person())
    assert 0.55 < mpp.shoulder_span(person) < 0.9
    twisted = detection_of(standing_person())
    twisted.landmarks[11, 0], twisted.landmarks[12, 0] = twisted.landmarks[12, 0] + 80, twisted.landmarks[11, 0] - 80
    assert mpp.shoulder_span(twisted) < mpp.MIN_SHOULDER_SPAN


def test_crop_coordinates_map_back_to_the_photo_and_off_frame_points_lose_visibility() -> None:
    marks = [SimpleNamespace(x=0.5, y=0.5, z=0.0, visibility=0.9), SimpleNamespace(x=0.5, y=1.2, z=0.0, visibility=0.6)]
    result = SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=marks),
                             pose_world_landmarks=SimpleNamespace(landmark=marks),
                             segmentation_mask=np.ones((100, 200), np.float32))
    detection = mpp.to_detection(result, 200, 100, offset=(300, 50), size=(800, 160))
    np.testing.assert_allclose(detection.landmarks[0], [400, 100, 0.9], atol=1e-5)
    assert detection.landmarks[1, 2] == 0.0  # y = 170 lies below the 160 px photo
    assert detection.mask.shape == (160, 800) and detection.mask[50:150, 300:500].all()
    assert detection.mask.sum() == 100 * 200  # the crop's mask in its place, nothing else


def test_notes_name_the_crowd_and_the_parts_cut_off() -> None:
    left, right = detection_of(standing_person(box=(50, 0, 250, 400))), detection_of(standing_person())
    assert mpp.crowd_note(left, [right]) == "2 people found; used the most prominent (the largest, on the left)"
    thigh_crop = standing_person(size=(768, 600), box=(200, 40, 560, 1000))
    assert mpp.cut_off_notes(thigh_crop.landmarks, 768, 600) == ["outside the photo: knees, feet"]
    assert mpp.cut_off_notes(standing_person().landmarks, 768, 1024) == []


def test_the_fakes_follow_the_protocols_and_return_what_they_were_given() -> None:
    person = standing_person(people=2, notes=("2 people found",))
    landmarker = FakePersonLandmarker(person)
    faces = FakeFaceEmbedder([fake_face((10, 10, 50, 50), identity=1), fake_face((100, 100, 200, 200), identity=2)])
    assert isinstance(landmarker, PersonLandmarker) and isinstance(faces, FaceEmbedder)
    rgb = np.zeros((1024, 768, 3), np.uint8)
    assert landmarker.find_person(rgb) is person and landmarker.calls == 1
    assert FakePersonLandmarker().find_person(rgb) is None
    found = faces.faces(rgb)
    assert [f.box for f in found] == [(100, 100, 200, 200), (10, 10, 50, 50)]  # largest first
    assert np.linalg.norm(found[0].embedding - found[1].embedding) > faces.threshold
    assert np.linalg.norm(fake_face((0, 0, 9, 9), 2).embedding - found[0].embedding) == 0.0
    assert inside(person.landmarks[:, :2], person.box)
    assert mpp.support(person.mask, np.vstack([person.landmarks[[0], :2], person.landmarks[TORSO, :2].mean(0)])) == 1


# ---- the dev photos -------------------------------------------------------------------------------------------


def load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def by_stem(photos: list[Path], stem: str) -> Path:
    found = [p for p in photos if p.stem == stem]
    if not found:
        pytest.skip(f"dev photo {stem} is absent")
    return found[0]


def side_by_side(left: np.ndarray, right: np.ndarray, left_scale: float, right_scale: float) -> np.ndarray:
    """Two photos scaled and set bottom-aligned on one wall, left to right."""
    parts = [Image.fromarray(a).resize((round(a.shape[1] * s), round(a.shape[0] * s)))
             for a, s in ((left, left_scale), (right, right_scale))]
    height = max(p.height for p in parts)
    canvas = Image.new("RGB", (parts[0].width + parts[1].width, height), (235, 235, 232))
    canvas.paste(parts[0], (0, height - parts[0].height))
    canvas.paste(parts[1], (parts[0].width, height - parts[1].height))
    return np.asarray(canvas)


@pytest.mark.devdata
def test_every_dev_person_is_found(landmarker: MediapipePersonLandmarker, dev_people: list[Path]) -> None:
    for path in dev_people:
        rgb = load(path)
        person = landmarker.find_person(rgb)
        assert person is not None, path.name
        check_observation(person, rgb)
        assert person.people == 1 and not any("may be wrong" in n for n in person.notes), (path.name, person.notes)
        assert (person.landmarks[TORSO, 2] > 0.5).all(), path.name
        x0, y0, x1, y1 = person.box
        assert (x1 - x0) * (y1 - y0) > 0.1 * rgb.shape[0] * rgb.shape[1], path.name


@pytest.mark.devdata
def test_a_pose_twisted_on_the_whole_photo_is_posed_again_on_a_crop(landmarker: MediapipePersonLandmarker,
                                                                   dev_people: list[Path]) -> None:
    rgb = load(by_stem(dev_people, "053228_0"))  # on the whole photo Pose crosses her shoulders (span 0.29)
    person = landmarker.find_person(rgb)
    assert person is not None
    assert mpp.shoulder_span(detection_of(person)) > 0.6
    assert person.landmarks[11, 0] > person.landmarks[12, 0] + 0.2 * (person.box[2] - person.box[0])


@pytest.mark.devdata
def test_knees_below_a_thigh_crop_are_not_visible(landmarker: MediapipePersonLandmarker,
                                                  dev_people: list[Path]) -> None:
    person = landmarker.find_person(load(by_stem(dev_people, "01008_00")))  # cropped at the thigh
    assert person is not None
    assert (person.landmarks[25:33, 2] == 0).all()
    assert "outside the photo: knees, feet" in person.notes


@pytest.mark.devdata
def test_no_flat_lay_garment_is_taken_for_a_person(landmarker: MediapipePersonLandmarker,
                                                   dev_garments: list[Path]) -> None:
    found = [p.name for p in dev_garments if landmarker.find_person(load(p)) is not None]
    assert found == []


@pytest.mark.devdata
@pytest.mark.parametrize("larger_on_left", [True, False])
def test_of_two_dev_people_the_larger_is_used(landmarker: MediapipePersonLandmarker, dev_people: list[Path],
                                              larger_on_left: bool) -> None:
    big, small = load(by_stem(dev_people, "model_3")), load(by_stem(dev_people, "model_6"))
    rgb = side_by_side(big, small, 1.0, 0.7) if larger_on_left else side_by_side(small, big, 0.7, 1.0)
    person = landmarker.find_person(rgb)
    assert person is not None
    check_observation(person, rgb)
    assert person.people == 2
    split = big.shape[1] if larger_on_left else round(small.shape[1] * 0.7)
    centre = person.landmarks[TORSO, 0].mean()
    assert (centre < split) if larger_on_left else (centre > split)
    assert ("on the left" if larger_on_left else "on the right") in person.notes[0]
    assert person.box[3] - person.box[1] > 0.9 * rgb.shape[0]  # the full-height person's mask


@pytest.mark.devdata
def test_one_face_keeps_its_identity_mirrored_and_resized(embedder: DlibFaceEmbedder,
                                                          dev_people: list[Path]) -> None:
    for stem in DISTINCT:
        rgb = load(by_stem(dev_people, stem))
        original = embedder.faces(rgb)
        assert len(original) == 1, stem
        face = original[0]
        assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
        assert face.landmarks.shape == (5, 2) and inside(face.landmarks, face.box, slack=5)
        variants = [np.ascontiguousarray(rgb[:, ::-1]), np.asarray(Image.fromarray(rgb).resize((384, 512)))]
        for variant in variants:
            again = embedder.faces(variant)
            assert len(again) == 1, stem
            assert np.linalg.norm(again[0].embedding - face.embedding) < embedder.threshold, stem


@pytest.mark.devdata
def test_different_people_are_farther_apart_than_the_threshold(embedder: DlibFaceEmbedder,
                                                               dev_people: list[Path]) -> None:
    embeddings = [embedder.faces(load(by_stem(dev_people, stem)))[0].embedding for stem in DISTINCT]
    for i in range(len(embeddings)):
        for j in range(i + 1, len(embeddings)):
            distance = np.linalg.norm(embeddings[i] - embeddings[j])
            assert distance > embedder.threshold, (DISTINCT[i], DISTINCT[j], distance)


@pytest.mark.devdata
def test_faces_come_largest_first_and_photos_without_one_give_none(embedder: DlibFaceEmbedder,
                                                                   dev_people: list[Path],
                                                                   dev_garments: list[Path]) -> None:
    big, small = load(by_stem(dev_people, DISTINCT[0])), load(by_stem(dev_people, DISTINCT[2]))
    faces = embedder.faces(side_by_side(small, big, 0.6, 1.0))
    assert len(faces) == 2
    assert faces[0].box[0] > 0.6 * small.shape[1]  # the larger face, on the right, first
    solo = [embedder.faces(big)[0].embedding, embedder.faces(small)[0].embedding]
    for face, reference in zip(faces, solo, strict=True):
        assert np.linalg.norm(face.embedding - reference) < embedder.threshold
    assert embedder.faces(load(by_stem(dev_people, HEAD_CROPPED))) == []
    assert embedder.faces(load(by_stem(dev_garments, "00126_00"))) == []  # a logo T-shirt, no printed face
