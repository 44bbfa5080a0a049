"""What the product computes: key layout, phase table, job plans, phases and their model backends.

Imports go one way: `pipeline` imports nothing from `events`, `infra` or `functions`, and no cloud SDK
or heavy model package at module import (tests/test_architecture.py enforces it).
"""
