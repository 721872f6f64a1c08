"""docs/configuration.md is generated from monitor/config.py; it must be regenerated when the models change."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from monitor import config as cfg

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_config_docs.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generator().render(), (
        "docs/configuration.md is stale: run `python scripts/gen_config_docs.py` and commit the result"
    )


def test_check_mode_fails_on_a_stale_file(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, str(SCRIPT), "--check", "--output", str(path)]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    assert check(ROOT / "docs" / "configuration.md").returncode == 0
    stale = tmp_path / "configuration.md"
    stale.write_text(generator().render().replace("| `metrics_host` |", "| `metrics_hots` |"), encoding="utf-8")
    result = check(stale)
    assert result.returncode == 1 and "is stale" in result.stderr


def test_every_key_of_every_model_is_documented() -> None:
    text = generator().render()
    models = [
        m
        for m in vars(cfg).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == cfg.__name__
    ]
    assert cfg.Config in models and cfg.EmailChannel in models
    for model in models:
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, f"{model.__name__}.{name} is missing from the reference"


def test_types_defaults_and_descriptions_come_from_the_models() -> None:
    text = generator().render()
    assert "| `window` | duration (> 0) | `1h` |" in text
    assert "| `for` | windows (`2` or `2 windows`) (≥ 1) | `1` | Windows in a row" in text
    assert "| `password` | secret string or null | null |" in text
    assert "| `task` | `binary` \\| `multiclass` \\| `regression` | **required** |" in text
    assert "| `lateness` | duration | `5m` | How long after a window closes it is computed. |" in text
    assert (
        "[`kind: email`](#alertschannelsname-kind-email)" in text and "## alerts.channels.<name> (kind: email)" in text
    )


def test_every_key_of_every_model_has_a_description() -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in vars(cfg).values()
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == cfg.__name__
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undocumented == [], f"give these fields a description= in monitor/config.py: {undocumented}"
