"""The hosted verification page at `clientSecret.url`: a person chooses what the camera "sees".

Server-rendered, no scripts and no external assets, so it works inside any iframe and in a
browser test without network access. It must stay frameable: no X-Frame-Options, no frame-ancestors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from sandbox.jsonio import BadRequest, read_body
from sandbox.report import IDENTITY_NONE, IDENTITY_UNKNOWN
from sandbox.state import FINISHED, BadChoice, SandboxState, SessionFinished, SessionNotFound

MAX_FORM_BYTES = 16_384
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
LIVENESS_LABELS = (("live", "A live person"), ("deepfake", "A deepfake or replayed video"), ("none", "No face"))

STYLE = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f6f8;color:#1b1f24}
main{max-width:34rem;margin:1.5rem auto;padding:1.5rem;background:#fff;border-radius:12px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.4rem;margin:0 0 .5rem}
.note{background:#fff7d6;border-left:4px solid #b58900;padding:.5rem .75rem;margin:0 0 1rem}
fieldset{border:1px solid #c9ced6;border-radius:8px;margin:0 0 1rem;padding:.75rem 1rem}
legend{font-weight:600;padding:0 .25rem}
label{display:block;margin:.25rem 0}
select{font:inherit;width:100%;padding:.4rem;border:1px solid #6b7280;border-radius:6px}
.check{display:flex;gap:.5rem;align-items:flex-start}
.check input{margin-top:.35rem}
.actions{display:flex;gap:.75rem;flex-wrap:wrap}
button{font:inherit;padding:.6rem 1.2rem;border-radius:6px;border:2px solid #1d4ed8;cursor:pointer}
#finish{background:#1d4ed8;color:#fff}
#cancel{background:#fff;color:#1d4ed8}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
"""


def page_routes(state: SandboxState) -> list[Route]:
    async def show(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        try:
            session = state.open_session(session_id)["session"]
        except SessionNotFound:
            return _message(404, "Link not valid", "This verification link is not valid.")
        if session["status"] in FINISHED:
            return _message(
                200, "Already finished", "This verification has already finished. You can return to the app."
            )
        action = f"{request.scope.get('root_path', '')}/s/{session_id}"
        return _html(200, "Verify it's you", render_form(action, state.enrollments()))

    async def finish(request: Request) -> Response:
        return await _complete(request, cancelled=False)

    async def cancel(request: Request) -> Response:
        return await _complete(request, cancelled=True)

    async def _complete(request: Request, cancelled: bool) -> Response:
        try:
            form = parse_qs((await read_body(request, MAX_FORM_BYTES)).decode("utf-8", "replace"))
        except BadRequest as exc:
            return _message(exc.status, "Not accepted", str(exc))
        try:
            if cancelled:
                state.complete_session(request.path_params["session_id"], status="incomplete")
                return _message(200, "Verification cancelled", "Verification cancelled, you can return to the app.")
            state.complete_session(
                request.path_params["session_id"],
                identity=_field(form, "identity"),
                liveness=_field(form, "liveness") or "live",
                confirm_email="confirm_email" in form,
            )
        except SessionNotFound:
            return _message(404, "Link not valid", "This verification link is not valid.")
        except SessionFinished:
            return _message(
                409, "Already finished", "This verification has already finished. You can return to the app."
            )
        except BadChoice as exc:
            return _message(400, "Not accepted", str(exc))
        return _message(200, "Verification finished", "Verification finished, you can return to the app.")

    return [
        Route("/s/{session_id}", show, methods=["GET"]),
        Route("/s/{session_id}/finish", finish, methods=["POST"]),
        Route("/s/{session_id}/cancel", cancel, methods=["POST"]),
    ]


def _field(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def render_form(action: str, enrollments: Sequence[Mapping[str, Any]]) -> str:
    """The choices form; `action` is the session page's path, the buttons post to its /finish and /cancel."""
    people = [(p["email"], f"{p['name']} ({p['email']})") for p in enrollments]
    identities = [*people, (IDENTITY_UNKNOWN, "An unknown face"), (IDENTITY_NONE, "No face")]
    return f"""<p class="note">FaceSign <strong>sandbox</strong>: no camera is used. Choose what the camera
would see, then finish the verification.</p>
<p class="note" id="lock-hint">To see the account owner's side: pick a person and a deepfake three times
(three separate recoveries). Their recovery is then paused, so even a live attempt is refused, and the emails
they were sent are in the service's mail folder (<code>mail/</code> with <code>make run</code>).</p>
<form method="post" action="{escape(action)}/finish">
<fieldset><legend>Face recognition</legend>
<label for="identity">Who does the camera see?</label>
<select id="identity" name="identity">{_options(identities)}</select>
</fieldset>
<fieldset><legend>Liveness</legend>
<label for="liveness">Is it a live person?</label>
<select id="liveness" name="liveness">{_options(LIVENESS_LABELS)}</select>
</fieldset>
<fieldset><legend>Conversation</legend>
<div class="check"><input type="checkbox" id="confirm_email" name="confirm_email" value="yes" checked>
<label for="confirm_email">The person states the email address of the account</label></div>
</fieldset>
<div class="actions">
<button type="submit" id="finish">Finish verification</button>
<button type="submit" id="cancel" formaction="{escape(action)}/cancel" formnovalidate>Cancel</button>
</div>
</form>"""


def _options(choices: Sequence[tuple[str, str]]) -> str:
    return "".join(f'<option value="{escape(value)}">{escape(label)}</option>' for value, label in choices)


def _message(status: int, title: str, text: str) -> HTMLResponse:
    return _html(status, title, f'<p role="status">{escape(text)}</p>')


def _html(status: int, title: str, body: str) -> HTMLResponse:
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · FaceSign sandbox</title>
<style>{STYLE}</style>
</head>
<body><main>
<h1>{escape(title)}</h1>
{body}
</main></body>
</html>
"""
    return HTMLResponse(page, status_code=status, headers=HEADERS)
