"""The few named errors phases and handlers raise. Everything else is a bug (retried, then reported)."""

from __future__ import annotations


class DropfitError(Exception):
    """Base class of the product's own errors."""


class InvalidInput(DropfitError):
    """The user's input cannot be processed. Never retried: the job fails with a clear error.

    `reason` says what is wrong, `user_action` what the user can do about it.
    """

    def __init__(self, reason: str, user_action: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user_action = user_action


class RetryableError(DropfitError):
    """A transient failure (storage throttling, a busy GPU, a timeout): retried with backoff."""


class PhaseUnavailable(DropfitError):
    """This build has no implementation of the phase. The job waits (nothing is lost) until one exists."""

    def __init__(self, phase: str, reason: str) -> None:
        super().__init__(f"phase {phase!r} is not available: {reason}")
        self.phase = phase
        self.reason = reason


class LeaseLost(DropfitError):
    """Another worker took over this step's claim (ours expired): stop without committing."""
