"""The deployment files stay true to the code: the Dockerfile, deploy/compose.yaml, HAProxy's
config and the Kubernetes manifests name real files, real commands, the real ports and the
real /healthz; the image's entry point runs here as the image runs it.

What needs a Docker daemon (building the image, `docker compose up`) cannot run on this
machine: see docs/deploy.md, "What was checked".
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import sqlalchemy as sa
import typer
import yaml

from kernal.cli import app
from kernal.config import DEFAULT_DASHBOARD_PORT, DEFAULT_HUB_PORT, HubSettings
from kernal.storage.engine import database_url
from tests.helpers import RawClient

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent
PORTS = {DEFAULT_HUB_PORT, DEFAULT_DASHBOARD_PORT}
LISTENING = re.compile(r"Hub listening for trainers on [\d.]+:(\d+)")
DASHBOARD = re.compile(r"Dashboard on http://[\d.]+:(\d+)/")


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as ``(KEYWORD, arguments)``, continuations joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", re.sub(r"(?m)^\s*#.*\n", "", text))
    pairs = []
    for line in logical.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), " ".join(rest.split())))
    return pairs


def instructions(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile() if kw == keyword]


def final_stage() -> list[tuple[str, str]]:
    pairs = dockerfile()
    start = max(i for i, (kw, _) in enumerate(pairs) if kw == "FROM")
    return pairs[start:]


def hub_command(args: list[str]) -> Any:
    """Parse ``args`` (``kernal hub ...``) as the CLI would, without running it; returns the
    click context (``.params``); raises a usage error for an unknown flag or a bad value."""
    assert args[:2] == ["kernal", "hub"], args
    command = typer.main.get_command(app).commands["hub"]  # type: ignore[attr-defined]
    return command.make_context("hub", list(args[2:]))


def docker_cmd() -> list[str]:
    (cmd,) = instructions("CMD")
    parsed: list[str] = json.loads(cmd)
    return parsed


def entrypoint() -> Path:
    """The entry point script of the image, from the COPY that installs it."""
    (entry,) = instructions("ENTRYPOINT")
    (name,) = json.loads(entry)
    (source,) = [
        rest.split()[0] for rest in instructions("COPY") if rest.split()[-1].endswith(name)
    ]
    return ROOT / source


# ---------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_runs_the_hub_as_a_non_root_user_on_the_default_ports() -> None:
    stage = final_stage()
    assert stage[0] == ("FROM", "python:3.11-slim")
    (user,) = [rest for kw, rest in stage if kw == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can verify it
    (exposed,) = [rest for kw, rest in stage if kw == "EXPOSE"]
    assert {int(port) for port in exposed.split()} == PORTS
    context = hub_command(docker_cmd())
    assert context.params["host"] == "0.0.0.0"  # a container's loopback is unreachable
    assert context.params["port"] == DEFAULT_HUB_PORT
    assert context.params["dashboard_port"] == DEFAULT_DASHBOARD_PORT


def test_dockerfile_healthcheck_asks_healthz_on_the_dashboard_port() -> None:
    (check,) = instructions("HEALTHCHECK")
    assert f"http://127.0.0.1:{DEFAULT_DASHBOARD_PORT}/healthz" in check
    command = json.loads(check.split("CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")  # the probe itself is valid Python


def test_dockerfile_copies_files_that_exist_and_are_not_docker_ignored() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    included = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    sources = [
        part for rest in instructions("COPY") if "--from=" not in rest for part in rest.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in included, f"{source} is excluded by .dockerignore"
    assert os.access(entrypoint(), os.X_OK)


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def interpolate_default(value: str) -> str:
    """``${VAR:-default}`` as compose reads it with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_builds_this_dockerfile_and_mounts_files_that_exist() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "hub", "balancer", "bus"}
    build = services["hub"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
    # The tokens folder exists in the checkout, but its token files are never committed.
    assert "*" in (DEPLOY / "tokens" / ".gitignore").read_text().splitlines()


def test_compose_runs_one_hub_on_postgresql_behind_the_balancer() -> None:
    services = compose()["services"]
    hub = services["hub"]
    # One replica unless asked: two would be two separate hubs until the bus exists.
    assert interpolate_default(hub["deploy"]["replicas"]) == "1"
    assert {int(port) for port in hub["expose"]} == PORTS
    url = sa.make_url(database_url(hub["environment"]["KERNAL_DB"]))
    postgres = services["postgres"]["environment"]
    assert url.drivername == "postgresql+psycopg" and (url.host, url.port) == ("postgres", 5432)
    assert (url.username, url.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
    assert url.password == postgres["POSTGRES_PASSWORD"]  # the same ${KERNAL_PG_PASSWORD:?...}
    assert hub["depends_on"]["postgres"]["condition"] == "service_healthy"
    (mount,) = hub["volumes"]
    assert mount.split(":")[1] == hub["environment"]["KERNAL_TOKENS_DIR"]
    published = {tuple(map(int, port.split(":"))) for port in services["balancer"]["ports"]}
    assert published == {(port, port) for port in PORTS}
    assert services["bus"]["profiles"] == ["bus"]  # not started by default: nothing uses it yet


def test_compose_needs_a_database_password_and_bakes_in_none() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    assert "${KERNAL_PG_PASSWORD:?" in text
    assert "POSTGRES_PASSWORD: ${KERNAL_PG_PASSWORD:?" in text


# ---------------------------------------------------------------------------------- HAProxy


def test_haproxy_config_is_valid() -> None:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    assert haproxy, "haproxy is missing: run scripts/install-haproxy"
    result = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_balances_the_compose_hub_and_checks_healthz() -> None:
    config = (DEPLOY / "haproxy.cfg").read_text()
    service = "hub"
    assert service in compose()["services"]
    for port in PORTS:
        assert re.search(rf"(?m)^\s*bind :{port}$", config)
        assert re.search(rf"(?m)^\s*server-template hub \d+ {service}:{port}$", config)
    assert config.count("option httpchk GET /healthz") == 2
    assert f"check port {DEFAULT_DASHBOARD_PORT}" in config  # trainers' backend asks 5001


def test_balancer_may_open_the_descriptors_its_maxconn_needs() -> None:
    """HAProxy refuses to start when it cannot raise its open-file limit to about twice
    ``maxconn`` (seen here: `Cannot raise FD limit to 100022, limit is 20000`)."""
    (maxconn,) = re.findall(r"(?m)^\s*maxconn (\d+)$", (DEPLOY / "haproxy.cfg").read_text())
    assert int(maxconn) >= HubSettings.max_connections  # the balancer is not the bottleneck
    assert compose()["services"]["balancer"]["ulimits"]["nofile"] > 2 * int(maxconn)


# ---------------------------------------------------------------------------------- Kubernetes


def manifests(folder: Path = K8S) -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(folder.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def resource(kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in manifests() if doc["kind"] == kind]
    return found


@pytest.mark.parametrize(
    "document",
    manifests() + manifests(K8S / "examples"),
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)
def test_manifest_matches_the_kubernetes_api_schema(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_deployment_probes_ask_healthz_on_the_dashboard_port() -> None:
    pod = resource("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert set(ports.values()) == PORTS
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz"
        assert ports[check["port"]] == DEFAULT_DASHBOARD_PORT


def test_deployment_runs_the_image_command_with_its_config() -> None:
    deployment = resource("Deployment")
    assert deployment["spec"]["replicas"] == 1  # see its comment: the bus is not built yet
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = resource("ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    args = [
        re.sub(r"\$\(([A-Z_]+)\)", lambda m: config["data"][m.group(1)], arg)
        for arg in container["args"]
    ]
    context = hub_command(args)
    assert context.params["host"] == "0.0.0.0"
    assert context.params["port"] == DEFAULT_HUB_PORT
    # The same user as the image's USER, and the tokens where the entry point reads them.
    (user,) = [rest for kw, rest in final_stage() if kw == "USER"]
    assert pod["securityContext"]["runAsUser"] == int(user.split(":")[0])
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["tokens"] == config["data"]["KERNAL_TOKENS_DIR"]
    secrets = {
        doc["metadata"]["name"] for doc in manifests(K8S / "examples") if doc["kind"] == "Secret"
    }
    (tokens,) = [volume for volume in pod["volumes"] if volume["name"] == "tokens"]
    assert tokens["secret"]["secretName"] in secrets
    (db,) = [env for env in container["env"] if env["name"] == "KERNAL_DB"]
    assert db["valueFrom"]["secretKeyRef"]["name"] in secrets


def test_service_reaches_the_pods_named_ports() -> None:
    service = resource("Service")
    template = resource("Deployment")["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = template["spec"]["containers"]
    names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert {port["port"] for port in service["spec"]["ports"]} == PORTS
    for port in service["spec"]["ports"]:
        assert names[port["targetPort"]] == port["port"]


# ---------------------------------------------------------------------------------- entry point


def entrypoint_env(tmp_path: Path, tokens: dict[str, str] | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KERNAL_DB": str(tmp_path / "hub_data.db"),
        "KERNAL_READ_TOKEN": "read-token",  # as compose and the Deployment set it
    }
    if tokens is not None:
        folder = tmp_path / "tokens"
        folder.mkdir()
        for ai_id, token in tokens.items():
            (folder / ai_id).write_text(token + "\n")  # as `echo` writes it
        (folder / ".hidden").write_text("not a token")  # a Secret volume's ..data and the like
        (folder / "sub").mkdir()
        env["KERNAL_TOKENS_DIR"] = str(folder)
    return env


def test_entrypoint_refuses_a_tokens_folder_that_is_not_there(tmp_path: Path) -> None:
    env = {**entrypoint_env(tmp_path, None), "KERNAL_TOKENS_DIR": str(tmp_path / "nowhere")}
    refused = subprocess.run(
        [str(entrypoint()), "true"], capture_output=True, text=True, env=env, check=False
    )
    assert refused.returncode == 2 and "is not a directory" in refused.stderr


def on_free_ports(command: list[str]) -> list[str]:
    """The image's command with port 0 for both listeners (a later flag wins)."""
    return [*command, "--port", "0", "--dashboard-port", "0"]


async def test_image_command_refuses_to_listen_without_tokens(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(entrypoint()),
        *on_free_ports(docker_cmd()),
        env=entrypoint_env(tmp_path, None),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"refusing to listen on 0.0.0.0 with no tokens" in stderr


async def test_image_stores_mounted_tokens_serves_them_and_healthz_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """The entry point then the CMD, as the container runs them (ports 0 instead of the
    defaults): each mounted token file becomes a token the hub accepts."""
    tokens = {"AI_Team_A": "token-a", "AI_Team_B": "token-b"}
    proc = await asyncio.create_subprocess_exec(
        str(entrypoint()),
        *on_free_ports(docker_cmd()),
        env=entrypoint_env(tmp_path, tokens),
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = ""
    try:
        while not (LISTENING.search(log) and DASHBOARD.search(log)):
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert line, f"the hub exited early:\n{log}"
            log += line.decode()
        hub_port = int(LISTENING.search(log).group(1))  # type: ignore[union-attr]
        web_port = int(DASHBOARD.search(log).group(1))  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{web_port}/healthz"
        health = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        assert json.loads(health) == {"ok": True}
        assert re.findall(r"stored the token of (\S+)", log) == list(tokens)
        for ai_id, token in tokens.items():
            client = await RawClient.connect_to("127.0.0.1", hub_port)
            try:
                assert (await client.login(ai_id, token))["type"] == "STATE"
            finally:
                await client.close()
        proc.send_signal(signal.SIGTERM)  # what `docker stop` and Kubernetes send
        rest = await asyncio.wait_for(proc.stderr.read(), 60)
        assert await proc.wait() == 130, log + rest.decode()
        assert b"Traceback" not in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------------------------- docs


def documented_commands() -> list[list[str]]:
    """Every ``kernal ...`` line of the bash blocks of docs/deploy.md, split as a shell would."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("kernal "):
                commands.append(shlex.split(line, comments=True))
    return commands


def test_deploy_doc_has_kernal_commands() -> None:
    assert len(documented_commands()) >= 8


@pytest.mark.parametrize("args", documented_commands(), ids=" ".join)
def test_deploy_doc_commands_parse(args: list[str]) -> None:
    """The commands docs/deploy.md tells operators to type exist, with those flags."""
    command: Any = typer.main.get_command(app)
    rest = args[1:]
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    assert not hasattr(command, "commands"), f"{args}: not a command"
    command.make_context(args[-1], rest)
