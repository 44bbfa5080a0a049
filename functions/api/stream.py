"""GET /v1/jobs/{id}/events: Server-Sent Events read from storage, one `progress` event per change.

An event's id is the state it leaves the client in, written out: a digest of the job's run keys, one letter
per phase (D done, F failed, R running, W waiting, P pending, U unavailable) and the job's state with the
number of inputs uploaded, e.g. `3f2a9c1e.DDRW.r2`. A client that reconnects with `Last-Event-ID` is told
every phase change since that state, one event each, from any server process: nothing is kept in memory, so
a restart of the server loses nothing. The stream ends after the event that says the job is terminal; a client
that resumes at that event is answered 204 (an EventSource then stops reconnecting).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from functions.api.models import JobView
from functions.api.views import TERMINAL

CODES = {"done": "D", "failed": "F", "running": "R", "waiting": "W", "pending": "P", "unavailable": "U"}
STATES = {"waiting_for_inputs": "i", "queued": "q", "running": "r", "succeeded": "s", "failed": "f"}
NAMES = {code: name for name, code in CODES.items()}
UNKNOWN = "-"


@dataclass(frozen=True)
class Mark:
    """What an event id says the client saw."""

    digest: str
    codes: str
    state: str

    @property
    def id(self) -> str:
        return f"{self.digest}.{self.codes or UNKNOWN}.{self.state}"


def mark_of(view: JobView) -> Mark:
    keys = ",".join(p.run_key for p in view.phases)
    digest = hashlib.sha256(keys.encode()).hexdigest()[:8] if keys else UNKNOWN
    return Mark(digest, "".join(CODES[p.state] for p in view.phases), f"{STATES[view.state]}{len(view.inputs)}")


def parse_mark(value: str | None) -> Mark | None:
    if not value:
        return None
    parts = value.strip().split(".")
    if len(parts) != 3:
        return None
    codes = "" if parts[1] == UNKNOWN else parts[1]
    return Mark(parts[0], codes, parts[2])


def changes(seen: Mark | None, view: JobView) -> list[tuple[str, dict[str, object]]]:
    """The events that take a client from `seen` (None: a first connection) to `view`: one per phase whose
    state changed (the state in between as each one's id), or one for a change of the job's state alone."""
    now = mark_of(view)
    job = view.model_dump(mode="json")
    if seen is None:
        return [(now.id, {"phase": None, "job": job})]
    if seen == now:
        return []
    codes = list(seen.codes) if seen.digest == now.digest and len(seen.codes) == len(now.codes) else \
        [UNKNOWN] * len(now.codes)
    events: list[tuple[str, dict[str, object]]] = []
    for i, phase in enumerate(view.phases):
        if codes[i] == now.codes[i]:
            continue
        before = NAMES.get(codes[i])
        codes[i] = now.codes[i]
        events.append((Mark(now.digest, "".join(codes), seen.state).id,
                       {"phase": phase.name, "from": before, "to": phase.state, "job": job}))
    if events:
        events[-1] = (now.id, events[-1][1])  # the last change leaves the client where storage is now
    else:
        events.append((now.id, {"phase": None, "job": job}))
    return events


def told_everything(last_event_id: str | None, view: JobView) -> bool:
    """The client resumes at the job's terminal event: nothing is left to tell (answered with 204, which tells
    a browser's EventSource to stop reconnecting)."""
    return view.state in TERMINAL and parse_mark(last_event_id) == mark_of(view)


async def progress_events(read: Callable[[], JobView | None], last_event_id: str | None, poll_s: float,
                          max_s: float | None = None) -> AsyncIterator[dict[str, str]]:
    """Every change from `last_event_id` on, until the job is terminal (or for `max_s`, where a proxy cuts long
    requests: the client resumes with the last id); storage read off the event loop."""
    seen = parse_mark(last_event_id)
    deadline = None if max_s is None else asyncio.get_running_loop().time() + max_s
    while True:
        view = await asyncio.to_thread(read)
        if view is None:
            return
        for event_id, data in changes(seen, view):
            yield {"event": "progress", "id": event_id, "data": json.dumps(data)}
        seen = mark_of(view)
        if view.state in TERMINAL or (deadline is not None and asyncio.get_running_loop().time() > deadline):
            return
        await asyncio.sleep(poll_s)
