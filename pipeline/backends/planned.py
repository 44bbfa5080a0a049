"""The backends a profile plans, built from the backend table once per process, on first use.

`PlannedBackends(config)` plans every protocol (`BackendTable.plan`: the profile's rows and the overrides,
refusing what the profile forbids) and builds a backend only when a phase asks for it: `serving(protocol)` calls
the row's `build` function with a `BuildContext` (the config, the row's weights verified against the weights
manifest, and its parts built the same way) and checks that what it built names itself as the row does. A
backend whose row `requires` a setting that is unset (Gemini without an API key) serves nothing. Building loads
nothing; `warm_up(protocols)` makes the backends of those protocols load now (a Modal container loads only its
phase's). Adapters load only from the verified weights folder, never from a hub.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.backends.config import ModelConfig
from pipeline.backends.table import BACKENDS, PROTOCOLS, BackendSpec, BackendTable


def resolve(path: str) -> Callable[..., Any]:
    """"module:function" -> the function (imported now, not before)."""
    module, _, name = path.partition(":")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ImportError(f"{path!r} names nothing callable")
    return fn


class _Context:
    """The `BuildContext` of one row."""

    def __init__(self, backends: PlannedBackends, row: BackendSpec) -> None:
        self._backends = backends
        self._row = row

    @property
    def config(self) -> ModelConfig:
        return self._backends.config

    def weights(self) -> Path:
        from pipeline.backends.weights import verify

        if self._row.weights_key is None:
            raise LookupError(f"backend {self._row.key} has no weights in the weights folder")
        return verify(self.config.weights, self._row.weights_key)

    def weights_list(self, path: str) -> bool:
        from pipeline.backends.weights import manifest_lists

        return self._row.weights_key is not None and manifest_lists(self.config.weights, self._row.weights_key, path)

    def part(self, key: str) -> Any:
        if key not in self._row.uses:
            raise LookupError(f"backend {self._row.key} asks for {key}, which its row does not list in `uses`")
        return self._backends.backend(key)


class PlannedBackends:
    def __init__(self, config: ModelConfig | None = None, table: BackendTable = BACKENDS) -> None:
        self.config = config or ModelConfig()
        self.table = table
        self.plan = table.plan(self.config.profile, self.config.backends)  # ProfileError at start, not at a job
        self._lock = threading.RLock()  # re-entrant: a composite builds its parts while being built
        self._made: dict[str, Any] = {}
        for key in sorted(table.parts(k for k in self.serving_plan().values() if k is not None)):
            hook = table[key].main_thread
            if hook is not None:  # e.g. pymeshlab, which aborts the process if first imported on a worker thread
                resolve(hook)()

    def serving_plan(self) -> dict[str, str | None]:
        """The plan as it really serves here: a backend whose required setting is unset serves nothing. Its
        entries join the run keys, so adding an API key re-runs what that backend changes."""
        return {protocol: key if key is not None and self.config.configured(self.table[key].requires) else None
                for protocol, key in self.plan.items()}

    def serving(self, protocol: str) -> Any | None:
        """The backend serving `protocol` here, built once; None when nothing serves it."""
        if protocol not in PROTOCOLS:
            raise KeyError(f"unknown protocol {protocol!r}; protocols are {', '.join(PROTOCOLS)}")
        key = self.serving_plan()[protocol]
        return None if key is None else self.backend(key)

    def for_roles(self, roles: Mapping[str, str]) -> dict[str, Any]:
        """A phase's backends by role (role -> protocol, its row of the phase table)."""
        return {role: self.serving(protocol) for role, protocol in roles.items()}

    def backend(self, key: str) -> Any:
        with self._lock:
            if key not in self._made:
                row = self.table[key]
                built = resolve(row.build)(_Context(self, row))
                if getattr(built, "name", None) != key:
                    raise TypeError(f"{row.build} built a backend named {getattr(built, 'name', None)!r}; the backend "
                                    f"table calls it {key!r}: the adapter's `name` and its row's key must agree")
                self._made[key] = built
            return self._made[key]

    def warm_up(self, protocols: Iterable[str] | None = None) -> None:
        """Build and load the backends serving `protocols` (None: every protocol) now, not on the first job."""
        for protocol in PROTOCOLS if protocols is None else protocols:
            backend = self.serving(protocol)
            warm = getattr(backend, "warm_up", None)
            if callable(warm):
                warm()
