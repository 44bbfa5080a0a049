"""`dropfit status`: what storage says about jobs and their phase runs, as readable tables, and after them what
needs the reader's attention: files intake never reads (with what to rename them to), jobs waiting for a photo,
and subscriber deliveries still pending."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from events.webhooks import DeliveryRecord
from functions.claims import ClaimRecord
from infra.settings import Settings
from pipeline import layout
from pipeline.intake import incoming_files, is_ready
from pipeline.phase_api import PhaseRegistry
from pipeline.plan import JobPlan
from pipeline.state import (
    incoming_job_ids,
    job_error,
    job_status,
    load_plan,
    planned_job_ids,
    read_model,
    result_manifest,
    run_manifest,
    run_status,
)
from pipeline.storage import ObjectInfo, ObjectNotFound, ObjectStore
from pipeline.stray import Stray, find_strays

MAX_ROWS = 50  # of each attention table; the rest are counted


class StatusTables(Table):
    """A table followed by more tables (printed after it, each only when it has rows): the jobs table and what
    needs attention print as one, and callers still read the jobs table's columns."""

    def __init__(self, *args: object, after: Sequence[RenderableType] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.after = list(after)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from super().__rich_console__(console, options)
        for renderable in self.after:
            yield Text("")
            yield renderable


def job_summary(store: ObjectStore, registry: PhaseRegistry, plan: JobPlan, phases: list[str]) -> str:
    """The job's state in words: terminal states as they are; a running job says what it waits on."""
    state = job_status(store, plan)
    if state != "running":
        return state
    if "running" in phases:
        return "running"
    if "unavailable" in phases:
        return "waiting: phase not in this build"
    return "queued"


def phase_state(store: ObjectStore, registry: PhaseRegistry, plan: JobPlan, phase_name: str) -> str:
    run = plan.run(phase_name)
    status = run_status(store, phase_name, run.key)
    if status != "pending":
        return status
    claim = read_model(store, layout.claim_key(phase_name, run.key), ClaimRecord)
    if claim is not None and claim.expires_at > datetime.now(UTC):
        return "running"
    needs_done = all(run_status(store, n, plan.run(n).key) == "done" for n in plan.phase_needs(phase_name))
    if not needs_done:
        return "waiting"
    return "pending" if registry.available(phase_name) else "unavailable"


def jobs_table(store: ObjectStore, registry: PhaseRegistry, *, settings: Settings | None = None,
               now: datetime | None = None) -> StatusTables:
    """Every job, its state and its phases'; then the files intake never reads, the jobs (batches) waiting too
    long for a file (`settings.waiting_after_s`) and the pending subscriber deliveries, when there are any."""
    settings = settings or Settings()
    now = now or datetime.now(UTC)
    phases = registry.table.names
    table = StatusTables(title=f"jobs in {store.bucket}", after=attention_tables(store, settings, now))
    table.add_column("job")
    table.add_column("state")
    for name in phases:
        table.add_column(name)
    for job_id in sorted(set(incoming_job_ids(store)) | set(planned_job_ids(store))):
        plan = load_plan(store, job_id)
        if plan is None:
            table.add_row(job_id, waiting_state(incoming_files(store, job_id)), *["" for _ in phases])
        elif plan.error is not None:
            table.add_row(job_id, f"failed (intake: {plan.error.reason[:60]})", *["" for _ in phases])
        else:
            states = [phase_state(store, registry, plan, name) if name in plan.runs else "" for name in phases]
            table.add_row(job_id, job_summary(store, registry, plan, states), *states)
    return table


def waiting_state(files: dict[str, ObjectInfo]) -> str:
    """An unplanned job in words: what it is waiting for, or queued for intake."""
    if is_ready(files):
        return "queued"
    missing = [f"{part} photo" for part in ("person", "garment") if part not in files]
    return f"waiting for the {' and the '.join(missing)}"


def attention_tables(store: ObjectStore, settings: Settings, now: datetime) -> list[Table]:
    tables = [strays_table(find_strays(_listing(store), now, settings.waiting_after_s)),
              deliveries_table(pending_deliveries(store), now)]
    return [t for t in tables if t.row_count]


def _listing(store: ObjectStore) -> Iterable[ObjectInfo]:
    yield from store.list(layout.INCOMING)
    yield from store.list(layout.CATALOG)


def strays_table(strays: list[Stray]) -> Table:
    table = Table(title="files not picked up, and jobs waiting for a file")
    for column in ("file", "what is wrong", "what to do"):
        table.add_column(column, overflow="fold")
    for stray in strays[:MAX_ROWS]:
        table.add_row(stray.key, stray.problem, stray.fix)
    if len(strays) > MAX_ROWS:
        table.add_row(f"... and {len(strays) - MAX_ROWS} more", "", "")
    return table


def pending_deliveries(store: ObjectStore, job_id: str | None = None) -> list[DeliveryRecord]:
    """The delivery records the outbox still has to try (work/outbox/ points at them), oldest job first."""
    records = []
    for pointer in store.list(f"{layout.WORK}outbox/"):
        try:
            record = read_model(store, store.get(pointer.key).decode(), DeliveryRecord)
        except (ObjectNotFound, UnicodeDecodeError):
            continue
        if record is not None and record.state == "pending" and job_id in (None, record.job_id):
            records.append(record)
    return sorted(records, key=lambda r: (r.job_id, r.channel))


def deliveries_table(records: list[DeliveryRecord], now: datetime) -> Table:
    table = Table(title="subscriber deliveries pending")
    for column in ("job", "subscriber", "attempts", "next attempt", "last answer"):
        table.add_column(column, overflow="fold")
    for record in records[:MAX_ROWS]:
        last = record.attempts[-1] if record.attempts else None
        answer = "" if last is None else (last.error or (f"HTTP {last.status}" if last.status else last.outcome))
        table.add_row(record.job_id, f"{record.kind} {shown_target(record.target)}", str(len(record.attempts)),
                      next_attempt(record.next_attempt_at, now), answer)
    if len(records) > MAX_ROWS:
        table.add_row(f"... and {len(records) - MAX_ROWS} more", "", "", "", "")
    return table


def shown_target(target: str) -> str:
    """A subscriber as it may be shown: a URL without its query, fragment or credentials (they can hold tokens)."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
    return target


def next_attempt(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "not scheduled"
    seconds = (at - now).total_seconds()
    when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if seconds <= 0:
        return f"{when} (due: the next sweep tries it)"
    return f"{when} (in {seconds / 60:.0f} min)" if seconds >= 90 else f"{when} (in {seconds:.0f} s)"


def job_detail(store: ObjectStore, registry: PhaseRegistry, job_id: str, *, settings: Settings | None = None,
               now: datetime | None = None) -> StatusTables:
    """One job's intake, phases and result; then its folder's files intake never reads, or what it waits for,
    and its pending subscriber deliveries."""
    settings = settings or Settings()
    now = now or datetime.now(UTC)
    plan = load_plan(store, job_id)
    strays = find_strays(store.list(layout.incoming_prefix(job_id)), now, settings.waiting_after_s)
    deliveries = pending_deliveries(store, job_id)
    after = [t for t in (strays_table(strays), deliveries_table(deliveries, now)) if t.row_count]
    table = StatusTables(title=f"job {job_id}", after=after)
    for column in ("phase", "state", "run key", "took", "note"):
        table.add_column(column)
    if plan is None:
        files = incoming_files(store, job_id)
        table.add_row("intake", waiting_state(files), "", "", "has: " + (", ".join(sorted(files)) or "nothing"))
        return table
    table.add_row("intake", "refused" if plan.error else "planned", plan.plan_hash, "",
                  plan.error.reason if plan.error else "")
    for name, run in plan.runs.items():
        manifest = run_manifest(store, name, run.key)
        note = "not in this build" if not registry.available(name) else ""
        took = f"{manifest.duration_s:.2f} s" if manifest else ""
        if manifest is not None and manifest.usage is not None:
            took += f" ({manifest.usage.cpu_s:.2f} CPU s" + (f", {manifest.usage.gpu_s:.2f} GPU s)"
                                                             if manifest.usage.gpu_s else ")")
        table.add_row(name, phase_state(store, registry, plan, name), run.key, took, note)
    state = job_status(store, plan)
    error = job_error(store, job_id)
    published = result_manifest(store, job_id) if state == "succeeded" else None
    cost = published.cost if published is not None else None
    table.add_row("result", state, "", "", error.reason if error and state == "failed" else
                  (layout.result_prefix(job_id) if state == "succeeded" else ""))
    if cost is not None:
        table.add_row("cost", f"${cost.usd:.6f}", "", f"{cost.cpu_s:.2f} CPU s, {cost.gpu_s:.2f} GPU s",
                      f"{cost.split}; {cost.priced}")
    return table
