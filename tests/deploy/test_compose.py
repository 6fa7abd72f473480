"""Offline checks of docker-compose.yml with the Compose v2 binary (`docker-compose config`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import DOMAIN_SERVICES, REPO, clean_env, compose_binary, run

APP_SERVICES = (*DOMAIN_SERVICES, "worker", "gateway")
INFRA = ("postgres", "rabbitmq")
COMPOSE_FILE = REPO / "docker-compose.yml"


def compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(
        [compose_binary(), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), *args], env=clean_env(**env)
    )


def model(**env: str) -> dict[str, Any]:
    result = compose("config", "--format", "json", **env)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = model()["services"]
    return found


def test_compose_binary_is_compose_v2() -> None:
    result = run([compose_binary(), "version", "--short"])
    assert result.returncode == 0 and result.stdout.strip().lstrip("v").startswith("2"), result.stdout


def test_config_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # no warnings either (unset variables, obsolete keys)


def test_every_process_is_there(services: dict[str, Any]) -> None:
    assert set(services) == {*INFRA, *APP_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["rabbitmq"]["healthcheck"]["test"][1:] == ["rabbitmq-diagnostics", "-q", "ping"]
    for name in (*DOMAIN_SERVICES, "gateway"):
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and "/healthz" in test[3], name
        compile(test[3], name, "exec")


def test_every_dependency_waits_for_health(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert {"postgres", "rabbitmq"} <= set(depends), name
        for dependency, condition in depends.items():
            assert condition["condition"] == "service_healthy", (name, dependency)
            assert dependency in services
    assert set(services["gateway"]["depends_on"]) >= set(DOMAIN_SERVICES)
    assert "bidding" in services["worker"]["depends_on"]  # bidding migrated the database first
    for name in INFRA:
        assert not services[name].get("depends_on"), name


def test_each_service_migrates_then_serves(services: dict[str, Any]) -> None:
    for name in DOMAIN_SERVICES:
        command = services[name]["command"]
        assert command[:2] == ["sh", "-c"], name
        assert command[2] == f"python -m services migrate {name} && exec python -m services serve {name}"
    assert services["gateway"]["command"] == ["python", "-m", "services", "serve", "gateway"]
    assert services["worker"]["command"] == ["python", "-m", "services.bidding.worker"]


def test_app_containers_share_one_image_and_are_locked_down(services: dict[str, Any]) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"]["context"] == str(REPO)
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service.get("user", "10001") not in ("0", "root"), name
        assert any(entry.startswith("/tmp") for entry in service["tmpfs"]), name
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["AMQP_URL"].startswith("amqp://") and "@rabbitmq:5672/" in env["AMQP_URL"]
        assert env["DATA_DIR"] == "/data" and env["PORT"] == "8000"
        assert env["JWKS_URL"] == "http://users:8000/api/auth/jwks.json"
        mounts = {volume["target"] for volume in service.get("volumes", [])}
        assert "/data" in mounts or any(entry.startswith("/data") for entry in service["tmpfs"]), name
    # Media survive restarts.
    for name in ("users", "listings"):
        assert {"type": "volume", "target": "/data"}.items() <= services[name]["volumes"][0].items(), name


def test_only_the_gateway_is_published_on_gateway_port(services: dict[str, Any]) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway"}
    (port,) = services["gateway"]["ports"]
    assert (port["target"], port["published"]) == (8000, "8000")
    env = services["gateway"]["environment"]
    for name in DOMAIN_SERVICES:
        assert env[f"{name.upper()}_URL"] == f"http://{name}:8000"
    moved = model(GATEWAY_PORT="9123")["services"]["gateway"]
    assert moved["ports"][0]["published"] == "9123"
    assert "http://127.0.0.1:9123" in moved["environment"]["GATEWAY_ALLOWED_ORIGINS"].split(",")


def test_no_private_key_or_real_password_is_committed(services: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    assert "PRIVATE KEY" not in text
    assert services["users"]["environment"]["JWT_PRIVATE_KEY"] == ""  # unset: generated into /data once
    keyed = model(JWT_PRIVATE_KEY="pem-from-env", POSTGRES_PASSWORD="s3cret")["services"]
    assert keyed["users"]["environment"]["JWT_PRIVATE_KEY"] == "pem-from-env"
    assert keyed["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert ":s3cret@postgres:5432/" in keyed["bidding"]["environment"]["DATABASE_URL"]


def test_worker_healthcheck_detects_a_stale_heartbeat(services: dict[str, Any], tmp_path: Path) -> None:
    """Run the worker's one-liner: no heartbeat file passes, a fresh one passes, a stale one fails."""
    test = services["worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    heartbeat = tmp_path / "heartbeat"

    def check() -> int:
        env = {**clean_env(), "WORKER_HEARTBEAT_FILE": str(heartbeat)}
        return subprocess.run([sys.executable, "-c", test[3]], env=env, timeout=30, check=False).returncode

    assert check() == 0
    heartbeat.touch()
    assert check() == 0
    stale = time.time() - 600
    os.utime(heartbeat, (stale, stale))
    assert check() == 1
