"""``driftscope check`` on files made from NannyML's synthetic sample: exit codes 0 / 1 / 2, text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from monitor.cli import check as check_command
from monitor.runs.files import read_table
from monitor.runs.gate import infer_model

DATA = Path(__file__).resolve().parents[1] / "data" / "nannyml"  # NannyML sample, see its README


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("check")
    # "period" only says which file a row came from; it is not a feature.
    reference = pd.read_csv(DATA / "synthetic_sample_reference.csv.gz").drop(columns=["period"])
    analysis = pd.read_csv(DATA / "synthetic_sample_analysis.csv.gz").drop(columns=["period"])
    analysis = analysis.merge(pd.read_csv(DATA / "synthetic_sample_analysis_gt.csv.gz"), on="id", validate="1:1")
    paths = {
        "reference": out / "reference.parquet",
        "reference_sample": out / "reference_sample.csv.gz",
        "drifted": out / "drifted.parquet",
        "corrupt": out / "corrupt.parquet",
        "no_tenure": out / "no_tenure.csv",
        "tiny": out / "tiny.csv",
    }
    reference.iloc[:10_000].to_parquet(paths["reference"])
    reference.iloc[40_000:45_000].to_csv(paths["reference_sample"], index=False)
    analysis.iloc[35_000:40_000].to_parquet(paths["drifted"])  # NannyML's drifted chunks
    paths["corrupt"].write_bytes(b"PAR1 this is not parquet")
    reference.iloc[40_000:41_000].drop(columns=["tenure"]).to_csv(paths["no_tenure"], index=False)
    reference.iloc[:5].to_csv(paths["tiny"], index=False)
    return paths


def run(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    check_command.register(app)
    app.command("noop", hidden=True)(lambda: None)  # two commands: typer keeps "check" as a subcommand
    result = CliRunner().invoke(app, ["check", *args])
    return result.exit_code, result.output


def test_drifted_analysis_fails_the_gate(files: dict[str, Path]) -> None:
    code, output = run(
        "--reference", str(files["reference"]), "--current", str(files["drifted"]), "--label", "work_home_actual"
    )
    assert code == 1, output
    assert "dataset drift" in output and "FAIL" in output


def test_reference_sample_passes(files: dict[str, Path]) -> None:
    code, output = run(
        "--reference",
        str(files["reference"]),
        "--current",
        str(files["reference_sample"]),
        "--label",
        "work_home_actual",
    )
    assert code == 0, output
    assert "all 4 test(s) passed" in output


def test_bad_input_exits_2_naming_the_problem(files: dict[str, Path]) -> None:
    code, output = run("--reference", str(files["reference"]), "--current", str(files["corrupt"]))
    assert code == 2 and "corrupt.parquet: cannot read" in output
    code, output = run("--reference", str(files["reference"]), "--current", str(files["tiny"]))
    assert code == 2 and "current file has 5 rows" in output
    code, output = run("--reference", str(files["reference"]), "--current", str(files["reference"].with_name("x.csv")))
    assert code == 2 and "no such file" in output


def test_json_has_every_score(files: dict[str, Path]) -> None:
    code, output = run(
        "--reference",
        str(files["reference"]),
        "--current",
        str(files["drifted"]),
        "--format",
        "json",
        "--ignore",
        "work_home_actual",
    )
    assert code == 1
    result = json.loads(output)
    assert result["passed"] is False
    assert list(result) == ["passed", "reference", "current", "model", "tests", "scores"]  # the shape CI scripts read
    assert result["current"] == {"file": str(files["drifted"]), "rows": result["current"]["rows"]}
    assert list(result["tests"][0]) == ["name", "passed", *result["scores"][0]]
    assert result["model"] == {
        "task": "binary",
        "inferred": True,
        "features": {
            "distance_from_office": "numeric",
            "salary_range": "categorical",
            "gas_price_per_litre": "numeric",
            "public_transportation_cost": "numeric",
            "wfh_prev_workday": "categorical",
            "workday": "categorical",
            "tenure": "numeric",
        },
    }
    drift = {s["feature"]: s for s in result["scores"] if s["kind"] == "drift" and s["feature"]}
    assert (
        drift["distance_from_office"]["breached"] is True and drift["distance_from_office"]["method"] == "wasserstein"
    )
    assert drift["workday"]["breached"] is False
    assert [t["name"] for t in result["tests"]] == ["dataset drift"]  # no label column: no performance test
    assert {s["kind"] for s in result["scores"]} == {"drift", "quality"}


def test_config_gates_a_columns_own_policy(files: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "driftscope.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "wfh": {
                        "task": "binary",
                        "fields": {"prediction": "y_pred", "score": "y_pred_proba", "label": "work_home_actual"},
                        "features": {"tenure": "numeric", "workday": "categorical", "distance_from_office": "numeric"},
                    }
                },
                "monitors": {
                    "wfh-daily": {
                        "model": "wfh",
                        "reference": {"dataset": "reference.parquet"},
                        "drift": {
                            "drift_share": 0.9,
                            "columns": {"tenure": {"method": "ks", "threshold": 0.01}},
                            # A worker's setting: one file has no windows before it, so check leaves it out.
                            "slow_drift": {"method": "cusum"},
                        },
                    }
                },
            }
        )
    )
    code, output = run(
        "--reference",
        str(files["reference"]),
        "--current",
        str(files["reference_sample"]),
        "--config",
        str(config),
        "--format",
        "json",
    )
    result = json.loads(output)
    assert code == 0, output
    assert [t["name"] for t in result["tests"]] == ["drift of tenure", "dataset drift"]
    assert result["tests"][0]["method"] == "ks" and result["tests"][0]["threshold"] == 0.01
    assert not [s for s in result["scores"] if s["method"] == "cusum"]
    code, output = run(
        "--reference", str(files["reference"]), "--current", str(files["no_tenure"]), "--config", str(config)
    )
    assert code == 2 and "['tenure'] missing" in output


def test_infer_model_leaves_out_ids_timestamps_and_ignored_columns() -> None:
    frame = pd.DataFrame(
        {
            "id": range(40),
            "customer_id": [f"c{i}" for i in range(40)],
            "timestamp": pd.date_range("2026-01-01", periods=40, freq="h"),
            "plan": ["a", "b"] * 20,
            "seats": list(range(40)),
            "tier": [1, 2, 3, 4] * 10,
            "ratio": [i / 7 for i in range(40)],
            "debug": ["x"] * 40,
            "y_pred": [0, 1] * 20,
            "y_pred_proba": [0.2, 0.8] * 20,
            "target": [0, 1] * 20,
        }
    )
    model = infer_model(frame, frame, ignore=["debug"])
    assert model.features == {"plan": "categorical", "seats": "numeric", "tier": "categorical", "ratio": "numeric"}
    assert (model.task, model.fields.prediction, model.fields.score, model.fields.label) == (
        "binary",
        "y_pred",
        "y_pred_proba",
        "target",
    )
    assert infer_model(frame.assign(target=[i * 0.37 for i in range(40)]), frame).task == "regression"
    # per-class probabilities of a multiclass model are scores, not features
    multiclass = frame.drop(columns=["y_pred_proba"]).assign(
        target=["gold", "silver"] * 20, y_pred_proba_gold=0.6, y_pred_proba_silver=0.4
    )
    model = infer_model(multiclass, multiclass, ignore=["debug"])
    assert (model.task, model.classes, model.fields.score) == ("multiclass", ["gold", "silver"], "y_pred_proba")
    assert "y_pred_proba_gold" not in model.features


def test_ci_example_is_a_valid_github_workflow_that_gates_deploy() -> None:
    import subprocess
    import sys

    workflow = Path(__file__).resolve().parents[2] / "examples" / "ci" / "github-actions.yml"
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(workflow)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    assert jobs["deploy"]["needs"] == "drift-check"
    assert any("driftscope check" in step.get("run", "") for step in jobs["drift-check"]["steps"])


# Runs a whole check of two files (argv: reference, current) and prints the top-level packages it imported.
CHECK_IMPORTS_PROBE = """
import json, sys
from pathlib import Path
from monitor.runs.gate import run_check
result = run_check(Path(sys.argv[1]), Path(sys.argv[2]), label="work_home_actual")
assert result.scores
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_check_of_parquet_files_imports_neither_the_store_nor_scikit_learn(files: dict[str, Path]) -> None:
    """check reads two files and writes nothing: SQLAlchemy (the store) and scikit-learn (CBPE, multivariate
    drift, neither run by default) were ≈ 0.4 s of its start (issue 16). SciPy (≈ 0.6 s) neither: the
    tests ``auto`` picks for references above 1,000 rows (Wasserstein, Jensen–Shannon) are NumPy."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS_PROBE, str(files["reference"]), str(files["drifted"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = set(json.loads(result.stdout.splitlines()[-1]))
    assert {"numpy", "pandas", "pyarrow"} <= imported  # the probe ran a real check
    assert not imported & {"sqlalchemy", "sklearn", "alembic", "scipy"}


def test_read_table_reads_every_row_group_once_reporting_progress(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(10, dtype=float), "c": list("abcdefghij"), "n": np.arange(10)})
    path = tmp_path / "groups.parquet"
    frame.to_parquet(path, row_group_size=4, index=False)
    seen: list[tuple[int, int | None]] = []
    read = read_table(path, lambda done, total: seen.append((done, total)))
    pd.testing.assert_frame_equal(read, frame)
    assert seen == [(4, 10), (8, 10), (10, 10)]
    frame.iloc[:0].to_parquet(empty := tmp_path / "empty.parquet", index=False)
    assert list(read_table(empty).columns) == ["x", "c", "n"] and len(read_table(empty)) == 0
