"""The pages' HTML, CSS and JS, shipped as package data, and the one loader for them."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from string import Template


@cache
def template(name: str) -> Template:
    return Template(files(__name__).joinpath(name).read_text(encoding="utf-8"))


@cache
def asset(name: str) -> bytes:
    return files(__name__).joinpath(name).read_bytes()
