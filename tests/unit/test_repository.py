"""The repository holds everything it needs: no tracked file names a path outside it.

A fresh clone has nothing beside it, so a path that climbs out of the repository (a sibling
``shared/`` folder) or an absolute path of one machine works there and nowhere else. Three forms
are caught:

- an absolute path into one machine's own folders: the top-level work folder, root's home,
  ``/home/<user>``, ``/Users/<user>``; system paths (``/usr/bin/chromium``, ``/etc/...``) and
  ``/tmp`` are generic;
- a ``../`` path that leaves the repository root. Markdown and HTML links resolve against the
  file's folder (that is how they are rendered); everywhere else a relative path resolves against
  the working directory, which for every documented command is the repository root;
- a ``Path(__file__)`` expression in Python that climbs above the root (``parents[2] / ".."``),
  and a tracked symlink that points outside.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Paths inside a container image, not of the machine that builds it.
CONTAINER_FILES = re.compile(r"(^|/)Dockerfile[^/]*$")

# Not preceded by a host name, a URL scheme, ``~`` or a longer path: "https://host/work" is a URL path.
MACHINE_PATH = re.compile(r"(?<![\w.:/~$-])/(?:work|root|home/[\w.-]+|Users/[\w.-]+)(?![\w-])")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)|(?:src|href)=[\"']([^\"']+)")
# A ``../`` followed by a name: the bare syntax named in prose goes nowhere.
CLIMB = re.compile(r"(?<![\w.])(?:\.\./)+[^\s\"'`)\]>]+")


def _leaves_root(folder: PurePosixPath, relative: str) -> bool:
    """Whether ``relative`` resolved against ``folder`` (both relative to the root) climbs above it."""
    depth = len(folder.parts)
    for part in relative.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def text_findings(path: PurePosixPath, text: str) -> Iterator[tuple[int, str]]:
    """``(line, what)`` for every machine path and every ``../`` path that leaves the repository."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not CONTAINER_FILES.search(str(path)):
            for match in MACHINE_PATH.finditer(line):
                yield number, f"absolute path of a machine: {match.group()}"
        links = [m.span(m.lastindex or 0) for m in LINK_TARGET.finditer(line)]
        for match in CLIMB.finditer(line):
            in_link = any(start <= match.start() < end for start, end in links)
            folder = path.parent if in_link else PurePosixPath()
            if _leaves_root(folder, match.group()):
                yield number, f"path outside the repository: {match.group()}"


def _file_path(node: ast.expr, path: PurePosixPath) -> str | None:
    """The root-relative path a ``Path(__file__)…`` expression stands for, or None for anything else."""
    match node:
        case ast.Call(func=ast.Name(id="Path") | ast.Attribute(attr="Path"), args=[ast.Name(id="__file__")]):
            return str(path)
        case ast.Call(func=ast.Attribute(value=inner, attr="resolve" | "absolute"), args=[]):
            return _file_path(inner, path)
        case ast.Attribute(value=inner, attr="parent"):
            base = _file_path(inner, path)
            return None if base is None else f"{base}/.."
        case ast.Subscript(value=ast.Attribute(value=inner, attr="parents"), slice=ast.Constant(value=int(n))):
            base = _file_path(inner, path)
            return None if base is None else base + "/.." * (n + 1)
        case ast.BinOp(left=inner, op=ast.Div(), right=ast.Constant(value=str(part))):
            base = _file_path(inner, path)
            return None if base is None else f"{base}/{part}"
    return None


def python_findings(path: PurePosixPath, source: str) -> Iterator[tuple[int, str]]:
    """``(line, what)`` for every ``Path(__file__)`` expression that climbs above the repository root."""
    reported: set[int] = set()
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, ast.expr) or node.lineno in reported:
            continue
        resolved = _file_path(node, path)
        if resolved is not None and _leaves_root(PurePosixPath(), resolved):
            reported.add(node.lineno)
            yield node.lineno, f"path outside the repository: {ast.unparse(node)}"


def tracked_files() -> list[PurePosixPath]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True)
    return [PurePosixPath(name) for name in listing.stdout.split("\0") if name]


def findings(path: PurePosixPath) -> Iterator[tuple[int, str]]:
    file = ROOT / path
    if file.is_symlink():
        target = os.readlink(file)
        if os.path.isabs(target) or _leaves_root(path.parent, target):
            yield 0, f"symlink outside the repository: {target}"
        return
    if not file.is_file():  # deleted in the working tree, not yet committed
        return
    data = file.read_bytes()
    if b"\0" in data:
        return
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return
    yield from text_findings(path, text)
    if path.suffix == ".py":
        yield from python_findings(path, text)


def test_no_tracked_file_names_a_path_outside_the_repository() -> None:
    problems = [f"{path}:{line}: {what}" for path in tracked_files() for line, what in findings(path)]
    assert not problems, "a fresh clone has nothing beside it:\n" + "\n".join(problems)


# Built from pieces so that this file does not name such paths itself.
WORK, HOME, UP = "/" + "work", "/" + "home", ".." + "/"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("tests/unit/test_drift.py", f'DATA = Path("{WORK}/shared/data/nannyml")'),
        ("README.md", f"cd {WORK}/main && ./scripts/test.sh"),
        ("scripts/x.sh", f"cp ~/.cache/x {HOME}/alice/driftscope/"),
        ("examples/ci/README.md", f'd = "{UP}shared/data/nannyml/"'),
        ("docs/x.md", f"see [the data]({UP}{UP}shared/README.md)"),
    ],
)
def test_text_outside_the_repository_is_found(path: str, text: str) -> None:
    assert list(text_findings(PurePosixPath(path), text))


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("tests/conftest.py", 'CHROMIUM = "/usr/bin/chromium"; CERTS = "/etc/ssl/certs"; TMP = "/tmp/x"'),
        ("docs/x.md", f"see https://example.org{WORK} and ~{WORK}"),
        ("examples/ci/README.md", "see [docs/scheduler.md](../../docs/scheduler.md#the-ci-gate)"),
        ("monitor/api/app.py", '"""``POST /v1/models/{model}/predictions`` and ``.../labels``."""'),
        ("Dockerfile", f"WORKDIR {HOME}/driftscope"),
        ("scripts/test.sh", 'cd "$(dirname "$0")/.."'),
    ],
)
def test_paths_inside_the_repository_or_generic_are_accepted(path: str, text: str) -> None:
    assert not list(text_findings(PurePosixPath(path), text))


@pytest.mark.parametrize(
    ("source", "outside"),
    [
        ('DATA = Path(__file__).resolve().parents[2] / ".." / "sibling"', True),
        ("DATA = Path(__file__).parent.parent.parent.parent", True),
        ('DATA = Path(__file__).resolve().parents[1] / "data" / "nannyml"', False),
        ('ROOT = Path(__file__).resolve().parents[2] / "tests" / ".." / "docs"', False),
    ],
)
def test_python_paths_climbing_above_the_root_are_found(source: str, outside: bool) -> None:
    assert bool(list(python_findings(PurePosixPath("tests/unit/test_x.py"), source))) is outside
