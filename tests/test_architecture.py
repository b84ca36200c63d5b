"""The package's layers (docs/architecture.md) hold: every import in ``fvcore_ext`` and
``torchprofile_ext``, module-level or inside a function, runs down the layers, never up or
across. Walks the source with ``ast``: nothing is imported to check it."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fvcore_ext"

# layer -> the layers it may import (itself included). Top-level modules (the package's
# __init__, __main__ and the re-exports of public paths) may import anything.
CORE = {"rules", "ops"}
ALLOWED: Dict[str, Set[str]] = {
    "rules": {"rules"},
    "ops": CORE,
    "runtime": {"runtime"},
    "reference_models": {"reference_models"},
    "engines": CORE | {"runtime", "roofline", "engines"},
    "roofline": CORE | {"roofline"},
    "laws": CORE | {"runtime", "engines", "laws"},
    "hf": CORE | {"runtime", "engines", "hf"},
    "mmseg": CORE | {"runtime", "engines", "mmseg"},
    "cli": CORE | {"runtime", "engines", "roofline", "laws", "hf", "mmseg", "reference_models",
                   "cli"},
}
# torchprofile_ext reads the same JIT trace as the JIT engine: it may import the core and the
# JIT engine's public names, from package __init__ modules only (no private helpers).
TORCHPROFILE_ALLOWED = {"fvcore_ext.ops", "fvcore_ext.rules", "fvcore_ext.runtime.meta",
                        "fvcore_ext.engines.jit"}


def _modules(top: Path) -> Iterator[Tuple[str, Path]]:
    for path in sorted(top.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(name: str, path: Path) -> Iterator[Tuple[str, Set[str], int]]:
    """(absolute module imported, names taken from it, line) for every import in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, set(), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = {a.name for a in node.names}
            if node.module is None:      # from . import x: each x is a module
                for n in names:
                    yield f"{module}.{n}", set(), node.lineno
            else:
                yield module, names, node.lineno


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) \
        else ""


MODULES = list(_modules(PACKAGE))


@pytest.mark.parametrize("name,path", MODULES, ids=[m for m, _ in MODULES])
def test_imports_run_down_the_layers(name, path):
    layer = _layer(name)
    if not layer:      # a top-level module: the public API and its re-exports
        return
    assert layer in ALLOWED, f"{name}: layer {layer!r} is not in docs/architecture.md"
    for module, _, line in _imports(name, path):
        if not module.startswith("fvcore_ext."):
            continue
        target = _layer(module)
        assert target in ALLOWED[layer], \
            f"{path.relative_to(ROOT)}:{line} imports {module} ({target or 'top level'}): " \
            f"the {layer} layer may import {sorted(ALLOWED[layer])} only"


def test_torchprofile_ext_imports_only_the_documented_core():
    for name, path in _modules(ROOT / "torchprofile_ext"):
        for module, names, line in _imports(name, path):
            if not module.startswith("fvcore_ext"):
                continue
            assert module in TORCHPROFILE_ALLOWED, f"{path.name}:{line} imports {module}"
            private = sorted(n for n in names if n.startswith("_"))
            assert not private, f"{path.name}:{line} imports private names {private}"


def test_every_package_states_its_concern():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} has no docstring of its concern"


def test_the_checker_sees_a_wrong_way_import(tmp_path):
    # the walk must be able to fail: an ops module importing the engines is caught
    bad = tmp_path / "bad.py"
    bad.write_text("from ..engines.analysis import count_model\n")
    (module, _, _), = _imports("fvcore_ext.ops.bad", bad)
    assert module == "fvcore_ext.engines.analysis"
    assert _layer(module) not in ALLOWED["ops"]
