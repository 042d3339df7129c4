"""docker-compose.yml: PostgreSQL 16, Redis 7, web (gunicorn, migrations on start), worker — valid and secret-free."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"


def test_compose_file_declares_the_stack_with_health_checks_and_volumes():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert set(services) == {"db", "redis", "web", "worker"}
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "gunicorn" in services["web"]["command"] and "migrate" in services["web"]["command"]
    assert "celery" in services["worker"]["command"]
    for name in ("db", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {"db": {"condition": "service_healthy"},
                                                "redis": {"condition": "service_healthy"}}
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used <= set(spec["volumes"])
    # Secrets are required from the environment, never written in the file.
    text = COMPOSE.read_text()
    assert "${DJANGO_SECRET_KEY:?" in text and "${POSTGRES_PASSWORD:?" in text


@pytest.mark.skipif(not shutil.which("docker") or subprocess.run(["docker", "compose", "version"],
                    capture_output=True).returncode != 0, reason="docker compose is not installed here")
def test_docker_compose_config_validates():
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True,
                            text=True, env={"POSTGRES_PASSWORD": "x", "DJANGO_SECRET_KEY": "y", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
