"""The P2P fit report on hand-computed cases (the arithmetic is in the comments).

Most cases use a fabric of thickness 10/pi mm, whose bulk is pi * t / 10 = 1.0 cm exactly, so
effective ease = ease - 1 for a rigid fabric. Default chart (body cm): XS 84/70/88, S 90/76/94, M 96/82/100,
L 102/88/106, XL 108/96/112, XXL 116/104/120 (chest/waist/hip). Design ease: upper chest 10, waist 14;
lower waist 2, hip 6; full chest 8, waist 8, hip 10.
"""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from pipeline.body.measure import Measurement, Measurements
from pipeline.errors import InvalidInput
from pipeline.fitting.contracts import FitReport
from pipeline.fitting.fit_report import (
    BANDS,
    Band,
    bulk_cm,
    effective_ease,
    fit_report,
    label_for,
    overall_label,
    recommend,
    region_fit,
)
from pipeline.spec import Category, SizeRow
from pipeline.wardrobe import defaults
from pipeline.wardrobe.contracts import (
    Appearance,
    CategoryInfo,
    Colour,
    Fabric,
    GarmentAnalysis,
    ImageInfo,
    MaskStats,
    PrintInfo,
    SizeChart,
)

ONE_CM = 10 / math.pi  # mm of fabric whose bulk is 1.0 cm


def body(chest: float = 100, waist: float = 90, hip: float = 104, confidence: float = 0.8) -> Measurements:
    def m(v: float, c: float = confidence) -> Measurement:
        return Measurement(value_cm=v, confidence=c, basis="test")

    return Measurements(height=m(178, 1.0), chest=m(chest), waist=m(waist), hip=m(hip), inseam=m(80),
                        shoulder_width=m(45))


def fabric(stretch: float = 0.0, thickness_mm: float = ONE_CM, source: str = "job.json") -> Fabric:
    return Fabric(stretch=stretch, stretch_source=source, thickness_mm=thickness_mm, thickness_source=source)


def garment(category: Category = "upper", size: str | None = None, rows: tuple[SizeRow, ...] = defaults.SIZE_CHART,
            stretch: float = 0.0, thickness_mm: float = ONE_CM, defaults_used: tuple[str, ...] = ()) -> GarmentAnalysis:
    chart_source = "default" if "size_chart" in defaults_used else "job.json"
    return GarmentAnalysis(
        image=ImageInfo(width=100, height=100, original_width=100, original_height=100),
        category=CategoryInfo(value=category, confidence=1.0, source="job.json", inferred=category,
                              inferred_confidence=0.5),
        mask=MaskStats(coverage=0.4, box=(10, 10, 90, 90), holes=1, parts=1, touches_border=False),
        appearance=Appearance(colours=(Colour(hex="#112233", share=1.0),), has_print=False,
                              print=PrintInfo(kind="none", share=0.0), texture_box=(40, 40, 60, 60)),
        size_chart=SizeChart(rows=rows, source=chart_source, size=size,
                             size_source="job.json" if size else "unknown"),
        fabric=Fabric(stretch=stretch, stretch_source="job.json", thickness_mm=thickness_mm,
                      thickness_source="job.json"),
        defaults_used=defaults_used,
    )


def by_region(report: FitReport) -> dict[str, tuple[float, float, float, str]]:
    return {r.region: (r.garment_cm, r.ease_cm, r.effective_ease_cm, r.label) for r in report.regions}


def test_bulk_and_effective_ease() -> None:
    assert bulk_cm(ONE_CM) == pytest.approx(1.0)
    assert bulk_cm(0.6) == pytest.approx(0.18850, abs=1e-5)  # pi * 0.06
    assert effective_ease(6.0, 100, 0.0, ONE_CM) == pytest.approx(5.0)  # 6 - 1
    # rigid: -1 stays -1; stretch 0.3 on a 100 cm chest absorbs 0.1 * 0.3 * 100 = 3 cm: min(0, -1 + 3) = 0
    assert effective_ease(0.0, 100, 0.0, ONE_CM) == pytest.approx(-1.0)
    assert effective_ease(0.0, 100, 0.3, ONE_CM) == 0.0
    # more negative ease than the stretch covers: -7 + 3 = -4
    assert effective_ease(-6.0, 100, 0.3, ONE_CM) == pytest.approx(-4.0)
    # stretch never loosens a garment with room to spare
    assert effective_ease(6.0, 100, 1.0, ONE_CM) == pytest.approx(5.0)


@pytest.mark.parametrize(("eff", "label"), [(-0.01, "too small"), (0.0, "tight"), (3.99, "tight"), (4.0, "regular"),
                                            (15.99, "regular"), (16.0, "loose"), (40.0, "loose")])
def test_label_boundaries_upper_chest(eff: float, label: str) -> None:
    assert BANDS["upper"]["chest"] == Band(10, 4, 16)
    assert label_for(BANDS["upper"]["chest"], eff) == label


def test_label_boundary_survives_float_noise() -> None:
    # ease 5 - bulk pi * (10/pi) / 10 may be 3.9999999999999996: still exactly 4 -> regular
    assert label_for(BANDS["upper"]["chest"], effective_ease(5.0, 100, 0.0, ONE_CM)) == "regular"


def test_upper_exact_eases_for_the_garments_own_size() -> None:
    report = fit_report(body(chest=100, waist=90), garment("upper", size="M"))
    # chest: M 96 + 10 = 106, ease 106 - 100 = 6, effective 6 - 1 = 5 -> regular [4, 16)
    # waist: M 82 + 14 = 96, ease 96 - 90 = 6, effective 5 -> regular [4, 24)
    assert by_region(report) == {"chest": (106, 6, 5, "regular"), "waist": (96, 6, 5, "regular")}
    assert (report.size_evaluated, report.size_source) == ("M", "job.json")
    assert report.overall_label == "regular"
    assert report.prompt_cues == ("natural fit across the chest", "natural fit at the waist", "true-to-size fit")
    assert report.regions[0].confidence == 0.8 and report.defaults_used == () and report.notes == ()


def test_recommended_size_is_closest_to_regular() -> None:
    # body chest 100, waist 90, rigid, bulk 1; distance = |eff chest - 10| + |eff waist - 14|
    # XS: chest 94 - 100 = -6 -> too small;  S: chest 100 - 100 = 0, eff -1 -> too small
    # M: eff 5, 5 -> 5 + 9 = 14;  L: chest 112 - 100 = 12 eff 11, waist 102 - 90 = 12 eff 11 -> 1 + 3 = 4
    # XL: chest 118 eff 17, waist 110 eff 19 -> 7 + 5 = 12;  XXL: eff 25, 27 -> 15 + 13 = 28  => L
    assert recommend("upper", defaults.SIZE_CHART, body(), fabric()).label == "L"
    assert fit_report(body(), garment("upper", size="M")).recommended_size == "L"


def test_stretch_turns_too_small_into_tight() -> None:
    rigid = fit_report(body(chest=100, waist=90), garment("upper", size="S", stretch=0.0))
    # S: chest 90 + 10 = 100, ease 0, eff -1 -> too small; waist 76 + 14 = 90, ease 0, eff -1 -> too small
    assert by_region(rigid) == {"chest": (100, 0, -1, "too small"), "waist": (90, 0, -1, "too small")}
    assert rigid.overall_label == "too small"
    assert rigid.prompt_cues == ("straining at the chest", "straining at the waist",
                                 "garment visibly too small, fabric pulling")
    stretchy = fit_report(body(chest=100, waist=90), garment("upper", size="S", stretch=0.3))
    # chest: -1 + 0.1 * 0.3 * 100 = 2 -> capped at 0 -> tight; waist: -1 + 0.1 * 0.3 * 90 = 1.7 -> 0 -> tight
    assert by_region(stretchy) == {"chest": (100, 0, 0, "tight"), "waist": (90, 0, 0, "tight")}
    assert stretchy.prompt_cues == ("snug across the chest", "snug at the waist", "close-fitting silhouette")


def test_thick_fabric_tightens_the_verdict() -> None:
    # chest garment 106 on a 101.5 chest: ease 4.5; thin (0.1 mm, bulk 0.031) -> 4.47 regular;
    # 5 mm (bulk pi * 0.5 = 1.571) -> 2.93 tight
    thin = region_fit("upper", "chest", 96, body(chest=101.5), fabric(thickness_mm=0.1), 1.0)
    thick = region_fit("upper", "chest", 96, body(chest=101.5), fabric(thickness_mm=5.0), 1.0)
    assert (thin.effective_ease_cm, thin.label) == (4.47, "regular")
    assert (thick.effective_ease_cm, thick.label) == (2.93, "tight")


def test_unknown_size_evaluates_the_recommended_one() -> None:
    report = fit_report(body(), garment("upper", size=None))
    assert (report.size_evaluated, report.size_source, report.recommended_size) == ("L", "recommended", "L")
    # L: eff 11, 11 (see the recommendation test) -> regular at both
    assert [r.label for r in report.regions] == ["regular", "regular"]
    assert any("size is unknown" in n and "L" in n for n in report.notes)


def test_size_not_in_chart_evaluates_the_recommended_one_and_matches_case_insensitively() -> None:
    odd = fit_report(body(), garment("upper", size="XXXL"))
    assert (odd.size_evaluated, odd.size_source) == ("L", "recommended")
    assert any("'XXXL' is not in the size chart" in n for n in odd.notes)
    assert fit_report(body(), garment("upper", size=" m ")).size_evaluated == "M"


def test_ties_go_to_the_larger_size() -> None:
    rows = (SizeRow(label="A", chest_cm=96), SizeRow(label="B", chest_cm=106))
    # A: 106 - 100 = 6, eff 5 -> |5 - 10| = 5;  B: 116 - 100 = 16, eff 15 -> |15 - 10| = 5: tie -> B (later)
    assert recommend("upper", rows, body(), fabric()).label == "B"
    assert recommend("upper", tuple(reversed(rows)), body(), fabric()).label == "A"  # "larger" = later row


def test_lower_garment_waist_and_hip() -> None:
    report = fit_report(body(waist=84, hip=104), garment("lower", size="M"))
    # M: waist 82 + 2 = 84, ease 0, eff -1 -> too small; hip 100 + 6 = 106, ease 2, eff 1 -> tight [0, 2)
    assert by_region(report) == {"waist": (84, 0, -1, "too small"), "hip": (106, 2, 1, "tight")}
    # L: waist 90 - 84 = 6 eff 5 -> |5 - 2| = 3; hip 112 - 104 = 8 eff 7 -> |7 - 6| = 1; total 4
    # XL: waist 98 eff 13 -> 11; hip 118 eff 13 -> 7; total 18.  M, S, XS have a too small region  => L
    assert report.recommended_size == "L"
    assert report.overall_label == "too small"
    assert report.prompt_cues == ("straining at the waist", "snug over the hips",
                                  "garment visibly too small, fabric pulling")


def test_full_garment_chest_waist_hip_and_a_natural_tie() -> None:
    report = fit_report(body(chest=92, waist=76, hip=98), garment("full", size="S"))
    # S: chest 90 + 8 = 98, ease 6, eff 5 -> regular [3, 14); waist 76 + 8 = 84, ease 8, eff 7 -> regular [3, 16)
    #    hip 94 + 10 = 104, ease 6, eff 5 -> regular [4, 18)
    assert by_region(report) == {"chest": (98, 6, 5, "regular"), "waist": (84, 8, 7, "regular"),
                                 "hip": (104, 6, 5, "regular")}
    # distance S: |5-8| + |7-8| + |5-10| = 9;  M: chest 104-92 = 12 eff 11 -> 3, waist 90-76 = 14 eff 13 -> 5,
    # hip 110-98 = 12 eff 11 -> 1: 9. Tie -> the larger, M
    assert report.recommended_size == "M"
    assert report.prompt_cues[-1] == "true-to-size fit"


def test_loose_and_overall_is_the_most_constraining() -> None:
    report = fit_report(body(), garment("upper", size="XXL"))
    # XXL: chest 126 - 100 = 26 eff 25 -> loose (>= 16); waist 118 - 90 = 28 eff 27 -> loose (>= 24)
    assert [r.label for r in report.regions] == ["loose", "loose"]
    assert report.prompt_cues == ("loose, relaxed chest", "relaxed waist", "relaxed, roomy silhouette")
    tight = region_fit("upper", "chest", 90, body(), fabric(stretch=0.3), 1.0)  # eff 0 -> tight
    loose = region_fit("upper", "waist", 104, body(), fabric(), 1.0)  # eff 27 -> loose
    assert overall_label([loose, tight]) == "tight"


def test_defaults_lower_confidence_and_are_listed() -> None:
    used = ("category", "size_chart", "fabric.stretch", "fabric.thickness")
    report = fit_report(body(confidence=0.5), garment("upper", size="L", stretch=0.3, defaults_used=used))
    assert report.defaults_used == ("size_chart", "fabric.stretch", "fabric.thickness")  # only what the fit uses
    # 0.5 * 0.6 (chart) * 0.85 (stretch) * 0.95 (thickness) = 0.24225
    assert [r.confidence for r in report.regions] == [0.242, 0.242]
    assert any("generic default chart" in n for n in report.notes)
    assert any("fabric stretch: the default" in n for n in report.notes)
    only_chart = fit_report(body(confidence=0.5), garment("upper", size="L", defaults_used=("size_chart",)))
    assert only_chart.regions[0].confidence == 0.3  # 0.5 * 0.6


def test_rows_missing_a_region_and_chart_lengths() -> None:
    rows = (SizeRow(label="S", waist_cm=76, length_cm=100), SizeRow(label="M", waist_cm=82, hip_cm=100))
    report = fit_report(body(waist=84, hip=104), garment("lower", size="S", rows=rows))
    # only M gives both regions, so it is recommended; S is judged on the waist alone: 78 - 84 = -6 -> too small
    assert report.recommended_size == "M"
    assert [(r.region, r.label) for r in report.regions] == [("waist", "too small")]
    assert any("no hip value" in n for n in report.notes)
    assert any("length is not judged" in n for n in report.notes)


def test_a_chart_without_the_categorys_regions_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="waist, hip"):
        fit_report(body(), garment("lower", rows=(SizeRow(label="M", chest_cm=96),)))


def test_contract_is_strict_and_round_trips() -> None:
    report = fit_report(body(), garment("upper", size="M"))
    again = FitReport.model_validate(json.loads(report.model_dump_json()))
    assert again == report and again.schema_version == 1
    with pytest.raises(ValidationError):
        FitReport.model_validate({**report.model_dump(), "surprise": 1})
    with pytest.raises(ValidationError):
        report.regions[0].label = "loose"  # type: ignore[misc]
