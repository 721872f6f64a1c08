"""The import rules between the project's layers (docs/architecture.md, "Layout").

Every ``.py`` file of the packages is parsed, and every import in it — at module level and inside
functions, since a deferred import is still a dependency — is checked against the table below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "collectors", "detectors", "alerts", "dashboard")

# Modules that import nothing of the project: the SDK and the detectors may use them.
LEAVES = ("monitor.errors", "monitor.retry", "monitor.methods")
CORE = (*LEAVES, "monitor.config", "monitor.logs", "monitor.store")
IO_LIBRARIES = ("sqlalchemy", "httpx", "requests", "elasticsearch", "socket", "urllib.request")


@dataclass(frozen=True)
class Rule:
    """``who`` (module prefixes) may import of the project only ``only`` (when given), and never ``never``."""

    who: tuple[str, ...]
    only: tuple[str, ...] | None = None
    never: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()
    why: str = ""


RULES = (
    Rule(LEAVES, only=(), never=IO_LIBRARIES, why="leaves: imported by the SDK and the detectors"),
    Rule(CORE, only=CORE, why="the core knows no collector, detector, alert, dashboard or entry point"),
    Rule(("monitor.sdk",), only=("monitor.retry",), why="the SDK runs inside model services"),
    Rule(
        ("monitor.instrument",),
        only=("monitor.sdk", "monitor.retry"),
        never=("starlette", "fastapi"),
        why="the instrumentation runs inside model services, whichever ASGI framework they use",
    ),
    Rule(("monitor.metrics",), only=(*CORE, "monitor.metrics"), why="metrics read the store only"),
    Rule(("monitor.ingest",), only=(*CORE, "monitor.ingest", "monitor.metrics.process"), why="ingestion is core"),
    Rule(
        ("collectors",),
        only=(*CORE, "collectors", "monitor.ingest", "monitor.metrics"),
        why="collectors write through ingestion; they know no detector, alert or entry point",
    ),
    Rule(
        ("monitor.runs",),
        only=(*CORE, "monitor.runs", "monitor.ingest", "monitor.metrics", "detectors"),
        why="runs wire the detectors to the store; alerts and collectors are the worker's business",
    ),
    Rule(
        ("detectors",),
        only=("detectors", "monitor.methods"),
        never=IO_LIBRARIES,
        why="detectors are pure statistics: arrays in, scores out, no I/O",
    ),
    Rule(("alerts",), only=(*CORE, "alerts", "monitor.metrics", "detectors"), why="alerts read scores from the store"),
    Rule(
        ("dashboard",),
        never=("collectors", "monitor.cli", "monitor.api"),
        why="the dashboard reads the store and writes only through monitor.store.actions",
    ),
    Rule(PACKAGES, never=("dashboard",), exempt=("dashboard", "monitor.cli"), why="only the CLI starts the dashboard"),
)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _is_project_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def imports(module: str, source: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``source``, wherever it is in the file.

    ``from a import b`` names ``a.b`` when that is a module of the project (``from monitor import
    methods``), and both ``a`` and ``a.b`` otherwise, so ``from urllib import request`` is seen.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [node.module])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if base.split(".")[0] in PACKAGES:
                    yield node.lineno, full if _is_project_module(full) else base
                else:
                    yield node.lineno, base
                    yield node.lineno, full


def _broken_rule(module: str, imported: str) -> Rule | None:
    """The first rule that ``module`` breaks by importing ``imported``, if any."""
    in_project = imported.split(".")[0] in PACKAGES
    for rule in RULES:
        if not _within(module, rule.who) or _within(module, rule.exempt):
            continue
        if _within(imported, rule.never) or (in_project and rule.only is not None and not _within(imported, rule.only)):
            return rule
    return None


def violations(module: str, source: str, is_package: bool = False) -> Iterator[tuple[int, str, Rule]]:
    for line, imported in imports(module, source, is_package):
        rule = _broken_rule(module, imported)
        if rule is not None:
            yield line, imported, rule


def test_every_import_respects_the_layers() -> None:
    problems = []
    files = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))
    assert len(files) > 50, files  # the packages were found
    for path in files:
        relative = path.relative_to(ROOT)
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        for line, imported, rule in violations(module, path.read_text(), is_package=path.name == "__init__.py"):
            problems.append(f"{relative}:{line}: imports {imported} ({rule.why})")
    assert not problems, "imports across the layers:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "forbidden"),
    [
        ("monitor.store.tables", "def f():\n    from detectors.drift import drift_scores\n", "detectors.drift"),
        ("monitor.config", "import alerts.rules\n", "alerts.rules"),
        ("detectors.drift", "from urllib import request\n", "urllib.request"),
        ("detectors.drift", "from monitor import config\n", "monitor.config"),
        ("monitor.sdk", "from monitor.errors import DriftscopeError\n", "monitor.errors"),
        ("monitor.instrument", "from monitor.store import engine\n", "monitor.store.engine"),
        ("monitor.instrument", "def f():\n    import starlette.requests\n", "starlette.requests"),
        ("collectors.prometheus", "from dashboard import app\n", "dashboard.app"),
        ("monitor.runs.scheduler", "from ..cli import main\n", "monitor.cli.main"),
    ],
)
def test_a_forbidden_import_is_reported(module: str, source: str, forbidden: str) -> None:
    assert [imported for _, imported, _ in violations(module, source)] == [forbidden]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("monitor.runs.evaluation", "from detectors.drift import drift_scores\n"),
        ("detectors.drift", "from monitor import methods\nimport numpy\n"),
        ("monitor.cli.dashboard", "from dashboard import create_app\n"),
        ("dashboard.pages.alerts", "from monitor.store import actions\n"),
        ("monitor.instrument", "from monitor.sdk import Client\nimport orjson\n"),
    ],
)
def test_an_allowed_import_is_not_reported(module: str, source: str) -> None:
    assert list(violations(module, source)) == []
