"""The `smtp` backend against a real SMTP server in-process (aiosmtpd), STARTTLS with a test CA (trustme).

Also the at-most-once rule end to end through `usecases.send_mail.send_reset_email`: a server that drops the
connection before accepting gets the mail again on the retry; one that drops after accepting does not.
"""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from adapters.db import outbox
from adapters.db.attempts import create_attempt
from adapters.db.models import OutgoingMail
from adapters.db.users import add_user
from adapters.mail.backends import make_mailer
from adapters.mail.compose import compose
from adapters.mail.smtp import MailDeliveryError, SmtpMailer, parse_smtp_url
from config import ConfigError, Settings
from domain.flow import build_recovery_flow
from tests.conftest import app_database_url, free_port
from tests.fakes import make_deps
from usecases.deps import Deps
from usecases.send_mail import send_reset_email

LINK = "https://app.example.com/reset?token=tok_AbC-123_xyz"


class Recorder:
    """Accepts every message; `drop` = "data" closes the connection instead of answering the message,
    "quit" accepts the message and then drops the connection at QUIT."""

    def __init__(self, drop: str | None = None) -> None:
        self.messages: list[bytes] = []
        self.drop = drop
        self.drops = 0

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.drop == "data":
            self.drops += 1
            assert server.transport is not None
            server.transport.abort()  # gone before "250": the message was never accepted
            return "421 closing"
        assert isinstance(envelope.content, bytes)
        self.messages.append(envelope.content)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.drop == "quit":
            self.drops += 1
            assert server.transport is not None
            server.transport.abort()
        return "221 Bye"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


class Server:
    def __init__(self, handler: Recorder, **options: Any) -> None:
        self.handler = handler
        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **options)

    def url(self, userinfo: str = "", query: str = "") -> str:
        return f"smtp://{userinfo}127.0.0.1:{self.port}{query}"


@pytest.fixture
def servers(ca: trustme.CA) -> Iterator[Any]:
    started: list[Server] = []

    def start(
        drop: str | None = None, starttls: bool = True, handler: Recorder | None = None, **options: Any
    ) -> Server:
        if starttls:
            options.update(tls_context=server_tls(ca), require_starttls=True)
        server = Server(handler or Recorder(drop), **options)
        server.controller.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.controller.stop()


def message(to: str = "ada@example.com", mail_id: str = "mail-1") -> EmailMessage:
    return compose("Account recovery <no-reply@example.com>", to, LINK, 900, mail_id)


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


# --- SMTP_URL -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit", "starttls", "user", "password"),
    [
        ("smtp://mail.example.com", "mail.example.com", 587, False, True, None, None),
        ("smtp://mail.example.com:2525", "mail.example.com", 2525, False, True, None, None),
        ("smtps://u:p@mail.example.com", "mail.example.com", 465, True, False, "u", "p"),
        ("smtp://me%40corp:p%3Aw@mx:25", "mx", 25, False, True, "me@corp", "p:w"),
        ("smtp://localhost:1025?tls=none", "localhost", 1025, False, False, None, None),
    ],
)
def test_parse_smtp_url(
    url: str, host: str, port: int, implicit: bool, starttls: bool, user: str | None, password: str | None
) -> None:
    target = parse_smtp_url(url)
    assert (target.host, target.port, target.implicit_tls, target.starttls) == (host, port, implicit, starttls)
    assert (target.username, target.password) == (user, password)


@pytest.mark.parametrize("url", ["http://mail", "smtp://", "smtp://mx?tls=maybe"])
def test_parse_smtp_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        parse_smtp_url(url)


@pytest.mark.parametrize("url", ["smtp://mx.example.com?tls=maybe", "smtp://:25"])
def test_bad_smtp_url_stops_start_up(url: str) -> None:
    with pytest.raises(ConfigError, match="^SMTP_URL: "):
        Settings.from_env({"MAIL_BACKEND": "smtp", "SMTP_URL": url})


def test_make_mailer_builds_the_smtp_backend() -> None:
    assert isinstance(make_mailer("smtp", "mail", "smtp://mx.example.com"), SmtpMailer)


# --- delivery -----------------------------------------------------------------------------------------


def test_delivers_over_starttls_with_both_parts(servers: Any, client_tls: ssl.SSLContext) -> None:
    server = servers()
    SmtpMailer(server.url(), timeout=5, ssl_context=client_tls).send(message())
    assert len(server.handler.messages) == 1
    assert server.handler.messages[0].count(LINK.encode()) == 2  # whole, not quoted-printable: readable in raw
    received = parsed(server.handler.messages[0])
    assert received["Subject"] == "Reset your password"
    assert received["To"] == "ada@example.com"
    plain = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert plain is not None and html is not None
    assert LINK in plain.get_content() and LINK in html.get_content()
    text = (plain.get_content() + html.get_content()).lower()
    for secret in ("deepfake", "liveness", "recogni", "reason", "score", "biometric"):
        assert secret not in text


def test_login_with_the_url_credentials(servers: Any, client_tls: ssl.SSLContext) -> None:
    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3:cret")

    server = servers(authenticator=authenticator, auth_required=True)
    SmtpMailer(server.url("mailer:s3%3Acret@"), timeout=5, ssl_context=client_tls).send(message())
    assert seen == [(b"mailer", b"s3:cret")]
    assert len(server.handler.messages) == 1
    with pytest.raises(MailDeliveryError):
        SmtpMailer(server.url("mailer:wrong@"), timeout=5, ssl_context=client_tls).send(message())
    assert len(server.handler.messages) == 1


def test_never_falls_back_to_plain_text(servers: Any, client_tls: ssl.SSLContext) -> None:
    server = servers(starttls=False)
    with pytest.raises(MailDeliveryError):
        SmtpMailer(server.url(), timeout=5, ssl_context=client_tls).send(message())
    assert server.handler.messages == []


def test_plain_text_only_when_asked(servers: Any) -> None:
    server = servers(starttls=False)
    SmtpMailer(server.url(query="?tls=none"), timeout=5).send(message())
    assert len(server.handler.messages) == 1


def test_untrusted_certificate_is_refused(servers: Any) -> None:
    server = servers()
    with pytest.raises(MailDeliveryError):
        SmtpMailer(server.url(), timeout=5).send(message())  # the system trust store does not know the test CA
    assert server.handler.messages == []


def test_unreachable_server_raises() -> None:
    with pytest.raises(MailDeliveryError, match="connection"):
        SmtpMailer(f"smtp://127.0.0.1:{free_port()}", timeout=2).send(message())


def test_refused_recipient_error_does_not_quote_the_address(servers: Any, client_tls: ssl.SSLContext) -> None:
    class Refuser(Recorder):
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
            return f"550 no such user {address}"

    server = servers(handler=Refuser())
    with pytest.raises(MailDeliveryError) as caught:
        SmtpMailer(server.url(), timeout=5, ssl_context=client_tls).send(message())
    assert "ada@example.com" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# --- at most once, through the mail actor's function ----------------------------------------------------


def queued_mail(tmp_path: Path, mailer: SmtpMailer) -> tuple[Deps, str]:
    deps, _ = make_deps(app_database_url(tmp_path), str(tmp_path / "mail"))
    deps.mailer = mailer
    now = datetime.now(UTC)
    with deps.db.transaction() as session:
        user = add_user(session, "ada@example.com", user_id="ada")
        create_attempt(session, "att1", "sess_att1", build_recovery_flow(), "https://x", now)
        mail_id = outbox.issue_reset(session, "att1", user, now, 900, lambda token: f"{LINK}{token}")
    return deps, mail_id


def mail_row(deps: Deps, mail_id: str) -> OutgoingMail:
    with deps.db.reading() as session:
        row = session.get(OutgoingMail, mail_id)
        assert row is not None
        return row


def test_sent_once_even_when_the_actor_runs_twice(tmp_path: Path, servers: Any, client_tls: ssl.SSLContext) -> None:
    server = servers()
    deps, mail_id = queued_mail(tmp_path, SmtpMailer(server.url(), timeout=5, ssl_context=client_tls))
    assert send_reset_email(deps, mail_id) is True
    assert send_reset_email(deps, mail_id) is False
    assert len(server.handler.messages) == 1
    row = mail_row(deps, mail_id)
    assert row.status == outbox.SENT and row.reset_url is None


def test_dropped_before_acceptance_is_retried_and_delivered_once(
    tmp_path: Path, servers: Any, client_tls: ssl.SSLContext
) -> None:
    flaky = servers(drop="data")
    deps, mail_id = queued_mail(tmp_path, SmtpMailer(flaky.url(), timeout=5, ssl_context=client_tls))
    with pytest.raises(MailDeliveryError):
        send_reset_email(deps, mail_id)  # Dramatiq would retry the message after this
    assert flaky.handler.drops == 1 and flaky.handler.messages == []
    assert mail_row(deps, mail_id).status == outbox.PENDING  # released, link kept for the retry

    good = servers()
    deps.mailer = SmtpMailer(good.url(), timeout=5, ssl_context=client_tls)
    assert send_reset_email(deps, mail_id) is True
    assert send_reset_email(deps, mail_id) is False
    assert len(good.handler.messages) == 1
    assert mail_row(deps, mail_id).status == outbox.SENT


def test_dropped_after_acceptance_counts_as_sent(tmp_path: Path, servers: Any, client_tls: ssl.SSLContext) -> None:
    server = servers(drop="quit")
    deps, mail_id = queued_mail(tmp_path, SmtpMailer(server.url(), timeout=5, ssl_context=client_tls))
    assert send_reset_email(deps, mail_id) is True
    assert server.handler.drops == 1
    assert send_reset_email(deps, mail_id) is False
    assert len(server.handler.messages) == 1
    assert mail_row(deps, mail_id).status == outbox.SENT


def test_crash_after_sending_does_not_send_again(
    tmp_path: Path, servers: Any, client_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies between the send and recording it: the mail stays `sending` and is never resent."""
    server = servers()
    deps, mail_id = queued_mail(tmp_path, SmtpMailer(server.url(), timeout=5, ssl_context=client_tls))

    def crash(*args: Any) -> None:
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "mark_sent", crash)
        with pytest.raises(SystemExit):
            send_reset_email(deps, mail_id)
    assert mail_row(deps, mail_id).status == outbox.SENDING
    assert send_reset_email(deps, mail_id) is False  # the retry, or the reconciler, finds it claimed
    assert len(server.handler.messages) == 1
