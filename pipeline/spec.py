"""`job.json`: what a user may say about a job. Optional; every field has a default.

Strict on purpose (`extra="forbid"`): a misspelt field is an error the user sees, not a silent default.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import InvalidInput

Category = Literal["upper", "lower", "full"]
MIB = 1024 * 1024
MAX_JSON_BYTES = 4 * MIB  # job.json and batch.json hold settings: a catalog's per-photo overrides fit easily
MAX_DEPTH = 12  # batch.json nests 5 levels at most (people -> name -> field -> list -> row)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class PersonSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    height_cm: float | None = Field(default=None, ge=100, le=230, description="the person's height")
    references: tuple[str, ...] = Field(
        default=(), max_length=8,
        description="catalog only: other photos of the same person (file names under people/), added to the "
                    "face bank that identity checks compare against")


class SizeRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(min_length=1, max_length=16)
    chest_cm: float | None = Field(default=None, gt=0, le=300)
    waist_cm: float | None = Field(default=None, gt=0, le=300)
    hip_cm: float | None = Field(default=None, gt=0, le=300)
    length_cm: float | None = Field(default=None, gt=0, le=300)


class GarmentSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category | None = None
    size: str | None = Field(default=None, max_length=16, description="the garment's size label")
    size_chart: tuple[SizeRow, ...] = ()
    stretch: float | None = Field(default=None, ge=0, le=1, description="0 = rigid, 1 = very stretchy")
    thickness_mm: float | None = Field(default=None, gt=0, le=50)


class SubscriberSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=8, max_length=2048)


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    person: PersonSpec = PersonSpec()
    garment: GarmentSpec = GarmentSpec()
    subscribers: tuple[SubscriberSpec, ...] = ()
    profile: Literal["cpu", "gpu", "commercial-safe"] | None = None


def parse_job_spec(data: bytes) -> JobSpec:
    """Parse job.json bytes, or raise InvalidInput saying exactly which field is wrong. `check_job_spec` then
    checks what one field says about another (intake runs both)."""
    raw = load_json_object(data, "job.json", "wrap the fields in { ... }")
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"job.json is invalid: {describe_errors(exc)}",
                           "correct those fields (see README, 'job.json')") from exc


def check_job_spec(spec: JobSpec, where: str = "job.json") -> None:
    """What the fields say together: the garment's size is a row of its size chart, and every subscriber is a
    web address. Raises InvalidInput naming the field (`where` is the file it came from)."""
    garment = spec.garment
    if garment.size is not None and garment.size_chart:
        labels = [row.label for row in garment.size_chart]
        if garment.size.strip().lower() not in {label.strip().lower() for label in labels}:
            raise InvalidInput(
                f"{where}: garment.size is {garment.size!r}, but garment.size_chart has no row with that label "
                f"(its labels: {', '.join(labels)})",
                "set garment.size to one of the chart's labels, or add a row for it to garment.size_chart")
    for n, subscriber in enumerate(spec.subscribers):
        problem = url_problem(subscriber.url)
        if problem is not None:
            raise InvalidInput(f"{where}: subscribers.{n}.url {subscriber.url!r} {problem}",
                               "give each subscriber a full web address, e.g. https://example.com/hooks/dropfit")


def url_problem(url: str) -> str | None:
    """Why `url` is not a web address a webhook can be sent to, or None (reachability is the webhook
    client's to judge, at delivery)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return "is not a web address (it must start with https://)"
    if any(c.isspace() for c in url):
        return "contains spaces (a web address has none; write a space as %20)"
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        return "has an invalid port"
    if not host:
        return "has no host name"
    return None


# ---- JSON files users write (job.json, batch.json) ----------------------------------------------------


def load_json_object(data: bytes, name: str, not_object_action: str) -> dict[str, Any]:
    """The JSON object in `data`, or InvalidInput in plain words: too large, UTF-16 or other non-UTF-8 text
    (a UTF-8 byte-order mark is fine), a syntax error with its line and column, nesting deeper than
    `MAX_DEPTH`, or not an object. Refused before any recursion can run out of stack."""
    fix = f"fix {name} and upload it again"
    if len(data) > MAX_JSON_BYTES:
        raise InvalidInput(f"{name} is {len(data) / MIB:.1f} MiB; the largest accepted is {MAX_JSON_BYTES // MIB} MiB",
                           f"{name} holds settings only: remove what is not a setting")
    text = _utf8_text(data, name)
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{name} nests objects and lists {depth} levels deep; at most {MAX_DEPTH} are allowed",
                           f"{name} needs a few levels at most: {fix}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise InvalidInput(f"{name} is not valid JSON: the file is empty",
                               f"write the settings into {name} ({{}} for none) and upload it again") from exc
        raise InvalidInput(f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                           f"fix the JSON syntax of {name}") from exc
    except RecursionError as exc:  # nesting_depth bounds this; kept so no input can end in a RecursionError
        raise InvalidInput(f"{name} nests objects and lists too deeply", fix) from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"{name} must be a JSON object", not_object_action)
    return raw


def _utf8_text(data: bytes, name: str) -> str:
    save = f"save {name} as UTF-8 (in most editors: Save As, Encoding: UTF-8) and upload it again"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) >= 2 and b"\x00" in data[:4]):
        width = "32" if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "16"
        raise InvalidInput(f"{name} is not valid JSON: it is saved as UTF-{width} text, and JSON must be UTF-8", save)
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (Windows Notepad writes one) is not an error
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{name} is not valid JSON: byte {exc.start + 1} (0x{data[exc.start]:02X}) is not UTF-8 "
                           "text (the file was saved in another encoding, such as Latin-1 or Windows-1252)",
                           save) from exc


def nesting_depth(text: str) -> int:
    """How deep objects and lists nest in JSON text (brackets inside strings do not count), in one pass with no
    recursion. Text with at most MAX_DEPTH opening brackets is not scanned: their count, an upper bound, comes
    back."""
    opening = text.count("[") + text.count("{")
    if opening <= MAX_DEPTH:
        return opening
    outside = _STRINGS.sub("", text)
    depth = deepest = 0
    for match in _BRACKETS.finditer(outside):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def field_path(loc: tuple[int | str, ...]) -> str:
    """('people', 'alice.jpg', 'height_cm') -> 'people["alice.jpg"].height_cm': a file name stays whole."""
    path = ""
    for part in loc:
        if isinstance(part, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f'["{part}"]'
        else:
            path += f".{part}" if path else str(part)
    return path or "(top)"


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """pydantic's errors as 'field.path: what is wrong (got value)', without its links and type names."""
    problems = []
    for err in exc.errors(include_url=False):
        where = field_path(err["loc"])
        if err["type"] == "extra_forbidden":
            message = "unknown field (misspelt?)"
        elif err["type"] == "value_error" and "error" in err.get("ctx", {}):
            message = str(err["ctx"]["error"])
        else:
            message = err["msg"][0].lower() + err["msg"][1:]
            value = err.get("input")
            if isinstance(value, str | int | float | bool) and len(repr(value)) <= 40:
                message += f" (got {value!r})"
        problems.append(f"{where}: {message}")
    more = len(problems) - limit
    return "; ".join(problems[:limit]) + (f"; and {more} more" if more > 0 else "")
