"""The folder tree is the architecture: imports go one way, and phase logic loads no heavy SDK at import.

pipeline  <-  events  <-  infra  <-  functions      (an arrow points at what may be imported)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.phases import PHASES
from pipeline.registry import product_registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "events", "infra", "functions")
FORBIDDEN = {  # package -> top-level packages it must never import, anywhere in the file
    "pipeline": {"events", "infra", "functions", "tests"},
    "events": {"infra", "functions", "tests"},
    "infra": {"functions", "tests"},
    "functions": {"tests"},
}
HEAVY = (
    "boto3",
    "botocore",
    "modal",
    "torch",
    "diffusers",
    "ultralytics",
    "insightface",
    "google.genai",
    "mediapipe",
)
LIGHT_PACKAGES = ("pipeline", "events")

Found = tuple[int, str]  # (line, imported module)


def product_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def imported(node: ast.Import | ast.ImportFrom, module_name: str) -> Iterator[str]:
    """The absolute modules an import statement names (for `from a import b`: 'a' and 'a.b')."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parent = module_name.split(".")[: -node.level]
        base = ".".join([*parent, base] if base else parent)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def all_imports(tree: ast.AST, module_name: str) -> Iterator[Found]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from ((node.lineno, name) for name in imported(node, module_name))


def module_level_imports(body: list[ast.stmt], module_name: str) -> Iterator[Found]:
    """Imports that run when the module is imported: not inside functions, not under `if TYPE_CHECKING:`."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from ((node.lineno, name) for name in imported(node, module_name))
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from module_level_imports(node.orelse, module_name)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None) or []
                nested = [c for c in children if isinstance(c, ast.stmt)]
                nested += [
                    s for c in children if isinstance(c, ast.excepthandler | ast.match_case) for s in c.body
                ]
                yield from module_level_imports(nested, module_name)


def module_name_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_under(name: str, roots: tuple[str, ...] | set[str]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def first_per_line(found: Iterator[Found], roots: set[str] | tuple[str, ...]) -> list[Found]:
    """The first offending name of each import statement, in line order."""
    hits: dict[int, str] = {}
    for line, name in found:
        if is_under(name, roots):
            hits.setdefault(line, name)
    return sorted(hits.items())


def layering_violations(source: str, module: str, label: str) -> list[str]:
    found = all_imports(ast.parse(source, label), module)
    return [
        f"{label}:{line}: imports {name}"
        for line, name in first_per_line(found, FORBIDDEN[module.split(".")[0]])
    ]


def heavy_violations(source: str, module: str, label: str) -> list[str]:
    found = module_level_imports(ast.parse(source, label).body, module)
    return [f"{label}:{line}: imports {name} at module level" for line, name in first_per_line(found, HEAVY)]


def scan(check: Callable[[str, str, str], list[str]], packages: tuple[str, ...] = PACKAGES) -> list[str]:
    problems = []
    for path in product_files():
        rel = path.relative_to(ROOT)
        if rel.parts[0] in packages:
            problems += check(path.read_text(), module_name_of(path), str(rel))
    return problems


def test_the_scan_sees_the_product() -> None:
    files = product_files()
    assert {f.relative_to(ROOT).parts[0] for f in files} == set(PACKAGES)
    assert ROOT / "pipeline" / "layout.py" in files and ROOT / "events" / "router.py" in files


def test_imports_go_one_way() -> None:
    problems = scan(layering_violations)
    assert not problems, "imports against the one-way rule:\n" + "\n".join(problems)


# Network definitions (torch nn.Module subclasses) need torch to exist at all: they may import it at module level,
# as long as nothing imports them at module level (their adapters do, inside the function that loads the model).
NETWORK_MODULES = {"pipeline.backends.gpu.fashn_mmdit", "pipeline.backends.gpu.triposr_net"}


def test_phase_logic_imports_no_heavy_sdk_at_module_level() -> None:
    problems = [p for p in scan(heavy_violations, LIGHT_PACKAGES)
                if module_name_of(ROOT / p.split(":", 1)[0]) not in NETWORK_MODULES]
    assert not problems, "heavy imports at module level in pipeline/ or events/:\n" + "\n".join(problems)


def test_network_definitions_are_imported_only_where_a_model_loads() -> None:
    problems = []
    for path in product_files():
        module = module_name_of(path)
        found = module_level_imports(ast.parse(path.read_text(), str(path)).body, module)
        problems += [f"{path.relative_to(ROOT)}:{line}: imports {name} at module level"
                     for line, name in first_per_line(found, NETWORK_MODULES)]
    assert not problems, "network modules imported at module level:\n" + "\n".join(problems)


# The scanner itself, on small sources: a rule that cannot fail protects nothing.

SAMPLE = """
from __future__ import annotations
import json
from typing import TYPE_CHECKING
from google import genai
from . import layout
from ..infra.folder_store import FolderStore
if TYPE_CHECKING:
    import torch
try:
    import boto3.session
except ImportError:
    boto3 = None
class Backend:
    import modal
    def load(self):
        import diffusers
def lazy():
    from functions import cli
"""


def test_scanner_finds_module_level_and_nested_imports() -> None:
    tree = ast.parse(SAMPLE)
    top = {name for _, name in module_level_imports(tree.body, "pipeline.sample")}
    assert {"google.genai", "pipeline.layout", "infra.folder_store", "boto3.session", "modal"} <= top
    assert not {"torch", "diffusers", "functions"} & top  # type-only, or inside a function
    everywhere = {name for _, name in all_imports(tree, "pipeline.sample")}
    assert {"torch", "diffusers", "functions", "functions.cli"} <= everywhere


def test_scanner_reports_file_and_line() -> None:
    assert layering_violations(SAMPLE, "pipeline.sample", "pipeline/sample.py") == [
        "pipeline/sample.py:7: imports infra.folder_store",
        "pipeline/sample.py:19: imports functions",
    ]
    assert heavy_violations(SAMPLE, "pipeline.sample", "pipeline/sample.py") == [
        "pipeline/sample.py:5: imports google.genai at module level",
        "pipeline/sample.py:11: imports boto3.session at module level",
        "pipeline/sample.py:15: imports modal at module level",
    ]
    assert layering_violations(SAMPLE, "functions.sample", "functions/sample.py") == []
    assert module_name_of(ROOT / "pipeline" / "__init__.py") == "pipeline"
    assert module_name_of(ROOT / "events" / "router.py") == "events.router"


# ---- no fake in the product ------------------------------------------------------------------------


def implementation_module(fn: object) -> str:
    target = getattr(fn, "func", fn)  # functools.partial
    return getattr(target, "__module__", None) or type(target).__module__


def test_product_registry_holds_no_test_fake() -> None:
    registry = product_registry()
    for phase in PHASES:
        if registry.available(phase.name):
            module = implementation_module(registry.get(phase.name))
            assert not is_under(module, {"tests", "fakes", "conftest"}), (
                f"{phase.name} is implemented by {module}"
            )
        else:
            assert registry.missing().get(phase.name), f"{phase.name} is unavailable without saying why"


@pytest.mark.parametrize("module", ["pipeline.registry", "events.router"])
def test_importing_the_product_loads_no_test_code_and_no_heavy_sdk(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        f"heavy = {HEAVY!r}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tests', 'fakes', 'conftest')\n"
        "             or any(m == h or m.startswith(h + '.') for h in heavy))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing {module} loaded: {done.stdout.strip()}"

