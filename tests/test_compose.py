"""The deployment files: docker-compose.yml validated by Debian's docker-compose (v1.29, no engine needed),
its topology checked (Chroma version, healthchecks, named volumes, the API wired to Chroma), and the
Dockerfile's non-root user and healthcheck. The same topology runs as processes in test_server_mode.py."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
STATEFUL_MOUNTS = {"postgres": "/var/lib/postgresql/data", "chroma": "/data", "llm": "/root/.ollama"}

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (apt-get install docker-compose)"
)


def compose(*args: str, cwd: Path = ROOT, file: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(file), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd)},  # no stray QA_* from the caller
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The file as docker-compose resolves it (defaults interpolated, short syntax expanded)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    result = compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def _named_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target path -> named volume, for the service's volume mounts (bind mounts are left out)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/", "~")):
                mounts[target] = source
        elif volume.get("type") == "volume":
            mounts[volume["target"]] = volume["source"]
    return mounts


@needs_compose
def test_compose_file_is_valid_for_docker_compose_1_29() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


@needs_compose
def test_validator_rejects_keys_it_does_not_know(tmp_path: Path) -> None:
    """Guards the check above: v1.29 must fail on a newer compose-spec key, so passing means something."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("name: newer-spec-only\n" + COMPOSE.read_text())
    result = compose("config", "-q", cwd=tmp_path, file=broken)
    assert result.returncode != 0
    raw = yaml.safe_load(COMPOSE.read_text())
    assert "name" not in raw
    for service in raw["services"].values():
        assert "develop" not in service and "start_interval" not in (service.get("healthcheck") or {})


def test_services_and_profiles(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {"api", "postgres", "chroma", "llm"} <= set(services)
    for name in ("api", "postgres", "chroma"):
        assert not services[name].get("profiles"), name
    assert services["llm"]["profiles"] == ["llm"]  # optional: only with `--profile llm`


def test_chroma_is_the_official_image_pinned_to_the_client_version(config: dict[str, Any]) -> None:
    image = config["services"]["chroma"]["image"]
    match = re.fullmatch(r"chromadb/chroma:(\d+)\.(\d+)\.(\d+)", image)
    assert match, f"chroma image must be chromadb/chroma with a pinned x.y.z tag, got {image}"
    client = importlib.metadata.version("chromadb").split(".")
    assert match.group(1) == "1" and match.groups()[:2] == tuple(client[:2]), (image, client)


def test_every_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    chroma_check = " ".join(config["services"]["chroma"]["healthcheck"]["test"])
    assert "/api/v2/heartbeat" in chroma_check and "8000" in chroma_check
    assert "pg_isready" in config["services"]["postgres"]["healthcheck"]["test"]
    api_check = " ".join(config["services"]["api"]["healthcheck"]["test"])
    assert "/health" in api_check and "8000" in api_check


def test_postgres_is_the_official_image_with_its_database(config: dict[str, Any]) -> None:
    postgres = config["services"]["postgres"]
    assert re.fullmatch(r"postgres:1[5-9](\.\d+)?", postgres["image"]), postgres["image"]
    env = _environment(postgres)
    url = _environment(config["services"]["api"])["QA_DATABASE_URL"]
    assert url == f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"


def test_api_uses_the_servers_waits_for_them_and_scales(config: dict[str, Any]) -> None:
    api = config["services"]["api"]
    env = _environment(api)
    assert env["QA_CHROMA_URL"] == "http://chroma:8000"
    assert env["QA_DATABASE_URL"].startswith("postgresql://")
    for server in ("chroma", "postgres"):
        assert api["depends_on"][server]["condition"] == "service_healthy"
    assert not _named_mounts(api), "api replicas keep no state of their own"
    assert "container_name" not in api  # a fixed name would forbid `--scale api=N`
    published = [str(p.get("published", "")) for p in api["ports"]]
    assert any(re.fullmatch(r"\d+-\d+", p) for p in published), f"a host port range per replica, got {published}"
    command = " ".join(api["command"]) if isinstance(api["command"], list) else api["command"]
    assert "qa serve" in command and "--port 8000" in command and "--host 0.0.0.0" in command
    assert re.search(r"--workers [2-9]", command), "the server mode exists to run several workers"
    assert any(p["target"] == 8000 for p in api["ports"])
    assert "build" in api


def test_llm_settings_reach_the_api(config: dict[str, Any]) -> None:
    """Passed through (not set to empty strings, which would count as configured values)."""
    env = _environment(config["services"]["api"])
    for name in ("QA_LLM_BASE_URL", "QA_LLM_MODEL", "OPENAI_API_KEY", "QA_API_KEY"):
        assert name in env and env[name] is None, name
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert "QA_LLM_BASE_URL=http://llm:11434/v1" in docs


def test_state_lives_in_named_volumes_that_survive_down(config: dict[str, Any]) -> None:
    """`docker compose down` keeps named volumes (only `down -v` removes them); bind mounts are not used."""
    declared = config.get("volumes") or {}
    services = config["services"]
    expected = STATEFUL_MOUNTS
    for name, target in expected.items():
        mounts = _named_mounts(services[name])
        assert target in mounts, f"{name} must keep {target} in a named volume, has {mounts}"
        volume = mounts[target]
        assert volume in declared and not (declared[volume] or {}).get("external"), volume
    assert len({_named_mounts(services[n])[t] for n, t in expected.items()}) == 3, "one volume per service"


def _final_stage(dockerfile: str) -> list[str]:
    lines = [line.strip() for line in re.sub(r"\\\n", " ", dockerfile).splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    start = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[start:]


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    stage = _final_stage(DOCKERFILE.read_text())
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the final stage must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in ("root", "0")
    health = [line for line in stage if line.upper().startswith("HEALTHCHECK ")]
    assert health and "/health" in health[-1] and "8000" in health[-1]
    cmd = next(line for line in reversed(stage) if line.upper().startswith("CMD "))
    assert "serve" in cmd and "8000" in cmd
    assert any(line.startswith("ENV") and "QA_DATA_DIR=/data" in line for line in stage)


def test_docker_build_context_has_what_the_dockerfile_copies() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "data", ".git", "tests"} <= ignored
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, f"{source} is copied but excluded by .dockerignore"
