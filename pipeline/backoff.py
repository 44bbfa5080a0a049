"""Exponential backoff with jitter: the one rule every retry in the project waits by (steps, deliveries)."""

from __future__ import annotations

import random


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """The wait after attempt `attempt` (1-based): base * 2^(attempt-1), capped, times a jitter in [0.5, 1.5)."""
    return min(cap_s, base_s * 2 ** (attempt - 1)) * (rng or random).uniform(0.5, 1.5)
