"""The pages' icon: served from this origin, so the page's CSP (img-src 'self') lets the browser show it."""

from __future__ import annotations

import struct
from pathlib import Path

from starlette.testclient import TestClient

from config import Settings
from receiver.app import create_app
from tests.fakes import make_services


def test_the_icon_is_served_and_the_pages_point_to_it(tmp_path: Path) -> None:
    client = TestClient(create_app(make_services(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite"))))
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    reserved, kind, count = struct.unpack("<HHH", icon.content[:6])
    assert (reserved, kind) == (0, 1) and count >= 1  # an ICO directory, as browsers expect at this path
    sizes = {icon.content[6 + 16 * n] for n in range(count)}
    assert {16, 32} <= sizes
    for path in ("/recover", "/reset"):
        page = client.get(path)
        assert '<link rel="icon" href="/favicon.ico"' in page.text
        assert "img-src 'self'" in page.headers["content-security-policy"]
