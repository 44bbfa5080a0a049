"""Benchmarks of dropfit's orchestration spine (runtime, router, claims, folder bucket). Not shipped.

`python -m bench.spine --help` explains the one benchmark here; results go to `bench/out/` (git-ignored).
"""
