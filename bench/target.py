"""Where a scenario sends its jobs. Plain strings from the command line, so a scenario
process imports nothing of the fake (its RSS stays the implementation's own)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    workflow_url: str
    sample_url: str
    api_key: str

    def payload(self, index: int) -> dict[str, str]:
        """The workflow's inputs for job `index`, as Segmind's API reference names them."""
        return {"voice_samples": self.sample_url, "text": f"text {index}", "Language_ISO": "en"}


JobFn = Callable[[int], Awaitable[bytes]]
"""Runs job `index` to the end and returns its audio bytes (or raises)."""

Implementation = Callable[[Target, int, float], AbstractAsyncContextManager[JobFn]]
"""`impl(target, jobs, poll_interval)`: set up (outside the measured window), yield the job
function, tear down."""
