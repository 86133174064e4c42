"""The package's shape: folders are stages of the data flow, imports only go down, no private reach-ins.

Every ``import`` in ``hf_saerl`` (at module level or inside a function: a lazy import is still a
dependency), and every module named in a package's lazy ``_EXPORTS`` table, is read with ``ast`` and checked
against the stage order below. A stage imports only from stages of a lower rank (or from itself): stages of the
same rank are siblings and never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hf_saerl"

#: Stage -> rank. A module imports from strictly lower ranks (or its own stage), never above or sideways.
RANKS = {
    "_version": 0,
    "errors": 0,
    "core": 1,
    "models": 2,
    "encoding": 3,
    "rollouts": 3,  # siblings over models: SAE features, and the policy's own pass rates
    "estimators": 4,
    "curriculum": 5,
    "selection": 6,
    "pipeline": 7,
    "audit": 8,
    "integrations": 9,
    "demo": 10,  # the worked example: it composes the public stages
    "cli": 11,  # the top: it dispatches to every stage, the worked example included
    "testing": 11,  # tiny models for tests and docstring examples; the library never imports it
}
#: The facade and the entry point re-export or dispatch to every stage.
FACADES = {"hf_saerl", "hf_saerl.__main__"}
#: Private by name, shared by design: setuptools and every module read the version from ``_version.py``.
SHARED_PRIVATE = {"_version"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


MODULES = _modules()


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1]


def _package(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def _imports(module: str, path: Path):
    """(imported module, imported names, line) for every import in the file, resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _package(module, path.name == "__init__.py")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            if node.module is None:  # from . import x: x may be a submodule
                for name in names:
                    yield f"{target}.{name}", [], node.lineno
            else:
                yield target, names, node.lineno
        elif (
            isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):  # lazy re-exports: name -> module, imported on first use
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(value, ast.Constant) and isinstance(key, ast.Constant):
                    yield value.value, [key.value], value.lineno


def _internal(module: str) -> bool:
    return module == "hf_saerl" or module.startswith("hf_saerl.")


def _resolve_module(target: str, known: set[str]) -> str:
    """The longest prefix of ``target`` that is a module of the package (``from .x import y`` may name a function)."""
    while target not in known and "." in target:
        target = target.rpartition(".")[0]
    return target


def test_every_stage_folder_has_a_rank():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    top_modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert folders | top_modules <= set(RANKS), (
        f"give these a rank in RANKS: {sorted((folders | top_modules) - set(RANKS))}"
    )


def _violations(modules: list[tuple[str, Path]]) -> list[str]:
    known = {m for m, _ in modules}
    problems = []
    for module, path in modules:
        if module in FACADES:
            continue
        stage = _stage(module)
        for target, names, line in _imports(module, path):
            if not _internal(target):
                continue
            target = _resolve_module(target, known)
            target_stage = _stage(target)
            where = f"{path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE.parent) else path}:{line}"
            if target_stage is None or target_stage == stage:
                continue
            if RANKS[target_stage] >= RANKS[stage]:
                way = "up" if RANKS[target_stage] > RANKS[stage] else "sideways, into a sibling stage"
                problems.append(
                    f"{where}: {stage} (rank {RANKS[stage]}) imports {target} ({target_stage}, rank "
                    f"{RANKS[target_stage]}): that goes {way}; imports must only go down the stages"
                )
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private_parts = [
                p
                for p in target.split(".")[1:]
                if p.startswith("_") and not p.startswith("__") and p not in SHARED_PRIVATE
            ]
            if private or private_parts:
                problems.append(
                    f"{where}: {module} imports private {private or private_parts} from another "
                    f"package ({target}): make it public and documented"
                )
    return problems


def test_imports_only_go_down_and_never_reach_private_names():
    problems = _violations(MODULES)
    assert not problems, "\n".join(problems)


def test_the_layer_check_catches_an_upward_and_a_private_import(tmp_path):
    """The scan itself works: a planted upward import and a planted private import are both reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from ..pipeline import SAERLPipeline\nfrom ..core.hub import _secret\nfrom ..core import hub\n"
        "from ..rollouts.labeller import RolloutLabeller\n_EXPORTS = {'SAEClusterer': 'hf_saerl.estimators.clustering'}\n"
    )
    modules = [
        ("hf_saerl.encoding.bad", bad),
        ("hf_saerl.pipeline", bad),
        ("hf_saerl.core.hub", bad),
        ("hf_saerl.rollouts.labeller", bad),
        ("hf_saerl.estimators.clustering", bad),
    ]
    problems = _violations(modules)
    assert any("encoding (rank 3) imports hf_saerl.pipeline" in p and "goes up" in p for p in problems), problems
    assert any("imports hf_saerl.rollouts.labeller" in p and "sideways" in p for p in problems), problems
    assert any("imports hf_saerl.estimators.clustering" in p for p in problems), problems
    assert any("private ['_secret']" in p for p in problems), problems
    assert not any("hf_saerl.core.hub (" in p for p in problems), problems  # a downward, public import is fine


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_every_module_says_what_it_holds(module, path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc and doc.strip(), f"{path}: start the module with a one-sentence docstring saying what it holds"
