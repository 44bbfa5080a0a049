"""Drain an SQS queue of storage events into the runtime: the S3 route without Modal.

A message is deleted only after its events were routed and the tasks they made ready have run (or
were handed to the retry/sweep machinery). A message that cannot be parsed or routed stays in the queue:
SQS redelivers it after its visibility timeout, and after the queue's maxReceiveCount it lands in the
dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from events.normalize import InvalidEvent, normalize_sqs_message
from events.router import route
from functions.runtime import LocalRuntime

log = structlog.get_logger("dropfit.sqs")


@dataclass
class DrainStats:
    received: int = 0
    deleted: int = 0
    kept: int = 0
    events: int = 0
    errors: list[str] = field(default_factory=list)


def drain(sqs: Any, queue_url: str, runtime: LocalRuntime, *, wait_s: int = 1, idle_polls: int = 2,
          visibility_s: int = 60, max_messages: int = 10_000) -> DrainStats:
    """Receive until the queue has been empty for `idle_polls` polls in a row while the runtime is idle."""
    stats = DrainStats()
    empty = 0
    while stats.received < max_messages:
        reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s,
                                    VisibilityTimeout=visibility_s, MessageSystemAttributeNames=["All"])
        messages = reply.get("Messages", [])
        if not messages:
            runtime.wait_idle()
            empty += 1
            if empty >= idle_polls:
                return stats
            continue
        empty = 0
        stats.received += len(messages)
        done = [m for m in messages if _dispatch(m, runtime, stats)]
        runtime.wait_idle()
        for message in done:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        stats.deleted += len(done)
        stats.kept += len(messages) - len(done)
    return stats


def _dispatch(message: dict[str, Any], runtime: LocalRuntime, stats: DrainStats) -> bool:
    try:
        events = normalize_sqs_message(message)
        tasks = [task for event in events for task in route(event, runtime.store)]
    except InvalidEvent as exc:
        stats.errors.append(str(exc))
        log.warning("sqs.poison", message_id=message.get("MessageId"), error=str(exc),
                    receives=message.get("Attributes", {}).get("ApproximateReceiveCount"))
        return False
    except Exception as exc:  # noqa: BLE001 - storage hiccup while routing: keep the message for redelivery
        stats.errors.append(f"{type(exc).__name__}: {exc}")
        log.warning("sqs.route_failed", message_id=message.get("MessageId"), error=str(exc))
        return False
    stats.events += len(events)
    for task in tasks:
        runtime.submit(task)
    return True
