"""The vision LLM on Google's Gemini API (google-genai): reads size-chart images, infers fabric, and judges a
finished try-on (phase 3's optional quality gate).

Structured output: each request carries a JSON schema (`response_json_schema`) and asks for
`application/json`, so the answer parses into the protocol's dataclasses or fails loudly. The client is
built on first use, not at import (google.genai is heavy), with the SDK's own retries off: a rate limit,
a server error or a timeout raises RetryableError and the pipeline's retry with backoff takes over; any
other failure raises VisionLLMError, which the wardrobe phase turns into a note and a fallback.
`base_url` points the client elsewhere (a proxy, or the local test server in tests/test_gemini.py).
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.backends.protocols import (
    FabricReading,
    SizeChartReading,
    SizeChartRow,
    TryOnVerdict,
    VisionLLMError,
)
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError

INCH_CM = 2.54
TRANSIENT_STATUS = {408, 429}  # plus every 5xx

CHART_PROMPT = (
    "This image is a clothing size chart. Return every size (row or column) it lists with the body "
    "measurements for that size: chest (or bust), waist, hip and garment length. Use the midpoint when "
    "the chart gives a range. Leave out a measurement the chart does not give; never guess one. "
    "Set unit to 'in' when the numbers are in inches, else 'cm'."
)
FABRIC_PROMPT = (
    "This is a product photo of one garment. Estimate its fabric: stretch from 0 (rigid: denim, woven "
    "cotton, linen) to 1 (very stretchy: lycra, sportswear), the thickness of a single layer in "
    "millimetres (thin jersey 0.4-0.7, shirting 0.3, denim 1.0-1.5, knitwear 2-5), the likely material, "
    "and the garment's category: 'upper' (tops, shirts, jackets), 'lower' (trousers, shorts, skirts) or "
    "'full' (dresses, jumpsuits), with your confidence from 0 to 1."
)
JUDGE_PROMPT = (
    "The first image is a photo of a person, the second a product photo of a garment, the third a grid of 8 "
    "views of the same person turned round (000, 045, ... 315 degrees, left to right, top to bottom), made by a "
    "virtual try-on. Judge the views: does the person wear this garment (its colours, print, sleeves, length) "
    "and still look like the person in the photo (face, hair, skin, body), with no broken body parts, holes or "
    "smeared patches? Give acceptable true or false, a score from 0 (unusable) to 1 (convincing), and the "
    "problems you see as short phrases naming the view, e.g. 'the sleeves are missing at 090'."
)

CHART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "enum": ["cm", "in"]},
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "chest": {"type": "number"},
                    "waist": {"type": "number"},
                    "hip": {"type": "number"},
                    "length": {"type": "number"},
                },
                "required": ["label"],
            },
        },
    },
    "required": ["unit", "rows"],
}
FABRIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "stretch": {"type": "number", "minimum": 0, "maximum": 1},
        "thickness_mm": {"type": "number", "minimum": 0.05, "maximum": 50},
        "material": {"type": "string"},
        "category": {"type": "string", "enum": ["upper", "lower", "full"]},
        "category_confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["stretch", "thickness_mm", "category", "category_confidence"],
}

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "acceptable": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["acceptable", "score", "problems"],
}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _ChartRow(_Answer):
    label: str = Field(min_length=1, max_length=16)
    chest: float | None = None
    waist: float | None = None
    hip: float | None = None
    length: float | None = None


class _Chart(_Answer):
    unit: str = "cm"
    rows: list[_ChartRow]


class _Fabric(_Answer):
    stretch: float = Field(ge=0, le=1)
    thickness_mm: float = Field(gt=0, le=50)
    material: str | None = None
    category: str | None = None
    category_confidence: float = Field(default=0.0, ge=0, le=1)


class _Verdict(_Answer):
    acceptable: bool
    score: float = Field(ge=0, le=1)
    problems: list[str] = Field(default_factory=list, max_length=20)


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _cm(value: float | None, factor: float) -> float | None:
    return None if value is None else round(value * factor, 1)


def chart_reading(answer: _Chart) -> SizeChartReading:
    factor = INCH_CM if answer.unit.strip().lower() in ("in", "inch", "inches") else 1.0
    rows = tuple(SizeChartRow(label=r.label.strip(), chest_cm=_cm(r.chest, factor), waist_cm=_cm(r.waist, factor),
                              hip_cm=_cm(r.hip, factor), length_cm=_cm(r.length, factor)) for r in answer.rows)
    notes = ("the size chart was in inches; converted to cm",) if factor != 1.0 else ()
    return SizeChartReading(rows=rows, notes=notes)


def fabric_reading(answer: _Fabric) -> FabricReading:
    category = answer.category if answer.category in ("upper", "lower", "full") else None
    return FabricReading(stretch=answer.stretch, thickness_mm=answer.thickness_mm, category=category,
                         category_confidence=answer.category_confidence if category else 0.0,
                         material=answer.material or None)


class GeminiVisionLLM:
    """`VisionLLM` on Gemini. One instance per process; the SDK client is made once, on the first call."""

    name = "gemini"

    def __init__(self, api_key: str, model: str = "gemini-2.5-flash", base_url: str | None = None,
                 timeout_s: float = 60.0) -> None:
        if not api_key:
            raise ValueError("a Gemini API key is required")
        self._api_key = api_key
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.version = model
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never print the key
        return f"GeminiVisionLLM(model={self.model!r}, base_url={self.base_url!r})"

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google import genai
                from google.genai import types

                options = types.HttpOptions(base_url=self.base_url, timeout=int(self.timeout_s * 1000),
                                            retry_options=types.HttpRetryOptions(attempts=1))
                self._client = genai.Client(api_key=self._api_key, vertexai=False, http_options=options)
            return self._client

    def read_size_chart(self, rgb: np.ndarray) -> SizeChartReading:
        return chart_reading(self._generate(rgb, CHART_PROMPT, CHART_SCHEMA, _Chart, "read the size chart"))

    def infer_fabric(self, rgb: np.ndarray) -> FabricReading:
        return fabric_reading(self._generate(rgb, FABRIC_PROMPT, FABRIC_SCHEMA, _Fabric, "infer the fabric"))

    def judge_tryon(self, views: list[np.ndarray], garment: np.ndarray, person: np.ndarray) -> TryOnVerdict:
        """`QualityJudge`: the person photo, the garment and the 8 views as one grid, judged in one request."""
        answer = self._generate([person, garment, view_grid(views)], JUDGE_PROMPT, JUDGE_SCHEMA, _Verdict,
                                "judge the try-on")
        problems = tuple(p.strip()[:200] for p in answer.problems if p.strip())
        return TryOnVerdict(acceptable=answer.acceptable, score=answer.score, problems=problems)

    def _generate(self, rgb: np.ndarray | list[np.ndarray], prompt: str, schema: dict[str, Any], answer: type[Any],
                  what: str) -> Any:
        from google.genai import types

        config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema,
                                             temperature=0.0)
        images = rgb if isinstance(rgb, list) else [rgb]
        contents = [*(types.Part.from_bytes(data=jpeg(i), mime_type="image/jpeg") for i in images), prompt]
        try:
            response = self.client().models.generate_content(model=self.model, contents=contents, config=config)
        except Exception as exc:
            raise classify(exc, what) from exc
        return parse_answer(response, answer, what)


def view_grid(views: list[np.ndarray], columns: int = 4, height: int = 384) -> np.ndarray:
    """The views side by side in rows of `columns`, each scaled to `height` pixels (one image keeps the request
    small: 8 full-size views would cost 8 images' tokens)."""
    tiles = []
    for view in views:
        image = Image.fromarray(view)
        tiles.append(np.asarray(image.resize((max(1, round(image.width * height / image.height)), height))))
    width = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * height, columns * width, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * height:(r + 1) * height, c * width:c * width + tile.shape[1]] = tile
    return grid


def parse_answer(response: Any, answer: type[Any], what: str) -> Any:
    """The response's JSON text validated into `answer`, or VisionLLMError saying what was wrong."""
    text = getattr(response, "text", None)
    if not text:
        reason = _finish_reason(response)
        raise VisionLLMError(f"Gemini gave no answer when asked to {what} (finish reason: {reason})")
    try:
        return answer.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise VisionLLMError(f"Gemini's answer to '{what}' did not fit the schema: {exc}") from exc


def _finish_reason(response: Any) -> str:
    candidates = getattr(response, "candidates", None) or []
    reason = getattr(candidates[0], "finish_reason", None) if candidates else None
    feedback = getattr(response, "prompt_feedback", None)
    blocked = getattr(feedback, "block_reason", None) if feedback else None
    return str(reason or blocked or "unknown")


def classify(exc: Exception, what: str) -> Exception:
    """API and transport errors -> RetryableError (rate limit, server error, timeout) or VisionLLMError."""
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        code = int(exc.code or 0)
        message = f"Gemini {code} {exc.status or ''} while asked to {what}: {exc.message or ''}".strip()
        if code in TRANSIENT_STATUS or code >= 500:
            return RetryableError(message)
        return VisionLLMError(message)
    if _is_transport_error(exc):
        return RetryableError(f"Gemini unreachable or too slow while asked to {what}: {type(exc).__name__}: {exc}")
    return VisionLLMError(f"Gemini call failed while asked to {what}: {type(exc).__name__}: {exc}")


def _is_transport_error(exc: Exception) -> bool:
    """Timeouts and connection failures of whichever HTTP library the SDK uses (httpx2 or httpx)."""
    kinds: list[type] = [TimeoutError, ConnectionError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        kinds += [getattr(module, n) for n in ("TimeoutException", "TransportError") if hasattr(module, n)]
    return isinstance(exc, tuple(kinds))


def build(ctx: BuildContext) -> GeminiVisionLLM:
    key = ctx.config.gemini_api_key
    if key is None or not key.get_secret_value():
        raise ValueError("the gemini backend needs DROPFIT_GEMINI_API_KEY")  # its row `requires` it: never reached
    return GeminiVisionLLM(api_key=key.get_secret_value(), model=ctx.config.gemini_model,
                           base_url=ctx.config.gemini_base_url)
