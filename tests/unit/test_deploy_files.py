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


def procfile(with_env: bool = False) -> dict[str, list[str]]:
    """Each role's argv, its defaults filled in; `env VAR=value` prefixes dropped unless `with_env`."""
    roles = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            role, _, command = line.partition(":")
            argv = shlex.split(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command))
            if argv[0] == "env" and not with_env:
                argv = [arg for arg in argv[1:] if "=" not in arg]
            roles[role.strip()] = argv
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


# Compose's variable interpolation, as much of it as the file uses: ${VAR}, ${VAR:-default}, ${VAR:?error}.
VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")
SECRETS = ("FACESIGN_API_KEY", "FACESIGN_WEBHOOK_SECRET", "AUDIT_PSEUDONYM_KEY", "POSTGRES_PASSWORD")


class Refused(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, operator, word = match.groups()
        given = env.get(name, "")
        if operator == ":?" and not given:
            raise Refused(f"{name}: {word}")
        return given or (word if operator == ":-" else "")

    return VARIABLE.sub(one, value)


def demo_env() -> dict[str, str]:
    lines = (ROOT / "deploy" / "demo.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def environment_of(service: str, env: dict[str, str]) -> dict[str, str]:
    return interpolate(compose()["services"][service], env)["environment"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    env = {name: f"real-{name.lower()}" for name in SECRETS}
    for name in APP_SERVICES - {"sandbox"}:
        environment_of(name, env)  # everything set: interpolates
    del env[secret]
    with pytest.raises(Refused, match=secret):
        interpolate(compose(), env)


def test_compose_names_no_default_secret_and_mails_by_smtp() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for value in demo_env().values():
        if "demo" in value:
            assert value not in text, f"{value} is a default anyone could read"
    assert "whsec_demo_change_me" not in text
    environment = environment_of("web", {name: "x" for name in SECRETS})
    assert environment["MAIL_BACKEND"] == "smtp" and environment["FACESIGN_API_URL"] == "https://api.facesign.ai"
    assert environment["FORWARDED_ALLOW_IPS"] == "127.0.0.1"


def test_the_demo_profile_gets_its_values_from_its_own_env_file() -> None:
    demo = demo_env()
    assert set(SECRETS) <= set(demo)
    web, sandbox = environment_of("web", demo), interpolate(compose()["services"]["sandbox"], demo)
    assert web["FACESIGN_API_URL"] == "http://sandbox:8001" and web["MAIL_BACKEND"] == "file"
    assert "FACESIGN_SANDBOX" not in web  # the stand-in is a separate service: `web` runs as in production
    # Its page approves anyone: published on the host's loopback only.
    assert all(port.startswith("127.0.0.1:") for port in sandbox["ports"])


def test_forwarded_allow_ips_is_set_and_explained_where_the_web_process_starts() -> None:
    web = procfile(with_env=True)["web"]
    assert web[0] == "env" and "FORWARDED_ALLOW_IPS=127.0.0.1" in web
    for path in ("Procfile", "docker-compose.yml"):
        text = (ROOT / path).read_text()
        assert "FORWARDED_ALLOW_IPS" in text and "'*' is refused" in text, path


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
