"""The fake Segmind in its own process, so its CPU is never counted as the client's."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
READY = "READY "


def loopback_env() -> dict[str, str]:
    """The environment for child processes: proxies never apply to loopback."""
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@contextmanager
def fake_segmind(*, startup_timeout: float = 20.0) -> Iterator[str]:
    """Start `python -m tests.fakes.segmind --port 0`, yield its base URL, always stop it."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.segmind", "--port", "0"],
            cwd=ROOT,
            env=loopback_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            yield _wait_ready(proc, startup_timeout, stderr)
        finally:
            _stop(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"the fake exited with {proc.returncode}: {_tail(stderr)}")


def _tail(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")[-2000:].strip()


def _wait_ready(proc: subprocess.Popen[str], timeout: float, stderr: IO[bytes]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = proc.stdout.readline()
            if line.startswith(READY):
                return line[len(READY) :].strip()
            if not line:  # EOF: the fake died
                proc.wait()
                raise RuntimeError(f"the fake exited with {proc.returncode}: {_tail(stderr)}")
    raise RuntimeError(f"the fake did not print READY within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
