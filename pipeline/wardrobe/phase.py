"""Phase 2, wardrobe: garment photo (+ job.json, + an optional size-chart image) -> garment analysis.

Mask the garment, refuse photos with no garment (or a person wearing one), infer the category from the
shape, read colours / print / a texture crop, and settle size chart and fabric from job.json, the vision
LLM when one is configured, or documented defaults. Writes garment.json (the contract), mask.png,
cutout.png, texture.png and overlay.png. Backends arrive as arguments; this module loads no model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.backends.protocols import GarmentSegmenter, VisionLLM
from pipeline.codec import encode_png
from pipeline.errors import InvalidInput
from pipeline.phase_api import PhaseIO, PhaseResult, PhaseTask
from pipeline.wardrobe import render, sources
from pipeline.wardrobe.appearance import Appearance, analyse_appearance
from pipeline.wardrobe.category import CategoryGuess, accessory_shape, infer_category
from pipeline.wardrobe.contracts import Appearance as AppearanceInfo
from pipeline.wardrobe.contracts import Colour, GarmentAnalysis, ImageInfo, MaskStats, PrintInfo
from pipeline.wardrobe.person import WearerCheck, check_wearer, without_wearer
from pipeline.wardrobe.photo import Photo, decode_photo, decode_rgb
from pipeline.wardrobe.stats import mask_stats

MIN_COVERAGE = 0.02  # less garment than this: the photo holds no garment we can use
MAX_COVERAGE = 0.97  # more: no background around it, we cannot tell garment from backdrop
PHOTO_ACTION = "upload a product photo of the garment alone (flat-lay or on a ghost mannequin) on a plain background"
PNG_ALPHA = "png-alpha"
DRESSED_AS = {"upper": "an upper garment (a top)", "lower": "a lower garment (trousers or a skirt)",
              "full": "a full-length garment (a dress)"}


@dataclass(frozen=True)
class WardrobeBackends:
    segmenter: GarmentSegmenter
    vision_llm: VisionLLM | None = None


def analyse_garment(task: PhaseTask, io: PhaseIO, backends: WardrobeBackends) -> PhaseResult:
    clock = Clock()
    photo = decode_photo(io.read_input("garment"))
    alpha = photo.alpha if photo.alpha is not None else backends.segmenter.segment(photo.rgb)
    clock.lap("mask")
    stats, wearer = check_garment(photo.rgb, alpha)
    skin_removed = 0.0
    if wearer.bare_skin:  # a model's skin, and what they hold, is not the garment
        alpha, skin_removed = without_wearer(photo.rgb, alpha)
        stats = garment_stats(alpha)
    clock.lap("checks")
    guess = infer_category(alpha)
    looks = analyse_appearance(photo.rgb, alpha)
    clock.lap("shape_and_looks")
    found = sources.consult_llm(backends.vision_llm, task.spec.garment, photo.rgb, chart_loader(task, io))
    clock.lap("vision_llm")
    analysis = assemble(task, photo, stats, guess, looks, found)
    flags = doubts(guess, wearer, analysis.category.value, skin_removed)
    analysis = analysis.model_copy(update={"notes": (*analysis.notes, *flags.values())})
    write_outputs(io, photo, alpha, analysis)
    clock.lap("write")
    data = summary(analysis, clock) | {"flags": sorted(flags)}
    return PhaseResult(data=data, backends=backend_names(backends, photo))


class Clock:
    """Milliseconds per step, for the run's summary (the handler logs one line per run)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round((now - self._last) * 1000.0, 1)
        self._last = now


def check_garment(rgb: np.ndarray, alpha: np.ndarray) -> tuple[MaskStats, WearerCheck]:
    """The mask's stats and the wearer check, or InvalidInput when there is no usable garment (or a person's
    face crowns it)."""
    stats = garment_stats(alpha)
    wearer = check_wearer(rgb, alpha)
    if wearer.wearer:
        raise InvalidInput("the garment photo shows a person wearing clothes, not a garment on its own",
                           PHOTO_ACTION + "; the photo of the person goes in person.jpg")
    return stats, wearer


def garment_stats(alpha: np.ndarray) -> MaskStats:
    """The mask's stats, or InvalidInput when it holds no usable garment."""
    stats = mask_stats(alpha)
    if stats is None or stats.coverage < MIN_COVERAGE:
        raise InvalidInput("no garment found in the garment photo: nothing stands out from a plain background "
                           "around it (the photo is blank, noise, a close-up of fabric, or the garment is tiny)",
                           PHOTO_ACTION)
    if stats.coverage > MAX_COVERAGE:
        raise InvalidInput("the garment photo has no background around the garment, so it cannot be cut out",
                           PHOTO_ACTION)
    return stats


def doubts(guess: CategoryGuess, wearer: WearerCheck, category: str, skin_removed: float = 0.0) -> dict[str, str]:
    """Flags on what the photo may really be, each with the note that says what was assumed (the job goes on:
    the evidence is the outline and the colours, and the user may know better). `skin_removed`: the share of the
    photo that was the wearer's bare skin, taken out of the mask."""
    flags: dict[str, str] = {}
    accessory = accessory_shape(guess.features)
    if accessory is not None:
        flags["not_clothing"] = (f"the garment's outline looks like {accessory}, not clothing worn on the body; it "
                                 f"was dressed as {DRESSED_AS.get(category, category)}: if that is wrong, upload a "
                                 "photo of a top, trousers, a skirt or a dress")
    if wearer.bare_skin:
        removed = (f"their bare skin and what they hold ({skin_removed:.0%} of the photo) were taken out of the "
                   "garment's mask"
                   if skin_removed > 0 else "their skin may be taken for part of the garment")
        flags["worn_by_person"] = ("the garment photo seems to show the garment worn by a person (bare skin at the "
                                   f"neckline): {removed}; for the best result, " + PHOTO_ACTION)
    return flags


def chart_loader(task: PhaseTask, io: PhaseIO) -> Callable[[], np.ndarray] | None:
    """Loads the uploaded size-chart image on demand (only a configured LLM reads it), or None."""
    if "size_chart" not in task.inputs:
        return None
    return lambda: decode_rgb(io.read_input("size_chart"), "size-chart image")


def appearance_info(looks: Appearance) -> AppearanceInfo:
    printed = looks.print_region
    return AppearanceInfo(
        colours=tuple(Colour(hex=c.hex, share=c.share) for c in looks.colours),
        has_print=printed.kind != "none",
        print=PrintInfo(kind=printed.kind, box=printed.box, share=printed.share),
        texture_box=looks.texture_box,
    )


def assemble(task: PhaseTask, photo: Photo, stats: MaskStats, guess: CategoryGuess, looks: Appearance,
             found: sources.Findings) -> GarmentAnalysis:
    spec = task.spec.garment
    notes, used = list(found.notes), list[str]()
    category = sources.decide_category(spec, guess, found.fabric, notes)
    if stats.touches_border:
        notes.append("the garment runs off the edge of the photo: part of it may be missing")
    h, w = photo.rgb.shape[:2]
    return GarmentAnalysis(
        image=ImageInfo(width=w, height=h, original_width=photo.original_size[0],
                        original_height=photo.original_size[1]),
        category=category,
        mask=stats,
        appearance=appearance_info(looks),
        size_chart=sources.decide_chart(spec, found.chart, used, notes),
        fabric=sources.decide_fabric(spec, category.value, found.fabric, used),
        defaults_used=tuple(used),
        notes=tuple(notes),
    )


def write_outputs(io: PhaseIO, photo: Photo, alpha: np.ndarray, analysis: GarmentAnalysis) -> None:
    """Images first, garment.json last (the handler's _manifest.json comes after all of them)."""
    io.write("mask.png", encode_png(alpha), "image/png")
    io.write("cutout.png", encode_png(render.cutout(photo.rgb, alpha)), "image/png")
    io.write("texture.png", encode_png(render.crop(photo.rgb, analysis.appearance.texture_box)), "image/png")
    io.write("overlay.png", encode_png(render.overlay(photo.rgb, alpha, analysis)), "image/png")
    io.write("garment.json", analysis.model_dump_json(indent=2).encode(), "application/json")


def backend_names(backends: WardrobeBackends, photo: Photo) -> dict[str, str]:
    seg = backends.segmenter
    names = {"segmenter": PNG_ALPHA if photo.alpha is not None else f"{seg.name} {seg.version}"}
    if backends.vision_llm is not None:
        names["vision_llm"] = f"{backends.vision_llm.name} {backends.vision_llm.version}"
    return names


def summary(analysis: GarmentAnalysis, clock: Clock) -> dict[str, object]:
    return {
        "category": analysis.category.value,
        "category_confidence": analysis.category.confidence,
        "category_source": analysis.category.source,
        "coverage": analysis.mask.coverage,
        "colours": [c.hex for c in analysis.appearance.colours],
        "print": analysis.appearance.print.kind,
        "size_chart_source": analysis.size_chart.source,
        "defaults_used": list(analysis.defaults_used),
        "notes": list(analysis.notes),
        "timings_ms": clock.laps,
    }
