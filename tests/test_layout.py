"""The package's shape: no import cycle inside ``deepsade/``, the core never imports the use cases, and the
CLI's ``--help`` stays light (no torch, no z3)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "deepsade"
USECASES = "deepsade.usecases"
CLI = "deepsade.cli"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str], *, top_level_only: bool) -> set[str]:
    """The ``deepsade`` modules that ``path`` imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # the longest known module the import names (``deepsade.x.y`` for an attribute y of module x: x)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(*, top_level_only: bool) -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(f) for f in files}
    return {module_name(f): imported_modules(f, known, top_level_only=top_level_only) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_cycle_finder_finds_a_cycle_and_accepts_a_dag() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_resolution_reads_relative_and_from_imports(tmp_path: Path) -> None:
    graph = import_graph(top_level_only=False)
    assert "deepsade.usecases.case" in graph["deepsade.usecases.uc2_loan"]  # from .case import UseCase
    assert "deepsade.usecases.report" in graph["deepsade.usecases.experiment"]
    assert "deepsade.methods" in graph["deepsade.estimator"]


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level imports", "every import"])
def test_no_import_cycle_inside_the_package(top_level_only: bool) -> None:
    cycle = find_cycle(import_graph(top_level_only=top_level_only))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_core_never_imports_the_use_cases() -> None:
    graph = import_graph(top_level_only=False)
    core = [m for m in graph if not m.startswith((USECASES, CLI))]
    assert "deepsade.estimator" in core and "deepsade.methods" in core
    offenders = {m: sorted(t for t in graph[m] if t.startswith(USECASES)) for m in core}
    assert not {m: t for m, t in offenders.items() if t}


def test_nothing_imports_the_old_top_level_usecases_package() -> None:
    """The use cases live in ``deepsade.usecases``; a stale top-level ``usecases`` (e.g. from another checkout's
    editable install) must not be what the code or the tests run against."""
    assert not (REPO / "usecases").exists()
    stale = []
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "tests").glob("*.py"), *(REPO / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            stale += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "usecases"]
    assert not stale
    import deepsade.usecases as cases

    assert Path(cases.__file__).resolve().parent == PACKAGE / "usecases"


def test_cli_help_imports_neither_torch_nor_z3() -> None:
    code = ("import sys\nfrom deepsade.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'z3', 'pandas', 'deepsade.usecases') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout and "train" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_cli_command_summaries_match_the_commands() -> None:
    """``deepsade --help`` shows stored summaries (to avoid importing every command): they must stay true."""
    from deepsade.cli import COMMANDS, load_command

    for name, entry in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
        assert entry.summary == first_paragraph, name
