"""The hierarchy drawn in monitor/errors.py is the real one: every DriftscopeError subclass, its parent, its module."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import monitor.errors
from monitor.errors import DriftscopeError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "collectors", "detectors", "alerts", "dashboard")
# One drawn line: "│   " or "    " per level above it, a branch, the class, its module.
LINE = re.compile(r"^ *(?P<levels>(?:│   |    )*)[├└]── (?P<name>\w+) +(?P<module>[\w.]+):")


def _import_everything() -> None:
    # Walked by file, not pkgutil: several sub-packages are namespace packages without __init__.py.
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def _drawn() -> dict[str, tuple[str, str]]:
    """Class name → (parent's name, module) as drawn in the docstring."""
    drawn: dict[str, tuple[str, str]] = {}
    stack = ["DriftscopeError"]
    for line in (monitor.errors.__doc__ or "").splitlines():
        match = LINE.match(line)
        if match:
            depth = len(match["levels"]) // 4
            del stack[depth + 1 :]
            drawn[match["name"]] = (stack[depth], match["module"])
            stack.append(match["name"])
    return drawn


def test_the_drawing_matches_every_subclass_its_parent_and_module() -> None:
    _import_everything()
    actual = {
        cls.__name__: (cls.__base__.__name__, cls.__module__)
        for cls in _subclasses(DriftscopeError)
        if cls.__module__.split(".")[0] in PACKAGES  # not test doubles
    }
    assert len(actual) >= 10
    assert _drawn() == actual
