"""`serve` refuses before starting anything: no silent sandbox, none in a production-looking setup,
none reachable from other hosts, and no proxy trusted blindly."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import free_port

# What the security review ran: a real API URL, a webhook secret, a blank API key, every interface.
PRODUCTION = {
    "FACESIGN_API_URL": "https://api.facesign.ai",
    "FACESIGN_WEBHOOK_SECRET": "whsec_live",
    "FACESIGN_API_KEY": "",
    "AUDIT_PSEUDONYM_KEY": "pseudonym",
}


def serve(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, int]:
    sandbox_port = free_port()
    full = {"DATABASE_URL": f"sqlite:///{tmp_path}/s.db", "SANDBOX_PORT": str(sandbox_port), **env}
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port()), *args], env=full)
    return result.exit_code, result.output, sandbox_port


def nothing_listens_on(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("variable", ["FACESIGN_API_KEY", "FACESIGN_WEBHOOK_SECRET", "AUDIT_PSEUDONYM_KEY"])
def test_a_blank_secret_stops_serve_naming_it(tmp_path: Path, variable: str) -> None:
    env = {**PRODUCTION, "FACESIGN_API_KEY": "fs_live", variable: ""}
    code, output, sandbox_port = serve(tmp_path, env, "--host", "0.0.0.0")  # noqa: S104
    assert code == 1 and variable in output
    assert len(output.strip().splitlines()) == 1
    assert "SANDBOX in use" not in output and nothing_listens_on(sandbox_port)


def test_the_reviewed_configuration_no_longer_starts_a_sandbox(tmp_path: Path) -> None:
    code, output, sandbox_port = serve(tmp_path, PRODUCTION, "--host", "0.0.0.0")  # noqa: S104
    assert code == 1 and "FACESIGN_API_KEY: required" in output
    assert nothing_listens_on(sandbox_port)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FACESIGN_API_URL": "https://api.facesign.ai"}, "FACESIGN_API_URL"),
        ({"DATABASE_URL": "postgresql+psycopg://app:hunter2@127.0.0.1:1/x"}, "PostgreSQL"),
        ({"PUBLIC_BASE_URL": "https://recover.example.com"}, "https"),
    ],
    ids=["api-url", "postgresql", "https"],
)
@pytest.mark.parametrize("how", ["flag", "variable"])
def test_the_sandbox_refuses_a_production_configuration(
    tmp_path: Path, env: dict[str, str], named: str, how: str
) -> None:
    args = ("--sandbox",) if how == "flag" else ()
    code, output, sandbox_port = serve(
        tmp_path, {**env, **({"FACESIGN_SANDBOX": "1"} if how == "variable" else {})}, *args
    )
    assert code == 1 and "FACESIGN_SANDBOX: refused" in output and named in output
    assert "hunter2" not in output and nothing_listens_on(sandbox_port)


def test_the_sandbox_serves_on_loopback_only(tmp_path: Path) -> None:
    code, output, sandbox_port = serve(tmp_path, {}, "--sandbox", "--host", "0.0.0.0")  # noqa: S104
    assert code == 1 and "loopback" in output and nothing_listens_on(sandbox_port)


def test_trusting_every_proxy_is_refused_with_the_reason(tmp_path: Path) -> None:
    code, output, _ = serve(tmp_path, {"FORWARDED_ALLOW_IPS": "*"}, "--sandbox")
    assert code == 1 and "FORWARDED_ALLOW_IPS" in output and "own address" in output


def test_serve_believes_forwarded_headers_from_the_listed_proxies_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    code, output, _ = serve(tmp_path, {"FORWARDED_ALLOW_IPS": "10.0.0.5,10.1.0.0/16"}, "--sandbox")
    assert code == 0, output
    [options] = calls
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == "10.0.0.5,10.1.0.0/16"
