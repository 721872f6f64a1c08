"""Offline checks of the deployment files: no Docker engine or cluster runs on the development machines.

What can be checked without one is checked against the code itself: the compose file against the
Compose specification's JSON schema, every container command against the real ``driftscope`` CLI,
every environment variable against the settings that read it, every port and probe against the
config and the apps, the Kubernetes manifests against the Kubernetes schemas. Each schema check has a
negative control, so a validator that accepts everything would fail the test.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml
from typer.testing import CliRunner

from monitor.config import CONFIG_ENV, STORE_ENV, Config, ConfigError, DashboardUser, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "kubernetes"
SCHEMAS = ROOT / "tests" / "data" / "schemas"
VENDORED_SHA256 = {
    "compose-spec.json": "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64",
    "github-workflows.json": "d10c9f4656e1bd5bc6727e9b35080e017dc167154726fca93da33c7a6bd1c4f3",
}
KUBERNETES_VERSION = "1.30"
DRIFTSCOPE_IMAGE = "driftscope"  # the image name in the manifests; kustomization.yaml maps it to a registry

# ``${VAR}``, ``${VAR:-default}`` (compose and driftscope.yaml share this syntax); ``$$`` escapes in compose.
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# ------------------------------------------------------------------------------------------- helpers


def driftscope_app() -> typer.Typer:
    """The ``driftscope`` app with every area's subcommands, as the console script builds it."""
    from monitor.cli import main as cli

    cli._register_commands()
    return cli.app


@functools.cache
def full_cli() -> Any:
    """The click command tree of the app (built once: building it is not free)."""
    return typer.main.get_command(driftscope_app())


def assert_is_driftscope_command(args: list[str], where: str) -> None:
    """``driftscope ARGS --help`` must exit 0: the command exists and its options are spelled right."""
    result = CliRunner().invoke(driftscope_app(), [*args, "--help"])
    assert result.exit_code == 0, f"{where}: `driftscope {' '.join(args)}` is not a valid command:\n{result.output}"
    command = subcommand_of(args)
    runnable = not hasattr(command, "commands") or command.invoke_without_command
    assert runnable, f"{where}: `driftscope {' '.join(args)}` is a group that needs a subcommand"


# Typer builds its commands on its own copy of click (typer._click), so groups are told apart by their
# ``commands`` attribute rather than by isinstance against the click package.


def option_envvars(command: Any) -> set[str]:
    """Every environment variable any option of the CLI reads (``envvar=``), recursively."""
    names: set[str] = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        names.update([envvar] if isinstance(envvar, str) else envvar or [])
    for sub in getattr(command, "commands", {}).values():
        names |= option_envvars(sub)
    return names


def process_envvars(args: list[str]) -> set[str]:
    """The variables ``driftscope ARGS`` reads: the global options', its command's, the config's file and store."""
    root = {p.envvar for p in full_cli().params if isinstance(getattr(p, "envvar", None), str)}
    return root | option_envvars(subcommand_of(args)) | {CONFIG_ENV, STORE_ENV}


def subcommand_of(args: list[str]) -> Any:
    """The (sub)command that ``driftscope ARGS`` runs."""
    command = full_cli()
    for word in args:
        if word not in getattr(command, "commands", {}):
            break
        command = command.commands[word]
    return command


def command_option(command: list[str], option: str, default: str | None = None) -> str | None:
    """The value of ``--option VALUE`` or ``--option=VALUE`` in a container command."""
    for i, word in enumerate(command):
        if word == option:
            return command[i + 1]
        if word.startswith(f"{option}="):
            return word.split("=", 1)[1]
    return default


def config_references(text: str) -> dict[str, str | None]:
    """``${VAR}`` references in the values of a driftscope.yaml (not its comments): name → default (None: required)."""

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    return {m[1]: m[2] for value in strings(yaml.safe_load(text)) for m in ENV_REF.finditer(value)}


def interpolate_compose(value: str, env: Mapping[str, str]) -> str:
    """Compose's own interpolation of ``${VAR:-default}`` with ``env`` (the shell), ``$$`` → ``$``."""
    escaped = value.replace("$$", "\0")

    def substitute(match: re.Match[str]) -> str:
        if match[1] in env:
            return env[match[1]]
        assert match[2] is not None, f"compose variable {match[1]} has no default: the stack needs it set"
        return match[2]

    return ENV_REF.sub(substitute, escaped).replace("\0", "$")


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def driftscope_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the Driftscope image (built from this repository's Dockerfile)."""
    return {name: svc for name, svc in compose["services"].items() if svc.get("build") == "."}


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate_compose(str(v), {}) for k, v in env.items()}


def mounted_config(service: dict[str, Any], env: Mapping[str, str]) -> Path | None:
    """The host file mounted where DRIFTSCOPE_CONFIG points, if any."""
    target = env.get(CONFIG_ENV)
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return (ROOT / source).resolve()
    return None


def compose_config(name: str, service: dict[str, Any]) -> tuple[Config, str]:
    env = service_env(service)
    path = mounted_config(service, env)
    assert path is not None, f"services.{name}: DRIFTSCOPE_CONFIG={env.get(CONFIG_ENV)} is not a mounted file"
    return load_config(path, env=env), path.read_text(encoding="utf-8")


def check_jsonschema(schema: Path, instance: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema), str(instance)],
        capture_output=True,
        text=True,
        check=False,
    )


def require_tool(name: str, package: str) -> str:
    """A local binary (no server); missing: skipped locally, a failure when ``CI`` is set."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: apt-get install {package}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(message)
    return path


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                yield path, document


def k8s_by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_documents() if d["kind"] == kind}


def pod_specs() -> dict[str, dict[str, Any]]:
    """Pod templates of every Deployment and Job, by workload name."""
    workloads = {**k8s_by_kind("Deployment"), **k8s_by_kind("Job")}
    return {name: w["spec"]["template"]["spec"] for name, w in workloads.items()}


def k8s_config_and_env(container: dict[str, Any]) -> tuple[Config, str, dict[str, str]]:
    """The ConfigMap's driftscope.yaml loaded with the container's env (explicit + the Secrets it imports)."""
    secrets = k8s_by_kind("Secret")
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        env.update(secrets[source["secretRef"]["name"]]["stringData"])
    configmap = k8s_by_kind("ConfigMap")["driftscope-config"]
    text = configmap["data"]["driftscope.yaml"]
    return parse_config(yaml.safe_load(text), "configmap driftscope-config", env), text, env


# ------------------------------------------------------------------------------------------ compose


def test_vendored_schemas_are_the_recorded_versions() -> None:
    for name, digest in VENDORED_SHA256.items():
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, f"{name} changed; see README"


def test_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    result = check_jsonschema(SCHEMAS / "compose-spec.json", COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr

    # Negative control: a misspelt depends_on condition must be rejected by the same check.
    broken = load_compose()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = check_jsonschema(SCHEMAS / "compose-spec.json", tmp_path / "compose.yml")
    assert result.returncode == 1 and "service_finished" in result.stdout


def test_compose_has_the_whole_stack() -> None:
    services = load_compose()["services"]
    assert {"postgres", "elasticsearch", "prometheus", "alertmanager", "mailpit", "migrate"} <= set(services)
    commands = {name: svc["command"][0] for name, svc in driftscope_services(load_compose()).items()}
    assert sorted(commands.values()) == sorted(["db", "collect", "api", "worker", "dashboard", "demo-service"])
    assert "elasticsearch/elasticsearch:8." in services["elasticsearch"]["image"]
    es_env = services["elasticsearch"]["environment"]
    assert es_env["discovery.type"] == "single-node"
    assert {k for k in es_env if k.startswith("xpack.security")} >= {
        "xpack.security.enabled",
        "xpack.security.http.ssl.enabled",
        "xpack.security.transport.ssl.enabled",
    }
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


def test_every_compose_command_is_a_driftscope_command() -> None:
    services = driftscope_services(load_compose())
    assert services, "no service builds the Driftscope image"
    for name, service in services.items():
        assert_is_driftscope_command(service["command"], f"services.{name}.command")


def test_a_misspelt_command_fails_the_command_check() -> None:
    with pytest.raises(AssertionError, match="is not a valid command"):
        assert_is_driftscope_command(["wroker"], "negative control")
    with pytest.raises(AssertionError, match="is not a valid command"):
        assert_is_driftscope_command(["demo-service", "--histroy", "1h"], "negative control")
    with pytest.raises(AssertionError, match="needs a subcommand"):
        assert_is_driftscope_command(["db"], "negative control")


def test_depends_on_waits_for_healthchecks_that_exist() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"services.{name}.depends_on: unknown service {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck to wait for"
            if rule["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} must be one-shot"
    for name in ("api", "dashboard", "backfill"):  # the store's users start on a migrated store only
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The worker computes windows only after the backfill stored the history (itself after the migration).
    assert services["worker"]["depends_on"]["backfill"]["condition"] == "service_completed_successfully"


def check_compose_environment(name: str, service: dict[str, Any]) -> None:
    env = service_env(service)
    config, text = compose_config(name, service)
    references = config_references(text)
    read = process_envvars(service["command"]) | set(references)
    for variable in env:
        assert variable in read, (
            f"services.{name}.environment.{variable} is read by nothing (not an envvar of a driftscope option, "
            "not referenced by the mounted driftscope.yaml)"
        )
    for variable, default in references.items():
        assert default is not None or variable in env, f"services.{name}: driftscope.yaml needs ${{{variable}}}"
    assert config.store == env[STORE_ENV]


def test_compose_environment_matches_the_settings() -> None:
    services = driftscope_services(load_compose())
    for name, service in services.items():
        check_compose_environment(name, service)
    config, _ = compose_config("worker", services["worker"])
    assert config.store.startswith("postgresql+psycopg://") and "@postgres:5432/" in config.store

    misspelt = copy.deepcopy(services["worker"])
    misspelt["environment"]["DRIFTSCOPE_STOER"] = misspelt["environment"].pop(STORE_ENV)
    with pytest.raises(AssertionError, match="DRIFTSCOPE_STOER is read by nothing"):
        check_compose_environment("worker", misspelt)
    missing = copy.deepcopy(services["worker"])
    del missing["environment"]["ELASTICSEARCH_PASSWORD"]
    with pytest.raises(ConfigError, match="ELASTICSEARCH_PASSWORD is not set"):
        check_compose_environment("worker", missing)


def test_compose_ports_and_healthchecks_match_the_config(tmp_path: Path) -> None:
    services = load_compose()["services"]
    config, _ = compose_config("api", services["api"])
    expected = {
        "api": (config.api.port, "/readyz"),
        "dashboard": (config.dashboard.port, "/healthz"),
        "worker": (config.worker.metrics_port, "/metrics"),
    }
    for name, (port, path) in expected.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}{path}'" in probe, f"services.{name}.healthcheck does not probe {port}{path}"
    # a page would need a login once one is configured, and costs a render every probe
    assert expected["dashboard"][1] in dashboard_unauthenticated_paths(config, tmp_path)
    assert config.api.host == config.dashboard.host == config.worker.metrics_host == "0.0.0.0"
    assert f"127.0.0.1:{config.api.port}:{config.api.port}" in services["api"]["ports"]
    assert f"127.0.0.1:{config.dashboard.port}:{config.dashboard.port}" in services["dashboard"]["ports"]
    for service in services.values():  # nothing is published beyond the host's loopback
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_compose_mounts_exist() -> None:
    for name, service in load_compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"services.{name}.volumes: {source} does not exist"


def test_prometheus_scrapes_existing_services_on_their_ports() -> None:
    compose = load_compose()
    services = compose["services"]
    config, _ = compose_config("worker", services["worker"])
    model_service = services["model-service"]["command"]
    ports = {
        "api": config.api.port,
        "worker": config.worker.metrics_port,
        "model-service": int(command_option(model_service, "--metrics-port") or 0),
        "localhost": 9090,
        "alertmanager": 9093,
    }
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    targets += [t for am in prometheus["alerting"]["alertmanagers"] for c in am["static_configs"] for t in c["targets"]]
    assert {"api:8000", "worker:9108", "model-service:9110"} <= set(targets)
    for target in targets:
        host, port = target.split(":")
        assert host in services or host == "localhost", f"prometheus target {target}: no such service"
        assert ports[host] == int(port), f"prometheus target {target}: the service listens on {ports[host]}"
    rules = [p for p in prometheus["rule_files"]]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert all(r in mounted for r in rules), f"rule files {rules} are not all mounted"


def test_prometheus_and_alertmanager_accept_their_configs(promtool: str, tmp_path: Path) -> None:
    # The rule file is mounted at an absolute path in the container; check it at its repo location.
    prometheus = (ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8")
    (tmp_path / "prometheus.yml").write_text(
        prometheus.replace(
            "/etc/prometheus/driftscope.rules.yml", str(ROOT / "examples/prometheus/driftscope.rules.yml")
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    amtool = require_tool("amtool", "prometheus-alertmanager")
    result = subprocess.run(
        [amtool, "check-config", str(ROOT / "deploy" / "alertmanager.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_driftscope_yaml_routes_alerts_to_the_stack() -> None:
    services = load_compose()["services"]
    config, _ = compose_config("worker", services["worker"])
    channels = config.alerts.channels
    assert channels["oncall-email"].kind == "email" and channels["oncall-email"].smtp == "smtp://mailpit:1025"
    assert any(rule.notify and "oncall-email" in rule.notify for rule in config.alerts.rules)
    source = config.sources["es"]
    assert source.kind == "elasticsearch" and source.url == "http://elasticsearch:9200"
    assert source.password is not None
    elastic_password = interpolate_compose(services["elasticsearch"]["environment"]["ELASTIC_PASSWORD"], {})
    assert source.password.get_secret_value() == elastic_password
    service = services["model-service"]["command"]
    written = command_option(service, "--index", "predictions-loan-approval")
    assert written and re.fullmatch(source.index.replace("*", ".*"), written), f"{source.index} misses {written}"
    labels = command_option(service, "--label-index")
    model = config.models["loan-approval"]
    assert labels == model.label_index and not re.fullmatch(source.index.replace("*", ".*"), labels)


# ---------------------------------------------------------------------------------------- Dockerfile


def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line.strip())
    return stages


def test_dockerfile_builds_one_slim_non_root_image_with_the_driftscope_entrypoint() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: build, then a clean runtime"
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", text)
    runtime = stages[-1]
    assert runtime[0].startswith("FROM ${PYTHON_IMAGE}")
    user = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root"), "the final stage runs as a non-root user"
    assert 'ENTRYPOINT ["driftscope"]' in runtime
    final_text = " ".join(runtime)
    for tool in ("gcc", "build-essential", "apt-get install", "pip install"):
        assert tool not in final_text, f"the runtime stage must not install {tool}"
    assert any(line.startswith("COPY --from=build") for line in runtime)


def test_dockerfile_copies_every_packaged_folder() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = set(wheel["packages"]) | set(wheel.get("force-include", {})) | {"pyproject.toml", "README.md"}
    build = " ".join(dockerfile_stages()[0])
    copied = set(re.findall(r"COPY (\S+) ", build))
    assert needed <= copied, f"the Dockerfile does not copy {sorted(needed - copied)}"
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("**")] == "**"
    for path in needed:
        assert f"!{path}/" in ignore or f"!{path}" in ignore, f".dockerignore excludes {path}"


# ---------------------------------------------------------------------------------------- Kubernetes


def test_kubernetes_manifests_match_the_kubernetes_schemas() -> None:
    kinds = []
    for _path, document in k8s_documents():
        if document["kind"] == "Kustomization":
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        kinds.append(document["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job", "ConfigMap", "Secret", "NetworkPolicy"} <= set(
        kinds
    )

    # Negative control: a misspelt field is rejected by the same strict validation.
    deployment = copy.deepcopy(k8s_by_kind("Deployment")["driftscope-api"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert [i["name"] for i in kustomization["images"]] == [DRIFTSCOPE_IMAGE]


def test_kubernetes_commands_are_driftscope_commands() -> None:
    expected = {"driftscope-api": "api", "driftscope-worker": "worker", "driftscope-dashboard": "dashboard"}
    expected["driftscope-migrate"] = "db"
    specs = pod_specs()
    assert set(specs) == set(expected)
    for name, spec in specs.items():
        (container,) = spec["containers"]
        assert container["image"] == DRIFTSCOPE_IMAGE
        assert container["args"][0] == expected[name]
        assert_is_driftscope_command(container["args"], f"{name}.args")
        assert container["resources"]["requests"].keys() >= {"cpu", "memory"}, f"{name}: resource requests"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_config_loads_with_the_secret_and_names_real_settings() -> None:
    for name, spec in pod_specs().items():
        (container,) = spec["containers"]
        config, text, env = k8s_config_and_env(container)
        references = config_references(text)
        for variable in env:
            read = process_envvars(container["args"]) | set(references)
            assert variable in read, f"{name}: env {variable} is read by nothing"
        for variable, default in references.items():
            assert default is not None or variable in env, f"{name}: the ConfigMap needs ${{{variable}}}"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert env[CONFIG_ENV] == f"{mounts['config']}/driftscope.yaml"
        assert volumes["config"]["configMap"]["name"] == "driftscope-config"
        assert config.api.host == config.dashboard.host == config.worker.metrics_host == "0.0.0.0"


def test_kubernetes_ports_and_probes_match_the_config_and_the_apps(tmp_path: Path) -> None:
    from monitor.api.app import create_app
    from monitor.store.engine import make_engine

    specs = pod_specs()
    (container,) = specs["driftscope-api"]["containers"]
    config, _, _ = k8s_config_and_env(container)
    api_paths = {route.path for route in create_app(config, make_engine(f"sqlite:///{tmp_path}/s.db")).routes}
    served = {
        "driftscope-api": (config.api.port, api_paths),
        "driftscope-worker": (config.worker.metrics_port, {"/metrics"}),
        "driftscope-dashboard": (config.dashboard.port, dashboard_unauthenticated_paths(config, tmp_path)),
    }
    services = k8s_by_kind("Service")
    for name, (port, paths) in served.items():
        (container,) = specs[name]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert list(ports.values()) == [port], f"{name}: containerPort is not the configured port {port}"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                get = container[probe]["httpGet"]
                assert get["port"] in ports, f"{name}.{probe}: unknown port {get['port']}"
                assert get["path"] in paths, f"{name}.{probe}: {get['path']} is not served (serves {sorted(paths)})"
        assert "livenessProbe" in container, f"{name} has no liveness probe"
        labels = k8s_by_kind("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        exposing = [s for s in services.values() if s["spec"]["selector"].items() <= labels.items()]
        assert exposing, f"no Service selects {name}"
        for service in exposing:
            assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports), service["metadata"]["name"]
    api = specs["driftscope-api"]["containers"][0]
    assert (api["livenessProbe"]["httpGet"]["path"], api["readinessProbe"]["httpGet"]["path"]) == (
        "/healthz",
        "/readyz",
    )
    hpa = k8s_by_kind("HorizontalPodAutoscaler")["driftscope-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in k8s_by_kind("Deployment")
    assert k8s_by_kind("Deployment")["driftscope-worker"]["spec"]["replicas"] >= 2


def test_only_the_ingress_reaches_the_proxy_login_dashboard() -> None:
    """With auth: proxy a request's user header is its login: the proxy proves itself with the secret,
    and a NetworkPolicy admits only the ingress controller, on the dashboard's port."""
    (container,) = pod_specs()["driftscope-dashboard"]["containers"]
    config, _, _ = k8s_config_and_env(container)
    assert config.dashboard.auth == "proxy" and config.dashboard.proxy_secret is not None
    labels = k8s_by_kind("Deployment")["driftscope-dashboard"]["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
    policies = [
        policy
        for policy in k8s_by_kind("NetworkPolicy").values()
        if policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
    ]
    assert policies, "no NetworkPolicy selects the dashboard's pods"
    for policy in policies:
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), "an ingress rule without `from` admits every pod"
            assert {p["port"] for p in rule["ports"]} <= ports


def dashboard_unauthenticated_paths(config: Config, tmp_path: Path) -> set[str]:
    """Paths of the dashboard that answer 200 to a probe without credentials, with login switched on."""
    from dashboard.app import create_app
    from dashboard.auth import hash_password
    from monitor.store.engine import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path}/dashboard.db")
    upgrade(engine)
    with_login = config.model_copy(
        update={
            "dashboard": config.dashboard.model_copy(
                update={
                    "auth": "basic",
                    "users": {"ops": DashboardUser(password_hash=hash_password("s3cret", iterations=1000))},
                }
            )
        }
    )
    client = create_app(with_login, engine).server.test_client()
    candidates = {"/healthz", "/readyz", "/"}
    return {path for path in candidates if client.get(path).status_code == 200}


# ------------------------------------------------------------------------------------------------ CI


def test_ci_workflow_matches_the_github_workflow_schema(tmp_path: Path) -> None:
    workflow = ROOT / ".github" / "workflows" / "ci.yml"
    result = check_jsonschema(SCHEMAS / "github-workflows.json", workflow)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    broken["jobs"]["lint"]["runs-on"] = {"image": "ubuntu"}  # negative control
    (tmp_path / "ci.yml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert check_jsonschema(SCHEMAS / "github-workflows.json", tmp_path / "ci.yml").returncode == 1


def test_ci_runs_the_suite_checks_the_docs_and_waits_for_every_healthcheck() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    steps = {
        job: " ".join(str(step.get("run", "")) for step in spec["steps"]) for job, spec in workflow["jobs"].items()
    }
    assert "./scripts/test.sh" in steps["test"] and (ROOT / "scripts" / "test.sh").is_file()
    assert "scripts/gen_config_docs.py --check" in steps["lint"]
    healthy = {name for name, svc in load_compose()["services"].items() if "healthcheck" in svc}
    waited = re.search(r"for service in ([a-z\- ]+);", steps["stack"])
    assert waited and set(waited[1].split()) == healthy, "the stack job must wait for every service's healthcheck"
