"""Drain an SQS queue of storage events into a dispatcher: the local runtime or Modal spawns.

A message is deleted only after its events were routed and the tasks they made ready were dispatched
(locally: run to their end here, or handed to the retry/sweep machinery; on Modal: spawned). A message that
cannot be parsed, routed or dispatched stays in the queue: SQS redelivers it after its visibility timeout, and
after the queue's maxReceiveCount it lands in the dead-letter queue.

Reading goes on while tasks run: a local runtime takes new messages as long as fewer than `max_backlog`
events and tasks wait or run in it (duplicates of work in hand add nothing), and each message is deleted
once its own tasks are done, so a storm of duplicate events is read at the queue's pace, not one batch per
phase run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog

from events.normalize import InvalidEvent, normalize_sqs_message
from events.tasks import Task
from functions.dispatch import Dispatcher, dispatch_events

log = structlog.get_logger("dropfit.sqs")

MAX_BACKLOG = 32  # events and tasks waiting or running in a local runtime before reading pauses
IDLE_CHECK_S = 1.0  # after an empty poll: how long to wait for the dispatcher to be idle before polling again


@runtime_checkable
class Tracking(Protocol):
    """A dispatcher that runs tasks here (the local runtime) and says which are still queued or running."""

    def unfinished(self, tasks: Iterable[Task]) -> bool: ...

    def wait_backlog(self, limit: int, timeout: float | None = None) -> bool: ...


@dataclass
class DrainStats:
    received: int = 0
    deleted: int = 0
    kept: int = 0
    events: int = 0
    tasks: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Held:
    """Messages dispatched whose tasks may still be running: deleted as each one's tasks end."""

    sqs: Any
    queue_url: str
    stats: DrainStats
    messages: list[tuple[dict[str, Any], list[Task]]] = field(default_factory=list)

    def add(self, message: dict[str, Any], tasks: list[Task]) -> None:
        self.messages.append((message, tasks))

    def delete_finished(self, dispatcher: Dispatcher) -> None:
        tracking = dispatcher if isinstance(dispatcher, Tracking) else None
        keep = []
        for message, tasks in self.messages:
            if tracking is not None and tracking.unfinished(tasks):
                keep.append((message, tasks))
                continue
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            self.stats.deleted += 1
        self.messages = keep


def drain(sqs: Any, queue_url: str, dispatcher: Dispatcher, *, wait_s: int = 1, idle_polls: int = 2,
          visibility_s: int = 60, max_messages: int = 10_000, deadline_s: float | None = None,
          max_backlog: int = MAX_BACKLOG) -> DrainStats:
    """Receive until the queue has been empty for `idle_polls` polls in a row while the dispatcher is idle,
    or until `deadline_s` seconds have passed (a scheduled poller's time slice). Messages whose tasks are
    still running at a deadline stay undeleted: SQS redelivers them, and routing finds their work done or
    in hand."""
    stats = DrainStats()
    held = _Held(sqs, queue_url, stats)
    tracking = dispatcher if isinstance(dispatcher, Tracking) else None
    empty = 0
    ends = None if deadline_s is None else time.monotonic() + deadline_s
    while stats.received < max_messages and (ends is None or time.monotonic() < ends):
        held.delete_finished(dispatcher)
        if tracking is not None and not tracking.wait_backlog(max_backlog, timeout=max(wait_s, 1)):
            continue  # full: finish some work before reading more
        wait = wait_s if ends is None else max(0, min(wait_s, int(ends - time.monotonic())))
        reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                    VisibilityTimeout=visibility_s, MessageSystemAttributeNames=["All"])
        messages = reply.get("Messages", [])
        if not messages:
            if not dispatcher.wait_idle(timeout=IDLE_CHECK_S):
                empty = 0  # work still runs here: it may write what brings the next events
                continue
            held.delete_finished(dispatcher)
            empty += 1
            if empty >= idle_polls:
                return stats
            continue
        empty = 0
        stats.received += len(messages)
        for message in messages:
            tasks = _dispatch(message, dispatcher, stats)
            if tasks is None:
                stats.kept += 1
            else:
                held.add(message, tasks)
    held.delete_finished(dispatcher)
    stats.kept += len(held.messages)
    return stats


def _dispatch(message: dict[str, Any], dispatcher: Dispatcher, stats: DrainStats) -> list[Task] | None:
    """The tasks the message's events made ready (dispatched); None when it must stay for redelivery."""
    receives = message.get("Attributes", {}).get("ApproximateReceiveCount")
    try:
        events = normalize_sqs_message(message)
        tasks = dispatch_events(events, dispatcher)
    except InvalidEvent as exc:
        stats.errors.append(str(exc))
        log.warning("sqs.poison", message_id=message.get("MessageId"), error=str(exc), receives=receives)
        return None
    except Exception as exc:  # noqa: BLE001 - storage or spawn hiccup: keep the message for redelivery
        stats.errors.append(f"{type(exc).__name__}: {exc}")
        log.warning("sqs.dispatch_failed", message_id=message.get("MessageId"), error=str(exc), receives=receives)
        return None
    stats.tasks += len(tasks)
    stats.events += len(events)
    return tasks
