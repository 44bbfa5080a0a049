"""The documented defaults the wardrobe phase falls back on when neither job.json nor a vision LLM says.

Every use is listed in `garment.json`'s `defaults_used`, so phase 3 (and the user) can tell a default from
a measurement and word the fit report accordingly.

Size chart: a generic unisex chart of body measurements (cm), close to common EU high-street charts; the
garment's length is not known, so `length_cm` stays empty.

| size | chest | waist | hip |
|------|-------|-------|-----|
| XS   | 84    | 70    | 88  |
| S    | 90    | 76    | 94  |
| M    | 96    | 82    | 100 |
| L    | 102   | 88    | 106 |
| XL   | 108   | 96    | 112 |
| XXL  | 116   | 104   | 120 |

Fabric, by category (what most garments of the kind are made of):

| category | stretch | thickness | typical fabric |
|----------|---------|-----------|----------------|
| upper    | 0.30    | 0.6 mm    | cotton jersey (T-shirts, tops) |
| lower    | 0.15    | 1.0 mm    | woven cotton, denim with a little elastane |
| full     | 0.20    | 0.5 mm    | woven or light jersey dresses |
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.spec import Category, SizeRow

SIZE_CHART: tuple[SizeRow, ...] = tuple(
    SizeRow(label=label, chest_cm=chest, waist_cm=waist, hip_cm=hip)
    for label, chest, waist, hip in (
        ("XS", 84, 70, 88),
        ("S", 90, 76, 94),
        ("M", 96, 82, 100),
        ("L", 102, 88, 106),
        ("XL", 108, 96, 112),
        ("XXL", 116, 104, 120),
    )
)


@dataclass(frozen=True)
class FabricDefault:
    stretch: float
    thickness_mm: float


FABRIC: dict[Category, FabricDefault] = {
    "upper": FabricDefault(stretch=0.30, thickness_mm=0.6),
    "lower": FabricDefault(stretch=0.15, thickness_mm=1.0),
    "full": FabricDefault(stretch=0.20, thickness_mm=0.5),
}
