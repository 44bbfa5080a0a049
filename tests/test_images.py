"""The Modal images install what pyproject.toml declares, and that is enough: every package a backend's code
imports is declared in the extras of the image its phases run in (the old hand-written lists had no google-genai,
so with a Gemini key the wardrobe phase would have waited forever as unavailable)."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, distributions, packages_distributions, requires
from pathlib import Path

import pytest

from pipeline.backends.table import BACKENDS, BackendSpec

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"pipeline", "functions", "events", "infra", "bench", "modal_deploy"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def name_of(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@cache
def closure(names: frozenset[str]) -> frozenset[str]:
    """The distributions and everything they require, as installed here (a CUDA-only one counts as itself)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        try:
            todo += [name_of(r) for r in requires(dist) or [] if "extra ==" not in r]
        except PackageNotFoundError:
            pass
    return frozenset(seen)


def installed_by(extras: tuple[str, ...]) -> frozenset[str]:
    declared = {name_of(r) for r in PYPROJECT["project"]["dependencies"]}
    for extra in extras:
        declared |= {name_of(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]}
    declared |= {name_of(r) for r in PYPROJECT["tool"]["dropfit"]["install-without-deps"]}
    return closure(frozenset(declared))


def imports_of(module: str, seen: set[str] | None = None) -> set[str]:
    """The third-party top-level modules `module` imports anywhere (lazily too), following our own modules."""
    seen = seen if seen is not None else set()
    if module in seen:
        return set()
    seen.add(module)
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [f"{node.module}.{a.name}" for a in node.names] \
            if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in names:
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                module_name = name if _is_module(name) else name.rpartition(".")[0]
                if _is_module(module_name):
                    found |= imports_of(module_name, seen)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(name)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@cache
def top_levels() -> dict[str, list[str]]:
    """Top-level module -> distributions installing it; "*" -> every distribution's name."""
    return {**packages_distributions(), "*": [d.metadata["Name"] for d in distributions()]}


@cache
def files_of(dist_name: str) -> frozenset[str]:
    dist = distribution(dist_name)
    return frozenset(str(Path(dist.locate_file(f)).resolve()) for f in dist.files or [])


def distributions_of(module: str) -> set[str]:
    """The distribution whose files hold `module` (its top-level package, or a namespace's sub-package): among those
    that install its top-level name (or, when their metadata does not say, those named after it, like dlib-bin)."""
    parts = module.split(".")
    top = parts[0]
    candidates = top_levels().get(top) or [d for d in top_levels()["*"] if top.lower() in d.lower()]
    spec = importlib.util.find_spec(top) if _is_module(top) else None  # a top level: nothing is imported
    if spec is not None and spec.origin in (None, "namespace") and len(parts) > 1:  # google.genai, not google
        spec = importlib.util.find_spec(".".join(parts[:2])) if _is_module(".".join(parts[:2])) else None
    if spec is not None and spec.origin not in (None, "namespace"):
        origin = str(Path(spec.origin).resolve())
        owners = {d.lower().replace("_", "-") for d in candidates if origin in files_of(d)}
        if owners:
            return owners
    return {top.lower().replace("_", "-")}  # not installed here (a CUDA-only package): its own name


def image_extras(row: BackendSpec) -> tuple[str, ...]:
    return ("cpu", "gpu", "cuda") if BACKENDS.needs_gpu(row.key) else ("cpu",)


# Backends whose code no pip requirement can install: no image has them, so a deployment that overrides a protocol
# to one needs its own image, and until then the phase is unavailable saying which module is missing (docs/gpu.md).
NOT_FROM_PIP = {"trellis2-4b": {"trellis2": "TRELLIS.2 is not on PyPI and builds CUDA extensions from source"}}


@pytest.mark.parametrize("row", BACKENDS.rows, ids=lambda r: r.key)
def test_every_package_a_backend_imports_is_installed_by_its_image(row: BackendSpec) -> None:
    if row.key in NOT_FROM_PIP:
        assert not row.profiles, f"{row.key} cannot be installed by any image, so no profile may plan it"
    installed = installed_by(image_extras(row))
    module = row.build.partition(":")[0]
    missing = {m: sorted(distributions_of(m)) for m in imports_of(module)
               if not distributions_of(m) & installed and m.split(".")[0] != "torchvision"}
    cuda_only = {"torchvision", "ultralytics"}  # in the cuda extra; not installable next to CPU torch
    missing = {m: d for m, d in missing.items() if not (set(d) & cuda_only and "cuda" in image_extras(row))
               and m.split(".")[0] not in NOT_FROM_PIP.get(row.key, {})}
    assert not missing, f"{row.key} ({module}) imports packages its image does not install: {missing}"


def test_the_gemini_client_is_in_the_cpu_models_image() -> None:
    assert "google-genai" in installed_by(("cpu",))


def test_the_modal_app_takes_its_packages_from_pyproject() -> None:
    source = (ROOT / "modal_deploy.py").read_text()
    assert "pip_install_from_pyproject" in source
    assert not re.search(r"\"[a-z0-9-]+==[0-9.]+\"", source), "a pinned package written into modal_deploy.py"
    import modal_deploy

    assert modal_deploy.pin("cuda", "onnxruntime-gpu").startswith("onnxruntime-gpu==")
    assert modal_deploy.pin("cpu", "torch") == "torch==2.13.0"
