"""The architecture holds: layers point down, no import cycles, one installed import root,
and every settings field reaches the CLI with its one default.

The import graph is read from the installed ``rag`` package's source with ``ast`` (nothing
is imported), so a cycle or an upward import fails here before it can fail at run time.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import zipfile
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The core: what every front end builds on. It never imports the layers above it.
CORE = ("rag.text", "rag.types", "rag.errors", "rag.config", "rag.version", "rag.settings", "rag.language", "rag.lexical",
        "rag.store", "rag.vectors", "rag.versions", "rag.locations", "rag.milvus_store", "rag.terms", "rag.citations", "rag.answerability", "rag.embedders", "rag.retrieval", "rag.generators", "rag.qa",
        "rag.prompts")
UPPER = ("rag.ingest", "rag.ui", "rag.evaluation", "rag.server", "rag.cli")
# Subpackages installed from top-level folders (pyproject.toml [tool.setuptools] package-dir).
MAPPED = ("rag.ingest", "rag.ui", "rag.prompts", "rag.server")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def installed_modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the installed ``rag`` package."""
    modules: dict[str, Path] = {}
    packages = ["rag", *MAPPED]
    while packages:
        package = packages.pop()
        folder = _package_dir(package)
        if folder is None or package in modules:
            continue
        for file in sorted(folder.glob("*.py")):
            name = package if file.stem == "__init__" else f"{package}.{file.stem}"
            modules[name] = file
        packages += [f"{package}.{sub.name}" for sub in sorted(folder.iterdir())
                     if (sub / "__init__.py").is_file()]
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``name`` (a dotted import target) lands in, if any."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                for alias in node.names:
                    # `from rag import config` imports the module rag.config; `from rag import
                    # ask` takes a name from rag/__init__.py.
                    sub = f"{origin}.{alias.name}"
                    targets.add(sub if sub in modules else origin)
        graph[name] = {t for t in (_resolve(t, modules) for t in targets) if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.fixture(scope="module")
def graph():
    modules = installed_modules()
    return import_graph(modules)


def test_every_layer_of_the_installed_package_is_read(graph):
    for name in ("rag", "rag.qa", "rag.store", "rag.vectors", "rag.evaluation.runs", "rag.ingest.pipeline",
                 "rag.ui.app", "rag.prompts", "rag.embedders.hashing", "rag.generators.extractive"):
        assert name in graph, f"{name} not found in the installed package"
    assert "rag.vectors" in graph["rag.store"] and "rag.vectors" in graph["rag.terms"]


def test_no_two_modules_import_each_other(graph):
    loops = cycles(graph)
    detail = "; ".join(", ".join(f"{a} -> {b}" for a in group for b in sorted(graph[a]) if b in group)
                       for group in loops)
    assert not loops, (
        f"import cycles ({detail}). Move what both sides need into a lower module (as rag.vectors for "
        f"store/terms, rag.evaluation.runs for runner/report); an arrow into `rag` is a module importing the "
        f"package facade (import rag / from rag import NAME): import NAME from the module that defines it")


def test_the_core_never_imports_the_layers_above_it(graph):
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() if _within(module, CORE)
                    for target in targets if _within(target, UPPER))
    assert not upward, f"core modules import upper layers: {', '.join(upward)}"


def test_the_cycle_check_finds_a_cycle():
    # The checker itself: a -> b -> c -> a is one group; d alone is none.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_wheel_installs_one_import_root(tmp_path):
    import shutil

    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("rag", "ingest", "ui", "prompts"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("rag_docs-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    roots = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert roots == {"rag"}, f"the wheel installs import names {sorted(roots)}: map folders under rag in pyproject"
    for module in ("rag/ingest/pipeline.py", "rag/ui/app.py", "rag/prompts/__init__.py",
                   "rag/prompts/system.jinja", "rag/evaluation/runs.py", "rag/vectors.py"):
        assert module in names, f"{module} missing from the wheel"


def _help(command: str) -> str:
    from click.testing import CliRunner

    from rag.cli import main

    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # click wraps help text


@pytest.mark.parametrize("command", ["ask", "eval"])
def test_cli_help_shows_every_setting_with_its_one_default(command):
    from rag.settings import GenerationSettings, RetrievalSettings

    text = _help(command)
    for cls in (RetrievalSettings, GenerationSettings):
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            assert flag in text, f"rag {command} --help lacks {flag}"
            default = f.default if f.default is not MISSING else f.default_factory()
            if isinstance(default, bool):
                assert f"{flag} / --no-{f.name.replace('_', '-')}" in text
                assert f"[default: {'on' if default else 'off'}]" in text
            elif default not in (None, ()):
                after = text[text.index(flag):]
                shown = after[:after.find(" --", len(flag)) if " --" in after[len(flag):] else None]
                assert f"[default: {default}]" in shown, f"rag {command} --help: {flag} does not show {default}"


def test_the_generation_defaults_are_written_once():
    # 0.2 / 0.9 / 512 as defaults appear in rag/settings.py only (issue 10).
    offenders = []
    for file in sorted((ROOT / "rag").rglob("*.py")) + sorted((ROOT / "ui").rglob("*.py")):
        if file.name == "settings.py" and file.parent.name == "rag":
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                pairs = list(zip(args.args[len(args.args) - len(args.defaults):], args.defaults))
                pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
                for arg, default in pairs:
                    if (arg.arg in ("temperature", "top_p", "max_tokens") and isinstance(default, ast.Constant)
                            and default.value is not None):
                        offenders.append(f"{file.relative_to(ROOT)}:{node.lineno} {node.name}({arg.arg}="
                                         f"{default.value})")
    assert not offenders, f"generation defaults written outside rag/settings.py: {offenders}"
