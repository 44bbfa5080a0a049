"""What provisioning reports (`Change`) and how it reads a resource that may not exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

Action = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class Change:
    action: Action
    resource: str
    detail: str = ""

    def __str__(self) -> str:
        mark = {"create": "+", "update": "~", "delete": "-"}[self.action]
        return f"{mark} {self.action} {self.resource}" + (f" ({self.detail})" if self.detail else "")


def is_missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return "NonExistent" in code or "NotFound" in code or code in ("NoSuchEntity", "QueueDoesNotExist")


def read(call: Callable[..., Any], **request: Any) -> Any:
    """The reply of a describe/get call, or None when the resource does not exist."""
    try:
        return call(**request)
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise
