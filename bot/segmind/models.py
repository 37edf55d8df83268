"""Segmind's answers as typed values, parsed defensively.

Every parser here either returns a value or raises `MalformedResponseError` (or its
subclass `NoAudioInOutputError`); no input can make them raise anything else.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import MalformedResponseError, NoAudioInOutputError, sanitize_detail

AUDIO_EXTENSIONS = (".mp3", ".wav", ".ogg", ".oga", ".opus", ".m4a", ".flac", ".aac", ".webm")
_MAX_NODES = 10_000
_MAX_DEPTH = 32


class JobStatus(enum.Enum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


@dataclass(frozen=True, slots=True)
class JobHandle:
    """What we need to find a submitted job again (also after a restart)."""

    request_id: str
    poll_url: str


@dataclass(frozen=True, slots=True)
class PollResult:
    status: JobStatus
    output: object = None  # COMPLETED only: the raw `output` (JSON string or object)
    error: str = ""  # FAILED only: Segmind's reason, sanitized


def _require_object(body: object, what: str) -> dict[str, object]:
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{what} is not a JSON object")
    return body


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def parse_submit(body: object) -> JobHandle:
    data = _require_object(body, "submit answer")
    poll_url = data.get("poll_url")
    if not isinstance(poll_url, str) or not _is_http_url(poll_url):
        raise MalformedResponseError("submit answer has no usable poll_url")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        request_id = urlsplit(poll_url).path.rstrip("/").rsplit("/", 1)[-1]
    if not request_id:
        raise MalformedResponseError("submit answer has no request_id")
    return JobHandle(request_id=request_id[:200], poll_url=poll_url)


def parse_poll(body: object) -> PollResult:
    data = _require_object(body, "status answer")
    raw_status = data.get("status")
    if not isinstance(raw_status, str):
        raise MalformedResponseError("status answer has no status")
    try:
        status = JobStatus(raw_status.strip().upper())
    except ValueError:
        raise MalformedResponseError(
            f"unknown job status {sanitize_detail(raw_status)[:40]!r}"
        ) from None
    if status is JobStatus.COMPLETED:
        if data.get("output") is None:
            raise NoAudioInOutputError("COMPLETED without output")
        return PollResult(status, output=data["output"])
    if status is JobStatus.FAILED:
        reason: object = None
        for key in ("error", "error_message", "message", "detail"):
            if data.get(key):
                reason = data[key]
                break
        return PollResult(status, error=sanitize_detail(reason) if reason else "")
    return PollResult(status)


def _maybe_json(text: str) -> object:
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return text
    return text


def _url_score(url: str, key: str, kind: str) -> int:
    path = urlsplit(url).path.lower()
    score = 1
    # PixelFlow's documented form: {"keyname": ..., "value": {"data": URL, "type": ...}}.
    if "audio" in kind:
        score += 8
    elif kind:
        score -= 3
    if path.endswith(AUDIO_EXTENSIONS):
        score += 4
    lowered = key.lower()
    if any(word in lowered for word in ("audio", "speech", "voice", "sound", "tts")):
        score += 2
    if path.endswith((".png", ".jpg", ".jpeg", ".gif", ".webp", ".json", ".txt", ".html")):
        score -= 1
    return score


def find_audio_url(output: object, *, exclude: Iterable[str] = ()) -> str:
    """Find the audio URL anywhere in a workflow's `output`.

    The node names inside `output` are not documented, so walk everything (strings that
    hold JSON included), score each http(s) URL by how audio-like it looks (an entry whose
    declared `type` is audio wins), and take the best; `exclude` drops URLs we sent
    ourselves (the voice sample may be echoed back).
    """
    excluded = set(exclude)
    best: tuple[int, int, str] | None = None
    order = 0
    stack: list[tuple[object, str, str, int]] = [(output, "", "", 0)]
    seen = 0
    while stack and seen < _MAX_NODES:
        node, key, kind, depth = stack.pop()
        seen += 1
        if isinstance(node, str):
            parsed = _maybe_json(node) if depth < _MAX_DEPTH else node
            if not isinstance(parsed, str):
                stack.append((parsed, key, kind, depth + 1))
                continue
            url = parsed.strip()
            if _is_http_url(url) and url not in excluded:
                order += 1
                candidate = (_url_score(url, key, kind), -order, url)
                if best is None or candidate > best:
                    best = candidate
        elif depth >= _MAX_DEPTH:
            continue
        elif isinstance(node, dict):
            declared = node.get("type")
            child_kind = declared.lower()[:40] if isinstance(declared, str) else kind
            # Reverse so the walk meets entries in document order.
            for child_key, child in reversed(list(node.items())):
                stack.append((child, f"{key}.{child_key}", child_kind, depth + 1))
        elif isinstance(node, list | tuple):
            for child in reversed(node):
                stack.append((child, key, kind, depth + 1))
    if best is None:
        raise NoAudioInOutputError("no audio URL in the result")
    return best[2]
