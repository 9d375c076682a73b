"""deploy/ stays true to the code: the Dockerfile, compose files and Kubernetes manifests parse, reference files
that exist and the image they build, probe paths the app serves, and use only `streamfold` subcommands, flags
and STREAMFOLD_* variables the CLI knows. (No Docker engine runs the images here.)"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.app import create_app
from api.cli import build_parser
from ingest.settings import Settings

from .cluster import ValkeyCluster, valkey_cli_binary

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_CLUSTER = DEPLOY / "compose.cluster.yaml"
HELM_VALUES = K8S / "helm" / "valkey-cluster-values.yaml"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


# ------------------------------------------------------------------ Kubernetes


def kustomization() -> dict[str, Any]:
    return load_yaml(K8S / "kustomization.yaml")  # type: ignore[no-any-return]


def k8s_objects() -> list[dict[str, Any]]:
    return [
        doc
        for name in kustomization()["resources"]
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc is not None
    ]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name)


def deployments() -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] == "Deployment"]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def test_the_kustomization_lists_every_manifest_beside_it():
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_every_kubernetes_document_has_api_version_kind_and_a_name():
    objects = k8s_objects()
    assert {o["kind"] for o in objects} >= {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    }
    for o in objects:
        assert o.get("apiVersion") and o.get("kind"), o
        assert o.get("metadata", {}).get("name"), o


def test_the_deployments_run_the_image_the_kustomization_names():
    (image,) = kustomization()["images"]
    for d in deployments():
        assert [c["image"] for c in containers(d)] == [image["name"]], d["metadata"]["name"]
    assert {d["metadata"]["name"] for d in deployments()} == {"streamfold-api", "streamfold-fold"}


def test_the_api_is_probed_on_healthz_and_readyz_at_its_http_port():
    (api,) = containers(k8s_object("Deployment", "streamfold-api"))
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": 8080}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_the_service_and_the_autoscaler_point_at_the_api_pods():
    api = k8s_object("Deployment", "streamfold-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    service = k8s_object("Service", "streamfold-api")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = k8s_object("HorizontalPodAutoscaler", "streamfold-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "streamfold-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2


def test_every_container_has_cpu_and_memory_requests_and_limits():
    for d in deployments():
        for c in containers(d):
            for bound in ("requests", "limits"):
                assert set(c["resources"][bound]) >= {"cpu", "memory"}, (d["metadata"]["name"], bound)


def test_the_pods_read_the_secret_kustomize_generates_and_the_valkey_chart_uses():
    (generated,) = kustomization()["secretGenerator"]
    assert kustomization()["generatorOptions"]["disableNameSuffixHash"] is True  # the chart names it exactly
    values = load_yaml(HELM_VALUES)
    assert (values["existingSecret"], values["existingSecretPasswordKey"]) == (
        generated["name"],
        "valkey-password",
    )
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for d in deployments()
        for c in containers(d)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {(generated["name"], "valkey-password")}
    (env_file,) = generated["envs"]
    assert env_file in (K8S / ".gitignore").read_text().split(), "the password file must never be committed"


def test_the_valkey_chart_values_ask_for_aof_replicas_and_persistence():
    values = load_yaml(HELM_VALUES)
    assert values["cluster"] == {"nodes": 6, "replicas": 1}
    assert values["valkey"]["useAOFPersistence"] == "yes"
    assert "maxmemory-policy noeviction" in values["valkey"]["configmap"]
    assert values["persistence"]["enabled"] is True
    # the pods get through the chart's NetworkPolicy
    for d in deployments():
        assert d["spec"]["template"]["metadata"]["labels"]["valkey-cluster-client"] == "true"


def k8s_environments() -> Iterator[tuple[str, dict[str, str]]]:
    config = {**k8s_object("ConfigMap", "streamfold")["data"]}
    for d in deployments():
        for c in containers(d):
            own = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
            refs = [r["configMapRef"]["name"] for r in c.get("envFrom", []) if "configMapRef" in r]
            assert refs == ["streamfold"]
            yield f"kubernetes {d['metadata']['name']}/{c['name']}", {**config, **own}


# ------------------------------------------------------------------ Compose


def compose_services(*files: Path) -> dict[str, dict[str, Any]]:
    """The services as `docker compose -f … -f …` merges them (enough of its rules for these files:
    mappings merge, `depends_on` adds, lists and scalars replace, `volumes` merge by target)."""
    merged: dict[str, dict[str, Any]] = {}
    for f in files:
        for name, service in load_yaml(f)["services"].items():
            into = merged.setdefault(name, {})
            for key, value in service.items():
                if key == "volumes" and key in into:
                    by_target = {v.split(":")[1]: v for v in into[key]}
                    by_target.update({v.split(":")[1]: v for v in value})
                    into[key] = list(by_target.values())
                elif isinstance(value, dict) and isinstance(into.get(key), dict):
                    into[key] = {**into[key], **value}
                else:
                    into[key] = value
    return merged


def streamfold_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("image", "").startswith("streamfold")}


VARIANTS = {"single": (COMPOSE,), "cluster": (COMPOSE, COMPOSE_CLUSTER)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_compose_runs_two_api_replicas_two_fold_workers_and_a_load_balancer(variant):
    services = compose_services(*VARIANTS[variant])
    ours = streamfold_services(services)
    assert {n: (s["command"], s["deploy"]["replicas"]) for n, s in ours.items()} == {
        "api": (["serve"], 2),
        "fold": (["fold"], 2),
    }
    assert services["api"]["environment"]["STREAMFOLD_NO_FOLD"] == "true"
    assert services["api"]["environment"]["STREAMFOLD_HOST"] == "0.0.0.0"
    assert services["lb"]["depends_on"]["api"]["condition"] == "service_healthy"
    for name in ours:
        assert services[name]["depends_on"]["valkey"]["condition"] == "service_healthy"


def test_compose_single_valkey_keeps_an_append_only_file():
    command = compose_services(COMPOSE)["valkey"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_compose_cluster_is_three_masters_with_a_replica_each_joined_once_before_streamfold_starts():
    services = compose_services(COMPOSE, COMPOSE_CLUSTER)
    nodes = [n for n, s in services.items() if "cluster-node.conf" in " ".join(s.get("command", []))]
    init = services["valkey-cluster-init"]
    assert init["environment"]["VALKEY_NODES"].split() == nodes and len(nodes) == 6
    assert init["environment"]["VALKEY_CLUSTER_REPLICAS"] == "1"
    assert {n: c["condition"] for n, c in init["depends_on"].items()} == dict.fromkeys(
        nodes, "service_healthy"
    )
    for name in streamfold_services(services):
        assert services[name]["depends_on"]["valkey-cluster-init"]["condition"] == (
            "service_completed_successfully"
        )
    conf = (DEPLOY / "valkey" / "cluster-node.conf").read_text().split("\n")
    assert {"cluster-enabled yes", "appendonly yes", "maxmemory-policy noeviction"} <= set(conf)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_compose_service_checks_its_health_or_says_why_not(variant):
    for name, service in compose_services(*VARIANTS[variant]).items():
        check = service.get("healthcheck", {})
        one_shot = service.get("restart") == "no"
        assert one_shot or check.get("test") or check.get("disable") is True, name


@pytest.mark.parametrize("compose_file", [COMPOSE, COMPOSE_CLUSTER], ids=lambda p: p.name)
def test_compose_services_reference_files_that_exist(compose_file):
    for name, service in load_yaml(compose_file)["services"].items():
        build = service.get("build")
        if build:
            context = (compose_file.parent / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_file.parent / source).exists(), f"{name}: {source}"


def test_the_cluster_init_script_is_valid_sh():
    subprocess.run(["sh", "-n", str(DEPLOY / "valkey" / "cluster-init.sh")], check=True)


@pytest.mark.cluster
async def test_the_cluster_init_script_joins_the_nodes_once():
    cluster = ValkeyCluster(masters=3, replicas=1)
    await cluster.start_nodes()
    try:
        env = {
            **os.environ,
            "PATH": f"{Path(valkey_cli_binary()).parent}{os.pathsep}{os.environ['PATH']}",
            "VALKEY_NODES": " ".join(n.address for n in cluster.nodes),
            "VALKEY_CLUSTER_REPLICAS": "1",
        }

        async def run_script() -> str:
            proc = await asyncio.create_subprocess_exec(
                "sh", str(DEPLOY / "valkey" / "cluster-init.sh"), env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
            assert proc.returncode == 0, out.decode()
            return out.decode()

        assert "cluster formed" in await run_script()
        await cluster.wait_healthy()
        assert len(await cluster.masters_now()) == 3
        assert "already form a cluster" in await run_script()
    finally:
        cluster.stop()


# ------------------------------------------------------------------ Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_dockerfile_builds_the_wheel_in_one_stage_and_runs_it_unprivileged_in_a_slim_python_311():
    steps = dockerfile_instructions()
    assert ("ARG", "PYTHON_VERSION=3.11") in steps
    stages = [args for word, args in steps if word == "FROM"]
    assert stages == ["python:${PYTHON_VERSION}-slim AS build", "python:${PYTHON_VERSION}-slim AS runtime"]
    runtime = steps[[w for w, _ in steps].index("FROM", 2) :]
    install = next(args for word, args in runtime if word == "RUN" and "pip install" in args)
    assert "from=build" in install and "[test]" not in install and "--no-index" in install
    user = next(args for word, args in runtime if word == "USER")
    assert user.split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8080") in runtime
    assert ("ENTRYPOINT", '["streamfold"]') in runtime
    healthcheck = next(args for word, args in runtime if word == "HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_the_dockerfile_copies_what_the_wheel_needs(tmp_path):
    """Build the wheel from exactly what the build stage copies: it holds every module and data file of the
    three packages (so `streamfold` runs from the installed wheel, not only from a checkout)."""
    src = tmp_path / "src"
    for word, args in dockerfile_instructions():
        if word == "COPY" and "--from" not in args:
            *sources, dest = args.split()
            for s in sources:
                target = src / dest / Path(s).name if dest.endswith("/") or len(sources) > 1 else src / dest
                if (ROOT / s).is_dir():
                    subprocess.run(["cp", "-r", str(ROOT / s), str(target)], check=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes((ROOT / s).read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path / "out"), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "out").glob("streamfold-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        str(p.relative_to(ROOT))
        for package in ("ingest", "projections", "api")
        for p in (ROOT / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert wanted - packaged == set()


# ------------------------------------------------------------------ the CLI's names


def streamfold_variables() -> list[str]:
    found = {m for f in deploy_files() for m in re.findall(r"\bSTREAMFOLD_[A-Z0-9_]+\b", f.read_text())}
    assert len(found) >= 10, found
    return sorted(found)


@pytest.mark.parametrize("variable", streamfold_variables())
def test_every_streamfold_variable_in_deploy_is_a_setting(variable):
    names = {f"STREAMFOLD_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert variable in names


def streamfold_invocations() -> list[tuple[str, list[str]]]:
    """Every `streamfold …` command line in deploy/: the image's default command, the compose services' and
    the Kubernetes containers' commands, and those written out in docs, comments and scripts."""
    found: list[tuple[str, list[str]]] = []
    cmd = next(args for word, args in dockerfile_instructions() if word == "CMD")
    found.append(("Dockerfile CMD", json.loads(cmd)))
    for compose_file in (COMPOSE, COMPOSE_CLUSTER):
        for name, service in streamfold_services(compose_services(compose_file)).items():
            found.append((f"{compose_file.name}: {name}", service["command"]))
    for d in deployments():
        for c in containers(d):
            found.append((f"kubernetes {d['metadata']['name']}", c["args"]))
    written = [
        r"\bexec\s+(?:-\S+\s+)*\S+\s+(?:--\s+)?streamfold\s+(?P<args>[^#|;&)]*)",  # compose / kubectl exec
        r"^\s*(?:\$\s+)?streamfold\s+(?P<args>[^#|;&)]*)",  # a command line of its own
        r"docker run\b.*\sstreamfold(?::\S+)?\s+(?P<args>[a-z][^#|;&)]*)$",  # the image with a command
    ]
    for f in deploy_files():
        for number, line in enumerate(f.read_text().splitlines(), 1):
            line = line.lstrip("# ")
            for pattern in written:
                for m in re.finditer(pattern, line):
                    found.append((f"{f.relative_to(ROOT)}:{number}", shlex.split(m["args"])))
    return found


def test_deploy_runs_serve_and_fold_and_documents_workspace_creation():
    commands = {tuple(argv[:2]) for _, argv in streamfold_invocations()}
    assert {("serve",), ("fold",), ("workspace", "create")} <= commands


@pytest.mark.parametrize(
    "where,argv", streamfold_invocations(), ids=lambda v: v if isinstance(v, str) else None
)
def test_every_streamfold_command_line_in_deploy_parses(where, argv, capsys):
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `streamfold {shlex.join(argv)}` does not parse: {capsys.readouterr().err}")


def streamfold_environments() -> Iterator[tuple[str, dict[str, str]]]:
    for variant, files in VARIANTS.items():
        for name, service in streamfold_services(compose_services(*files)).items():
            yield f"compose {variant}: {name}", service["environment"]
    yield from k8s_environments()


def test_the_environments_given_to_streamfold_are_valid_settings():
    for where, env in streamfold_environments():
        try:
            Settings.from_env(env).owned_partitions()
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}")


def test_every_streamfold_process_of_a_deployment_agrees_on_partitions_and_key_prefix():
    for deployment in ("compose single", "compose cluster", "kubernetes"):
        seen = {
            (Settings.from_env(env).partitions, Settings.from_env(env).key_prefix)
            for where, env in streamfold_environments()
            if where.startswith(deployment)
        }
        assert len(seen) == 1, (deployment, seen)


def probe_paths() -> list[str]:
    paths = {
        probe["httpGet"]["path"]
        for d in deployments()
        for c in containers(d)
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
        if (probe := c.get(kind))
    }
    healthchecks = [DOCKERFILE.read_text()] + [
        " ".join(s["healthcheck"]["test"])
        for files in VARIANTS.values()
        for s in compose_services(*files).values()
        if s.get("healthcheck", {}).get("test")
    ]
    paths |= {m for text in healthchecks for m in re.findall(r"https?://[\w.:%()'\[\]+-]*?(/[a-z]+)", text)}
    return sorted(paths)


@pytest.mark.parametrize("path", probe_paths())
def test_every_probed_path_is_served_by_the_app(path):
    app = create_app(Settings(redis_url="redis://unused"), run_appliers=False)
    assert path in {getattr(r, "path", None) for r in app.routes}
