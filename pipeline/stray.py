"""Files that would wait forever unseen: what sits under incoming/ and catalog/ that intake never reads, and
jobs or batches still missing a file after a while. Each comes with what is wrong and what to do (usually
the name to rename it to), for `dropfit status` and any other status view. Pure: a listing and the time in,
no storage, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline import layout
from pipeline.storage import ObjectInfo

OTHER_IMAGE_FORMATS = {"heic": "HEIC", "heif": "HEIC", "avif": "AVIF", "gif": "GIF", "bmp": "BMP", "tif": "TIFF",
                       "tiff": "TIFF", "svg": "SVG", "dng": "raw camera", "cr2": "raw camera", "nef": "raw camera"}
ROLE_WORDS = {"person": "the person photo", "garment": "the garment photo", "size_chart": "the size-chart image"}
CATALOG_FOLDERS = {"people": "people", "person": "people", "persons": "people", "garments": "garments",
                   "garment": "garments", "clothes": "garments"}


@dataclass(frozen=True)
class Stray:
    key: str  # the file, or the job's or batch's folder (ending in '/')
    problem: str  # what is wrong, in words
    fix: str  # what to do: usually the key to rename it to


def find_strays(objects: Iterable[ObjectInfo], now: datetime, wait_s: float) -> list[Stray]:
    """Every file under incoming/ and catalog/ that intake will not read, and every job (batch) that has had
    one photo (photos but no batch.json) for longer than `wait_s`, in key order. Hidden files (a name
    starting with '.', such as .DS_Store) are the system's own and are not listed."""
    found: dict[str, Stray] = {}  # by key: the files of a folder with a bad id make one entry, the folder's
    jobs: dict[str, dict[str, tuple[str, datetime]]] = {}  # job id -> part -> (file name, last modified)
    batches: dict[str, tuple[int, bool, datetime]] = {}  # batch id -> (photos, has batch.json, newest)
    for info in objects:
        parts = info.key.split("/")
        if len(parts) < 2 or not parts[-1] or parts[-1].startswith("."):
            continue  # a folder placeholder, or a hidden file
        if parts[0] == "incoming":
            stray = incoming_stray(parts)
            parsed = layout.parse_incoming(info.key) if stray is None else None
            if parsed is not None:
                jobs.setdefault(parsed.job_id, {})[parsed.part] = (parts[-1], info.last_modified)
        elif parts[0] == "catalog":
            stray = catalog_stray(parts)
            batch = layout.parse_catalog(info.key) if stray is None else None
            if batch is not None:
                count, marked, newest = batches.get(batch.batch_id, (0, False, info.last_modified))
                batches[batch.batch_id] = (count + (batch.part != "marker"), marked or batch.part == "marker",
                                           max(newest, info.last_modified))
        else:
            continue
        if stray is not None:
            found.setdefault(stray.key, stray)
    waiting = [waiting_job(job_id, files, now, wait_s) for job_id, files in jobs.items()]
    waiting += [waiting_batch(batch_id, count, now - newest) for batch_id, (count, marked, newest) in batches.items()
                if not marked and (now - newest).total_seconds() > wait_s]
    return sorted([*found.values(), *(w for w in waiting if w is not None)], key=lambda s: s.key)


# ---- incoming/ -------------------------------------------------------------------------------------


def incoming_stray(parts: list[str]) -> Stray | None:
    """What is wrong with incoming/... (split at '/'), or None when intake reads it."""
    key, name = "/".join(parts), parts[-1]
    advice = incoming_name(name)
    if len(parts) == 2:
        return Stray(key, "files directly under incoming/ are never read: each job has a folder of its own",
                     f"move it to incoming/<job id>/{advice.name or 'person.jpg'}")
    if len(parts) > 3:
        return Stray(key, f"it is in a folder inside the job's folder ({'/'.join(parts[1:-1])}/): intake reads "
                          "files directly in incoming/<job id>/",
                     f"move it to incoming/{layout.suggest_id(parts[-2])}/{advice.name or name}")
    job_id = parts[1]
    problem = layout.id_problem(job_id)
    if problem is not None:
        return Stray(f"incoming/{job_id}/", f"the job id {job_id!r} is not usable: {problem}",
                     f"rename the folder to incoming/{layout.suggest_id(job_id)}/")
    if layout.parse_incoming(key) is not None:
        return None
    target = f"incoming/{job_id}/{advice.name}"
    if advice.name is None:
        fix = ("rename or remove it: a job's folder holds person.jpg and garment.jpg (or .png, .webp), and "
               "optionally job.json and size_chart.jpg")
    elif advice.convert:
        fix = f"convert it to JPEG and upload it as {target}"
    else:
        fix = f"rename it to {target}"
    return Stray(key, advice.problem, fix)


@dataclass(frozen=True)
class NameAdvice:
    problem: str
    name: str | None  # the name it should have; None when that is not clear
    convert: bool = False  # the file must be converted (HEIC, GIF, ...), not only renamed


def incoming_name(name: str) -> NameAdvice:
    """What is wrong with a file name in a job's folder, and the name it should have."""
    lower = name.lower()
    stem, _, rest = lower.partition(".")
    last = lower.rpartition(".")[2] if "." in lower else ""
    role = _role_in(stem)
    if lower in layout.INCOMING_ROLES:
        return NameAdvice(f"{name!r} has no extension", f"{lower}.jpg")
    if last in OTHER_IMAGE_FORMATS:
        return NameAdvice(f"{name!r} is a {OTHER_IMAGE_FORMATS[last]} file: only JPEG, PNG and WebP photos are read",
                          f"{role}.jpg" if role else None, convert=True)
    if last in layout.IMAGE_EXTENSIONS:
        if role is not None and stem == role and "." in rest:
            return NameAdvice(f"{name!r} has two extensions", f"{role}.{last}")
        if role is not None:
            return NameAdvice(f"{name!r} is not a name intake reads: {ROLE_WORDS[role]} must be named "
                              f"{role}.{last}", f"{role}.{last}")
        return NameAdvice(f"{name!r} is not a name intake reads, and it cannot tell whether it is the person or "
                          f"the garment", f"person.{last} (the person) or garment.{last} (the garment)")
    if lower.startswith("job") and "json" in lower:
        return NameAdvice(f"{name!r} is not read: a job's settings file is named job.json", "job.json")
    if last == "json":
        return NameAdvice(f"{name!r} is not read: a job's only settings file is job.json", None)
    return NameAdvice(f"{name!r} is not a file intake reads", None)


def _role_in(stem: str) -> str | None:
    """'person' for 'person', 'person (1)', 'Person-2', 'person_final'...; None when no role word leads."""
    match = re.match(r"(person|garment|size[ _-]?chart)(?![a-z])", stem)
    if match is None:
        return None
    word = match.group(1)
    return "size_chart" if word.startswith("size") else word


def waiting_job(job_id: str, files: dict[str, tuple[str, datetime]], now: datetime, wait_s: float) -> Stray | None:
    """A job with one photo for longer than `wait_s`: it is waiting for the other, and may never get it."""
    missing = [p for p in ("person", "garment") if p not in files]
    if not missing:
        return None
    waited = (now - max(at for _, at in files.values())).total_seconds()
    if waited <= wait_s:
        return None
    have = ", ".join(sorted(name for name, _ in files.values()))
    what = " and the ".join(ROLE_WORDS[p].removeprefix("the ") for p in missing)
    upload = (f"upload incoming/{job_id}/{missing[0]}.jpg (or .png, .webp): the job starts when it arrives"
              if len(missing) == 1 else
              f"upload incoming/{job_id}/person.jpg and garment.jpg: the job starts when both are there")
    return Stray(f"incoming/{job_id}/", f"waiting for the {what} for {_duration(waited)} (it has {have})", upload)


# ---- catalog/ --------------------------------------------------------------------------------------


def catalog_stray(parts: list[str]) -> Stray | None:
    """What is wrong with catalog/... (split at '/'), or None when intake reads it."""
    key, name = "/".join(parts), parts[-1]
    if len(parts) == 2:
        return Stray(key, "files directly under catalog/ are never read: each batch has a folder of its own",
                     f"move it to catalog/<batch id>/people/{name} or catalog/<batch id>/garments/{name}")
    batch_id = parts[1]
    problem = layout.id_problem(batch_id)
    if problem is not None:
        return Stray(f"catalog/{batch_id}/", f"the batch id {batch_id!r} is not usable: {problem}",
                     f"rename the folder to catalog/{layout.suggest_id(batch_id)}/")
    if layout.parse_catalog(key) is not None:
        return None
    base = f"catalog/{batch_id}"
    if len(parts) == 3:
        if name.lower() == "batch.json":
            return Stray(key, f"{name!r} is not read: the marker must be named batch.json, in lower case",
                         f"rename it to {base}/batch.json")
        return Stray(key, "files directly in a batch's folder are not read (except batch.json)",
                     f"move it to {base}/people/{name} or {base}/garments/{name}")
    folder = CATALOG_FOLDERS.get(parts[2].lower())
    if folder is None:
        return Stray(key, f"{parts[2]}/ is not read: a batch's photos go under people/ and garments/",
                     f"move it to {base}/people/{name} or {base}/garments/{name}")
    if len(parts) > 4 or folder != parts[2]:
        return Stray(key, f"photos go directly in {base}/{folder}/", f"move it to {base}/{folder}/{name}")
    last = name.lower().rpartition(".")[2] if "." in name else ""
    if last in OTHER_IMAGE_FORMATS:
        return Stray(key, f"{name!r} is a {OTHER_IMAGE_FORMATS[last]} file: only JPEG, PNG and WebP photos are read",
                     f"convert it to JPEG and upload it as {base}/{folder}/{name.rpartition('.')[0]}.jpg")
    return Stray(key, f"{name!r} is not a photo intake reads (.jpg, .jpeg, .png or .webp)",
                 "remove it, or rename it with the extension of what it is")


def waiting_batch(batch_id: str, photos: int, waited: timedelta) -> Stray:
    """A batch with photos and no batch.json for a while: nothing starts until the marker is written."""
    seconds = waited.total_seconds()
    return Stray(f"catalog/{batch_id}/", f"{photos} photo{'s' if photos != 1 else ''}, but no batch.json for "
                                         f"{_duration(seconds)}: a batch "
                                         "starts only when batch.json is written",
                 f"write catalog/{batch_id}/batch.json ({{}} is enough) once every photo is uploaded")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
