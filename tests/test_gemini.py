"""The Gemini vision LLM through the real google-genai client, against a local HTTP server on 127.0.0.1
that answers generateContent with the responses stored in tests/llm/*.json. No network: the client's
base URL points at the local server, and the SDK's own retries are off (the pipeline retries)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fakes_wardrobe import encode, paint, run_wardrobe, tshirt_mask
from infra.folder_store import FolderStore
from pipeline.backends.garment_mask import ClassicalGarmentSegmenter
from pipeline.backends.gemini import CHART_SCHEMA, FABRIC_SCHEMA, JUDGE_SCHEMA, GeminiVisionLLM
from pipeline.backends.protocols import QualityJudge, VisionLLM, VisionLLMError
from pipeline.errors import RetryableError
from pipeline.wardrobe.contracts import GarmentAnalysis
from pipeline.wardrobe.phase import WardrobeBackends

RECORDED = Path(__file__).parent / "llm"
API_KEY = "test-key-not-a-secret"
GARMENT = np.asarray(Image.new("RGB", (96, 128), (40, 90, 200)))


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / name).read_text())


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeGemini:
    """A local stand-in for generativelanguage.googleapis.com: replies from a queue, records requests."""

    url: str
    replies: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    delay_s: float = 0.0

    def answer(self, *names: str) -> None:
        self.replies.extend(recorded(n) for n in names)


def _handler(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            fake.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(fake.delay_s)
            reply: dict[str, Any] = fake.replies.pop(0) if fake.replies else {"status": 500, "body": {}}
            data = json.dumps(reply["body"]).encode()
            self.send_response(reply["status"])
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def gemini_server() -> Iterator[FakeGemini]:
    fake = FakeGemini(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def llm(gemini_server: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> GeminiVisionLLM:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return GeminiVisionLLM(api_key=API_KEY, base_url=gemini_server.url, timeout_s=5)


def sent_image(seen: Seen) -> Image.Image:
    inline = seen.body["contents"][0]["parts"][0]["inlineData"]
    assert inline["mime_type"] == "image/jpeg"
    return Image.open(io.BytesIO(base64.urlsafe_b64decode(inline["data"])))


def test_fabric_is_asked_with_a_schema_and_parsed(llm: GeminiVisionLLM, gemini_server: FakeGemini) -> None:
    assert isinstance(llm, VisionLLM)
    gemini_server.answer("fabric_jersey_top.json")
    reading = llm.infer_fabric(GARMENT)
    assert (reading.stretch, reading.thickness_mm, reading.category) == (0.35, 0.55, "upper")
    assert reading.category_confidence == 0.93 and reading.material == "cotton jersey with elastane"
    (request,) = gemini_server.seen
    assert request.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert request.headers["x-goog-api-key"] == API_KEY
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == FABRIC_SCHEMA
    assert config["temperature"] == 0
    assert sent_image(request).size == (96, 128)
    assert "stretch" in request.body["contents"][0]["parts"][1]["text"]


def test_a_size_chart_in_inches_comes_back_in_cm(llm: GeminiVisionLLM, gemini_server: FakeGemini) -> None:
    gemini_server.answer("size_chart_inches.json")
    reading = llm.read_size_chart(np.full((200, 300, 3), 255, np.uint8))
    assert [r.label for r in reading.rows] == ["S", "M", "L"]
    medium = reading.rows[1]
    assert (medium.chest_cm, medium.waist_cm, medium.hip_cm, medium.length_cm) == (96.5, 78.7, 101.6, 68.6)
    assert reading.rows[0].length_cm is None and "inches" in reading.notes[0]
    assert gemini_server.seen[0].body["generationConfig"]["responseJsonSchema"] == CHART_SCHEMA


@pytest.mark.parametrize("name", ["rate_limited_429.json", "unavailable_503.json"])
def test_rate_limits_and_server_errors_are_retryable_and_not_retried_by_the_sdk(
        llm: GeminiVisionLLM, gemini_server: FakeGemini, name: str) -> None:
    gemini_server.answer(name, "fabric_jersey_top.json")
    with pytest.raises(RetryableError) as failed:
        llm.infer_fabric(GARMENT)
    assert str(recorded(name)["status"]) in str(failed.value)
    assert len(gemini_server.seen) == 1  # one attempt: the pipeline's retry with backoff takes over
    assert llm.infer_fabric(GARMENT).stretch == 0.35  # the next attempt goes through


def test_a_timeout_is_retryable(gemini_server: FakeGemini) -> None:
    gemini_server.delay_s = 2.0
    gemini_server.answer("fabric_jersey_top.json")
    slow = GeminiVisionLLM(api_key=API_KEY, base_url=gemini_server.url, timeout_s=0.5)
    with pytest.raises(RetryableError, match="unreachable or too slow"):
        slow.infer_fabric(GARMENT)


@pytest.mark.parametrize(("name", "says"), [("bad_key_400.json", "API key not valid"),
                                            ("not_json.json", "did not fit the schema"),
                                            ("blocked.json", "no answer")])
def test_other_failures_are_clear_and_not_retryable(llm: GeminiVisionLLM, gemini_server: FakeGemini,
                                                    name: str, says: str) -> None:
    gemini_server.answer(name)
    with pytest.raises(VisionLLMError, match=says):
        llm.infer_fabric(GARMENT)


def test_nothing_listens_on_the_default_endpoint_in_tests() -> None:
    llm = GeminiVisionLLM(api_key=API_KEY, base_url="http://127.0.0.1:9", timeout_s=2)  # the discard port
    with pytest.raises(RetryableError):
        llm.infer_fabric(GARMENT)


def test_the_key_never_shows_in_the_backend_s_repr() -> None:
    assert API_KEY not in repr(GeminiVisionLLM(api_key=API_KEY))


def test_the_wardrobe_phase_with_gemini_reads_fabric_and_chart(folder_store: FolderStore, llm: GeminiVisionLLM,
                                                               gemini_server: FakeGemini) -> None:
    gemini_server.answer("fabric_jersey_top.json", "size_chart_cm_with_bad_row.json")
    garment = encode(paint(tshirt_mask(), (40, 90, 200), (255, 255, 255)))
    chart = encode(np.full((300, 400, 3), 250, np.uint8))
    result, files = run_wardrobe(folder_store, WardrobeBackends(ClassicalGarmentSegmenter(), llm), garment,
                                 size_chart=chart)
    analysis = GarmentAnalysis.model_validate_json(files["garment.json"])
    assert analysis.category.source == "vision-llm" and analysis.category.value == "upper"
    assert analysis.fabric.stretch_source == "vision-llm" and analysis.fabric.thickness_mm == 0.55
    assert analysis.size_chart.source == "vision-llm" and [r.label for r in analysis.size_chart.rows] == ["36", "38"]
    assert any("'40'" in note and "dropped" in note for note in analysis.notes)
    assert analysis.defaults_used == ()
    assert result.backends["vision_llm"] == "gemini gemini-2.5-flash"
    assert [sent_image(s).size for s in gemini_server.seen] == [(600, 800), (400, 300)]


def test_the_try_on_is_judged_on_one_grid_of_the_views(llm: GeminiVisionLLM, gemini_server: FakeGemini) -> None:
    assert isinstance(llm, QualityJudge)
    gemini_server.answer("tryon_verdict_rejected.json")
    views = [np.full((200, 150, 3), 10 * i, np.uint8) for i in range(8)]
    verdict = llm.judge_tryon(views, GARMENT, np.full((400, 300, 3), 128, np.uint8))
    assert (verdict.acceptable, verdict.score) == (False, 0.35)
    assert verdict.problems == ("the sleeves are missing at 090", "the face is smeared at 000")  # blanks dropped
    (request,) = gemini_server.seen
    assert request.body["generationConfig"]["responseJsonSchema"] == JUDGE_SCHEMA
    parts = request.body["contents"][0]["parts"]
    sizes = [Image.open(io.BytesIO(base64.urlsafe_b64decode(p["inlineData"]["data"]))).size for p in parts[:3]]
    assert sizes == [(300, 400), (96, 128), (4 * 288, 2 * 384)]  # person, garment, the 8 views in a 4 x 2 grid
    assert "8 views" in parts[3]["text"]
