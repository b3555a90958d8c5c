"""Starting, watching and stopping the processes a benchmark measures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import timeit
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


@contextmanager
def running(argv: list[str], env: Mapping[str, str], log: Path, port: int | None = None) -> Iterator[psutil.Process]:
    """A process group of its own, so that stopping it stops its children (Dramatiq's worker processes)."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
            argv, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if port is not None:
            wait_for_port(port, process)
        yield psutil.Process(process.pid)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the leader alone, as an orchestrator sends it: Dramatiq's main process passes it on
    to its worker processes, and a worker signalled twice (by the group, then by its parent) exits at
    once, mid-message. Whatever of the group outlives the leader's timeout is killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the whole group is gone
    process.wait(STOP_TIMEOUT)


def uvicorn(target: str, port: int, factory: bool = False) -> list[str]:
    """The same server settings for every variant: one process, uvloop, httptools, no access log."""
    argv = [str(BIN / "python"), "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return argv + (["--factory"] if factory else [])


def tree(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time of a process and all its descendants alive now."""
    total = 0.0
    for member in tree(process):
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy so far (user, nice, system, interrupts): all the
    processes, the worker's, PostgreSQL's, Redis's, the sandbox's and the bench's own."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq


def peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of the process's resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc (not Linux?)")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def python_speed() -> float:
    """Microseconds this machine takes for one fixed piece of pure Python (best of 5): the CPU figures of
    runs on different machines, or of one shared machine at different times, compare through it."""
    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
