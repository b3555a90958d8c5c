"""The deployment files: parsed, and every command they run exists in the CLI with those options.

No container engine runs in CI, so this is how far docker-compose.yml, the Procfile and the
Dockerfile are tested: structure and commands, not a real `docker compose up`.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

import cli

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate", "web", "worker", "reconciler", "sandbox"}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def procfile() -> dict[str, list[str]]:
    roles = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip():
            role, _, command = line.partition(":")
            roles[role.strip()] = shlex.split(re.sub(r"\$\{PORT:-(\d+)\}", r"\1", command))
    return roles


def resolve(args: list[str]) -> click.Context:
    """Walk the click groups like the shell would, then let the leaf command parse its options."""
    command: click.Command = cli.main
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest, f"{args}: names a group, not a command"
        name = rest.pop(0)
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"{args}: no command {name!r}"
        command = sub
    return command.make_context(command.name or "", rest)  # raises on unknown options or bad values


def test_every_compose_command_exists_in_the_cli() -> None:
    services = compose()["services"]
    assert APP_SERVICES <= set(services)
    for name in APP_SERVICES:
        resolve(list(services[name]["command"]))


def test_every_procfile_command_exists_in_the_cli() -> None:
    roles = procfile()
    assert set(roles) == {"release", "web", "worker", "reconciler"}
    assert roles["release"] == ["facesign-recovery", "db", "upgrade"]
    for argv in roles.values():
        assert argv[0] == "facesign-recovery"
        resolve(argv[1:])


def test_a_wrong_command_would_be_caught() -> None:
    with pytest.raises(AssertionError):
        resolve(["no-such-command"])
    with pytest.raises(click.UsageError):
        resolve(["worker", "--no-such-option"])


def test_redis_keeps_its_data_and_never_evicts_messages() -> None:
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert "--maxmemory " in command  # a bound: readiness measures its headroom against it
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_postgres_has_a_volume_and_migrations_run_once_first() -> None:
    services = compose()["services"]
    assert any("/var/lib/postgresql/data" in volume for volume in services["db"]["volumes"])
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "reconciler"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_workers_scale_and_the_sandbox_is_a_demo_profile() -> None:
    services = compose()["services"]
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]
    assert services["sandbox"]["profiles"] == ["demo"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["REDIS_URL"].startswith("redis://") and "postgresql+psycopg" in environment["DATABASE_URL"]


def test_one_image_for_every_role() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["facesign-recovery"]' in dockerfile
    assert re.search(r"^USER \w+", dockerfile, re.MULTILINE), "the image must not run as root"
    assert {compose()["services"][name]["image"] for name in APP_SERVICES} == {"facesign-recovery:local"}


def test_the_image_copies_every_package_the_project_installs() -> None:
    """A package added to pyproject.toml's list but not copied would be missing from the image only."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    installed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert {pattern.rstrip("*") for pattern in installed["include"]} <= copied


def test_the_image_installs_pinned_hashed_dependencies_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {name.lower() for name in re.findall(r"^([A-Za-z0-9_.-]+)==", lock, re.MULTILINE)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = project["project"]["dependencies"] + project["build-system"]["requires"]
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert name is not None and name.group(0).lower().replace("_", "-") in pinned, requirement
    for block in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.split("\n", 8)[-1]):
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]
