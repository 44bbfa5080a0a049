"""Drain an SQS queue of storage events into a dispatcher: the local runtime or Modal spawns.

A message is deleted only after its events were routed and the tasks they made ready were dispatched
(locally: run, or handed to the retry/sweep machinery; on Modal: spawned). A message that cannot be parsed,
routed or dispatched stays in the queue: SQS redelivers it after its visibility timeout, and after the
queue's maxReceiveCount it lands in the dead-letter queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from events.normalize import InvalidEvent, normalize_sqs_message
from functions.dispatch import Dispatcher, dispatch_events

log = structlog.get_logger("dropfit.sqs")


@dataclass
class DrainStats:
    received: int = 0
    deleted: int = 0
    kept: int = 0
    events: int = 0
    tasks: int = 0
    errors: list[str] = field(default_factory=list)


def drain(sqs: Any, queue_url: str, dispatcher: Dispatcher, *, wait_s: int = 1, idle_polls: int = 2,
          visibility_s: int = 60, max_messages: int = 10_000, deadline_s: float | None = None) -> DrainStats:
    """Receive until the queue has been empty for `idle_polls` polls in a row while the dispatcher is idle,
    or until `deadline_s` seconds have passed (a scheduled poller's time slice)."""
    stats = DrainStats()
    empty = 0
    ends = None if deadline_s is None else time.monotonic() + deadline_s
    while stats.received < max_messages and (ends is None or time.monotonic() < ends):
        wait = wait_s if ends is None else max(0, min(wait_s, int(ends - time.monotonic())))
        reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                    VisibilityTimeout=visibility_s, MessageSystemAttributeNames=["All"])
        messages = reply.get("Messages", [])
        if not messages:
            dispatcher.wait_idle()
            empty += 1
            if empty >= idle_polls:
                return stats
            continue
        empty = 0
        stats.received += len(messages)
        done = [m for m in messages if _dispatch(m, dispatcher, stats)]
        dispatcher.wait_idle()
        for message in done:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        stats.deleted += len(done)
        stats.kept += len(messages) - len(done)
    return stats


def _dispatch(message: dict[str, Any], dispatcher: Dispatcher, stats: DrainStats) -> bool:
    receives = message.get("Attributes", {}).get("ApproximateReceiveCount")
    try:
        events = normalize_sqs_message(message)
        stats.tasks += len(dispatch_events(events, dispatcher))
    except InvalidEvent as exc:
        stats.errors.append(str(exc))
        log.warning("sqs.poison", message_id=message.get("MessageId"), error=str(exc), receives=receives)
        return False
    except Exception as exc:  # noqa: BLE001 - storage or spawn hiccup: keep the message for redelivery
        stats.errors.append(f"{type(exc).__name__}: {exc}")
        log.warning("sqs.dispatch_failed", message_id=message.get("MessageId"), error=str(exc), receives=receives)
        return False
    stats.events += len(events)
    return True
