"""The chaos suite drives real processes with the end-to-end tests' helpers."""

from __future__ import annotations

from tests.e2e.conftest import processes, pytest_runtest_makereport  # noqa: F401  (fixtures shared by import)
