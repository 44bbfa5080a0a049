"""`garment.json`: what the wardrobe phase says about a garment. A strict contract (frozen, no extra
fields, versioned) that phase 3 reads.

Every value says where it came from: the user's job.json, the image itself ("inferred"), the vision LLM,
or a documented default; `defaults_used` lists the fields that fell back to defaults so nobody mistakes a
guess for a measurement. Pixel boxes are (x0, y0, x1, y1), x1 / y1 exclusive, in the pixels of the
analysed image, the frame of mask.png, cutout.png and overlay.png (`image.width` x `image.height`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.spec import Category, SizeRow

SCHEMA_VERSION: Literal[1] = 1
CategorySource = Literal["job.json", "inferred", "vision-llm"]
ValueSource = Literal["job.json", "vision-llm", "default"]
PrintKind = Literal["none", "placed", "all-over"]
Box = tuple[int, int, int, int]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageInfo(_Strict):
    width: int = Field(gt=0, description="the analysed image, the frame of every box and output image")
    height: int = Field(gt=0)
    original_width: int = Field(gt=0, description="the uploaded photo (larger photos are analysed scaled down)")
    original_height: int = Field(gt=0)


class CategoryInfo(_Strict):
    value: Category
    confidence: float = Field(ge=0, le=1)
    source: CategorySource
    inferred: Category = Field(description="what the garment's shape says, whatever the source")
    inferred_confidence: float = Field(ge=0, le=1)


class MaskStats(_Strict):
    coverage: float = Field(ge=0, le=1, description="share of the image that is garment")
    box: Box
    holes: int = Field(ge=0, description="background openings inside the garment (neck, between straps)")
    parts: int = Field(ge=1, description="separate pieces of garment (1 for almost every photo)")
    touches_border: bool = Field(description="the garment runs off the photo: part of it may be missing")


class Colour(_Strict):
    hex: str = Field(pattern=r"^#[0-9a-f]{6}$")
    share: float = Field(ge=0, le=1, description="of the garment's pixels")


class PrintInfo(_Strict):
    kind: PrintKind
    box: Box | None = None
    share: float = Field(ge=0, le=1, description="of the garment's pixels that are print or logo")

    @property
    def present(self) -> bool:
        return self.kind != "none"


class Appearance(_Strict):
    colours: tuple[Colour, ...]
    has_print: bool
    print: PrintInfo
    texture_box: Box = Field(description="a plain fabric rectangle (texture.png), for tiling")


class SizeChart(_Strict):
    rows: tuple[SizeRow, ...]
    source: ValueSource
    size: str | None = Field(description="the garment's own size label, when known")
    size_source: Literal["job.json", "unknown"]
    measures: Literal["body"] = Field(
        default="body", description="rows give the body measurements each size is made for, in cm"
    )


class Fabric(_Strict):
    stretch: float = Field(ge=0, le=1, description="0 = rigid, 1 = very stretchy")
    stretch_source: ValueSource
    thickness_mm: float = Field(gt=0, le=50)
    thickness_source: ValueSource
    material: str | None = Field(default=None, description="as the vision LLM named it, when it did")


class GarmentAnalysis(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    image: ImageInfo
    category: CategoryInfo
    mask: MaskStats
    appearance: Appearance
    size_chart: SizeChart
    fabric: Fabric
    defaults_used: tuple[str, ...] = Field(description="fields filled from documented defaults, e.g. 'fabric.stretch'")
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = ("garment.json", "mask.png", "cutout.png", "texture.png", "overlay.png")
