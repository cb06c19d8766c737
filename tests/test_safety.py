"""Nothing in the package can unpickle a file: weights are safetensors, checkpoints never ``torch.load``ed
without ``weights_only=True`` (docs/security.md). Checked on the source itself, so new code is covered
the day it lands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "hsrecon"
# Modules whose only purpose is to deserialise arbitrary Python objects.
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _torch_load_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls of ``torch.load(...)`` (any alias of torch) and of a bare ``load`` imported from torch."""
    torch_names = {"torch"}
    load_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            torch_names |= {alias.asname or alias.name for alias in node.names if alias.name == "torch"}
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            load_names |= {alias.asname or alias.name for alias in node.names if alias.name == "load"}
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        attribute = isinstance(func, ast.Attribute) and func.attr == "load"
        if (attribute and isinstance(func.value, ast.Name) and func.value.id in torch_names) or (
            isinstance(func, ast.Name) and func.id in load_names
        ):
            calls.append(node)
    return calls


def _unsafe_loads(source: str, name: str) -> list[str]:
    """One line per way ``source`` could unpickle: ``name:line: what``."""
    tree = ast.parse(source, filename=name)
    found = []
    for call in _torch_load_calls(tree):
        weights_only = next((kw.value for kw in call.keywords if kw.arg == "weights_only"), None)
        if not _is_true(weights_only):
            found.append(f"{name}:{call.lineno}: torch.load without weights_only=True")
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module.split(".")[0]]
        found += [f"{name}:{node.lineno}: imports {module}" for module in names if module in UNPICKLERS]
        if isinstance(node, ast.Call) and any(kw.arg == "allow_pickle" and _is_true(kw.value) for kw in node.keywords):
            found.append(f"{name}:{node.lineno}: allow_pickle=True")
    return found


def test_the_package_never_unpickles():
    sources = _sources()
    assert len(sources) > 10
    problems = [problem for path in sources for problem in _unsafe_loads(path.read_text(encoding="utf-8"), str(path))]
    assert problems == []


@pytest.mark.parametrize(
    ("code", "flagged"),
    [
        ("import torch\ntorch.load(p)", True),
        ("import torch\ntorch.load(p, weights_only=False)", True),
        ("import torch as t\nt.load(p, map_location='cpu')", True),
        ("from torch import load\nload(p)", True),
        ("import pickle", True),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", True),
        ("import torch\ntorch.load(p, weights_only=True)", False),
        ("import json\njson.load(f)", False),
        ("from safetensors.torch import load_file\nload_file(p)", False),
    ],
)
def test_the_checker_catches_what_it_should(code, flagged):
    problems = _unsafe_loads(code, "probe.py")
    assert bool(problems) == flagged, problems
