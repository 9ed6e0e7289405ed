"""The import layers of docs/architecture.md, checked by parsing every import (ast).

Every ``import`` and ``from ... import`` counts, wherever it stands: module level, inside a
function, or under ``if TYPE_CHECKING``: a type-only import is still a dependency a reader
has to follow. ``check_tree`` is a plain function so the rule itself is tested on a scratch
tree that breaks it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("plumenet", "storage", "flows")

#: Leaf modules of ``plumenet``: anything may import them; they import only each other.
LEAVES = ("plumenet.errors", "plumenet.classes", "plumenet.timeutil", "plumenet.encoding")
#: Third-party packages only the orchestration layers may import.
ORCHESTRATION = ("prefect", "prefect_dask", "dask", "distributed", "dask_cuda", "dask_jobqueue")
#: Packages that keep torch out of a module (the store and the catalogue stay light).
TORCH = ("torch", "torchvision", "transformers", "safetensors")


@dataclass(frozen=True)
class Layer:
    """Modules under ``prefix`` may import first-party modules under ``allowed`` only."""

    prefix: str
    allowed: tuple[str, ...]
    forbidden_third_party: tuple[str, ...] = ()


#: The network, inference, anomaly and training layers use torch but never orchestration.
PURE = ORCHESTRATION
#: Most specific prefix wins. Order in the docs: leaves < storage < model < inference <
#: anomaly < training; science and synthetic beside them; config < jobs < flows < cli.
LAYERS: tuple[Layer, ...] = (
    Layer("plumenet.errors", (), ORCHESTRATION + TORCH),
    Layer("plumenet.classes", (), ORCHESTRATION + TORCH),
    Layer("plumenet.encoding", (), ORCHESTRATION + TORCH),
    Layer("plumenet.timeutil", ("plumenet.errors",), ORCHESTRATION + TORCH),
    Layer("storage", ("storage", *LEAVES), ORCHESTRATION + TORCH),
    Layer("plumenet.model", ("plumenet.model", *LEAVES), PURE),
    Layer("plumenet.inference", ("plumenet.inference", "plumenet.model", *LEAVES), PURE),
    Layer(
        "plumenet.anomaly",
        ("plumenet.anomaly", "plumenet.inference", "plumenet.model", *LEAVES),
        PURE,
    ),
    Layer(
        "plumenet.training",
        ("plumenet.training", "plumenet.inference", "plumenet.model", "plumenet.synthetic",
         *LEAVES),
        PURE,
    ),
    Layer("plumenet.science", ("plumenet.science", *LEAVES), ORCHESTRATION + TORCH),
    Layer("plumenet.synthetic", ("plumenet.synthetic", *LEAVES), ORCHESTRATION + TORCH),
    Layer(
        "plumenet.config", ("plumenet.config", "storage.layouts", *LEAVES), ORCHESTRATION + TORCH
    ),
    Layer(
        "plumenet.jobs",
        ("plumenet", "storage"),
        ("prefect", "prefect_dask"),
    ),
    Layer("flows", ("flows", "plumenet.jobs", "plumenet.config", *LEAVES)),
    Layer("plumenet.cli", ("plumenet", "storage", "flows")),
    Layer("plumenet", ("plumenet.classes",), ORCHESTRATION + TORCH),  # plumenet/__init__
)

#: First-party modules the jobs layer never imports (they sit above it).
ABOVE_JOBS = ("plumenet.cli", "flows")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> Layer:
    """The most specific layer whose prefix covers ``module``."""
    candidates = [layer for layer in LAYERS if _within(module, layer.prefix)]
    if not candidates:
        raise LookupError(f"{module} belongs to no layer: add it to LAYERS and the docs")
    return max(candidates, key=lambda layer: len(layer.prefix))


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str, root: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the file, relative ones resolved.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is one of our modules
    (``from storage import store``), else as importing ``pkg`` (``from dask import delayed``).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = {f"{target}.{alias.name}" for alias in node.names}
            submodules = sorted(n for n in names if _is_module(n, root))
            plain = len(submodules) < len(names)
            found.extend((node.lineno, name) for name in submodules + ([target] if plain else []))
    return found


FIRST_PARTY = SOURCES


def violations(module: str, imported: str) -> str | None:
    """Why ``module`` may not import ``imported``, or None when it may."""
    layer = layer_of(module)
    top = imported.split(".")[0]
    if top in layer.forbidden_third_party:
        return f"{module} ({layer.prefix} layer) imports {imported}"
    if top not in FIRST_PARTY:
        return None
    if _within(imported, module) or (_within(module, imported) and imported in SOURCES):
        return None  # itself, or its own package root (``from plumenet import x`` resolved below)
    if _within(module, "plumenet.jobs") and any(_within(imported, p) for p in ABOVE_JOBS):
        return f"{module} (jobs layer) imports {imported}, which sits above it"
    if not any(_within(imported, allowed) for allowed in layer.allowed):
        return f"{module} ({layer.prefix} layer) imports {imported}"
    return None


def _is_module(name: str, root: Path) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def check_tree(root: Path) -> list[str]:
    """Every import against the layer rule, as ``path:line: reason`` lines."""
    problems: list[str] = []
    for source in SOURCES:
        for path in sorted((root / source).rglob("*.py")):
            module = module_name(path, root)
            for line, imported in imports_of(path, module, root):
                reason = violations(module, imported)
                if reason:
                    problems.append(f"{path.relative_to(root)}:{line}: {reason}")
    return problems


def test_the_tree_follows_the_layers() -> None:
    problems = check_tree(ROOT)
    assert not problems, "imports against docs/architecture.md:\n" + "\n".join(problems)


def test_every_module_belongs_to_a_layer() -> None:
    for source in SOURCES:
        for path in (ROOT / source).rglob("*.py"):
            layer_of(module_name(path, ROOT))


def _scratch_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for source in SOURCES:
        (tmp_path / source).mkdir(exist_ok=True)
        (tmp_path / source / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        ("plumenet/science/bad.py", "import storage.store\n", "plumenet.science layer"),
        ("plumenet/science/bad.py", "def f():\n    from storage import store\n",
         "plumenet.science layer"),
        ("plumenet/model/bad.py", "import prefect\n", "imports prefect"),
        ("plumenet/inference/bad.py", "from dask import delayed\n", "imports dask"),
        ("storage/bad.py", "from plumenet.config import Config\n", "storage layer"),
        ("storage/bad.py", "import torch\n", "imports torch"),
        ("plumenet/jobs/bad.py", "from flows import pipeline\n", "sits above it"),
        ("flows/bad.py", "from plumenet.inference import predictor\n", "flows layer"),
        ("plumenet/science/bad.py",
         "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from storage import store\n",
         "plumenet.science layer"),
    ],
)
def test_the_rule_catches_a_forbidden_import(
    tmp_path: Path, rel: str, text: str, expected: str
) -> None:
    files = {
        "storage/store.py": "", "storage/layouts.py": "", "plumenet/config.py": "",
        "plumenet/errors.py": "", "plumenet/science/__init__.py": "",
        "plumenet/model/__init__.py": "", "plumenet/inference/__init__.py": "",
        "plumenet/inference/predictor.py": "", "plumenet/jobs/__init__.py": "",
        "flows/pipeline.py": "", rel: text,
    }
    problems = check_tree(_scratch_tree(tmp_path, files))
    assert len(problems) == 1 and expected in problems[0], problems


def test_allowed_imports_pass_on_a_scratch_tree(tmp_path: Path) -> None:
    files = {
        "plumenet/errors.py": "", "plumenet/science/__init__.py": "",
        "plumenet/science/a.py": "from plumenet.errors import ConfigError\nimport numpy\n",
        "plumenet/jobs/__init__.py": "",
        "plumenet/jobs/run.py": "import storage\nfrom plumenet.science import a\nimport dask\n",
        "flows/run.py": "from plumenet.jobs import run\nimport prefect\n",
    }
    assert check_tree(_scratch_tree(tmp_path, files)) == []
