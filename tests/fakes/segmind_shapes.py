"""The answer shapes of the Segmind fake (tests/fakes/segmind.py) and the scripts that pick
them: bodies, outputs, headers; `JobScript` (how a job answers) and `Injection` (a scripted
answer).

No server state here: each function builds a shape PLATFORM.md documents ("Segmind", "More
shapes"), so the server module only decides *which* shape a request gets.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Final, Literal, get_args

FailureForm = Literal["error", "error_message"]
OutputForm = Literal["nested", "pixelflow"]
Transfer = Literal["length", "chunked"]
RateLimitHeaders = Literal["retry-after", "reset-at", "both", "none"]
ResetAtFormat = Literal["iso", "epoch"]

FAILURE_FORMS: Final[tuple[str, ...]] = get_args(FailureForm)
OUTPUT_FORMS: Final[tuple[str, ...]] = get_args(OutputForm)
TRANSFERS: Final[tuple[str, ...]] = get_args(Transfer)
RATE_LIMIT_HEADERS: Final[tuple[str, ...]] = get_args(RateLimitHeaders)
RESET_AT_FORMATS: Final[tuple[str, ...]] = get_args(ResetAtFormat)

FAILURE_CODE = "WORKFLOW_EXECUTION_FAILED"
"""`code` of an `error_message` failure (Segmind's codes are not documented)."""
AUDIO_KEYNAME = "ElevenLabs TTS"
"""The keyname of the audio entry in a PixelFlow output."""

_STANDARD_ERRORS: Final[Mapping[int, str]] = {
    400: "Bad request",
    401: "Invalid API key",
    403: "Forbidden",
    404: "Not found",
    406: "Insufficient credits",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    504: "Gateway timeout",
}


def standard_error(status: int) -> str:
    """The `error` message the fake uses for `status` (Segmind's wording is undocumented)."""
    if status in _STANDARD_ERRORS:
        return _STANDARD_ERRORS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def fake_mp3(tag: bytes = b"") -> bytes:
    """Small bytes that pass for an MP3 file (mutagen reads and tags them): an ID3v2.4 tag
    whose body is `tag`, then three MPEG-1 Layer III frames (32 kbit/s, 44.1 kHz, 104
    bytes each) whose payload starts with a digest of `tag` (bytes below 0x80, so no
    false frame sync).

    Distinct tags give distinct bytes, even with the ID3 tag stripped or rewritten (as
    the bot's provenance tags do), so a test can tell which job's audio it received.
    """
    size = len(tag)
    if size >= 1 << 28:
        raise ValueError("tag too large for an ID3 header")
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    mark = bytes(b & 0x7F for b in hashlib.sha256(tag).digest())
    frame = b"\xff\xfb\x10\xc4" + mark + bytes(100 - len(mark))
    return b"ID3\x04\x00\x00" + syncsafe + tag + frame * 3


def fake_png() -> bytes:
    """A valid 1x1 grey PNG: the non-audio file a PixelFlow output points at first."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # filter byte 0, one grey pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def failure_fields(form: FailureForm, reason: str, request_id: str) -> dict[str, object]:
    """The fields a FAILED poll carries besides `status`: `error` as a string, or
    `error_message` as an object whose `message` is the reason."""
    if form == "error":
        return {"error": reason}
    return {
        "error_message": {
            "message": reason,
            "code": FAILURE_CODE,
            "details": {"request_id": request_id},
        }
    }


def nested_output(request_id: str, audio_url: str) -> str:
    """The fake's original `output`: a JSON string of nested node outputs, URL deep inside."""
    return json.dumps(
        {
            "Voice Clone": {"voice_id": f"voice-{request_id[:12]}"},
            "Text To Speech": {"output": {"audio_url": audio_url}},
        }
    )


def pixelflow_output(request_id: str, audio_url: str, image_url: str) -> str:
    """The documented PixelFlow `output`: a JSON string holding a list of
    `{"keyname", "value": {"data", "type"}}`, with an image and a text entry before the
    audio, so a client that takes the first URL gets a PNG instead."""
    entries = [
        {"keyname": "Voice Preview", "value": {"data": image_url, "type": "image"}},
        {"keyname": "Voice Clone", "value": {"data": f"voice-{request_id[:12]}", "type": "text"}},
        {"keyname": AUDIO_KEYNAME, "value": {"data": audio_url, "type": "audio"}},
    ]
    return json.dumps(entries)


def reset_at_header(when: float, fmt: ResetAtFormat) -> str:
    """`x-rate-limit-reset-at-utc` for the Unix time `when`, rounded *up* to the millisecond
    so that a client waiting until the stated time is never refused for being early."""
    when = math.ceil(when * 1000) / 1000
    if fmt == "epoch":
        return f"{when:.3f}"
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def split_pieces(body: bytes, pieces: int) -> list[bytes]:
    """`body` in `pieces` non-empty parts of near-equal size (fewer if the body is shorter)."""
    count = max(1, min(pieces, len(body)))
    bounds = [len(body) * i // count for i in range(count + 1)]
    return [body[bounds[i] : bounds[i + 1]] for i in range(count)]


class _Default(enum.Enum):
    DEFAULT = "DEFAULT"


DEFAULT: Final = _Default.DEFAULT
"""Sentinel for `JobScript.output`: build the usual output holding the audio URL."""


@dataclass
class JobScript:
    """How one job behaves.

    By polls (`duration` None): the n-th poll that sees the voice sample fetched answers
    `statuses[min(n, len - 1)]`, so the last status repeats: `("QUEUED", "PROCESSING")` never
    completes. By time (`duration` set; `statuses` ignored): once the sample is fetched, polls
    answer QUEUED until `queued_for` s after creation, then PROCESSING, and from `duration` s
    after creation COMPLETED (FAILED if `fails`). "COMPLETED" answers `output`, "FAILED"
    answers `failure_reason` in `failure_form`, any other string is answered verbatim.
    """

    statuses: Sequence[str] = ("QUEUED", "PROCESSING", "COMPLETED")
    failure_reason: str = "Voice cloning failed: the sample is too short"
    failure_form: FailureForm = "error"
    """"error": `"error": reason`; "error_message": `"error_message": {"message": reason,
    "code": ..., "details": ...}`. Applies to every FAILED of the job (sample failures too)."""
    output: object = DEFAULT
    """The raw `output` field of COMPLETED: a str is sent as is, any other JSON value as a
    JSON value (not a string). DEFAULT: built per `output_form`."""
    output_form: OutputForm = "nested"
    """"nested": a JSON string of nested node outputs with the URL. "pixelflow": a JSON string
    of `[{"keyname", "value": {"data", "type"}}]`: an image (served by the fake), a text, then
    the audio under keyname "ElevenLabs TTS"."""
    processing_output_empty: bool = False
    """QUEUED and PROCESSING answers carry `"output": ""`."""
    duration: float | None = None
    """Seconds from creation to the end; `FakeSegmind.duration_for` replaces it for jobs
    on `default_script`."""
    queued_for: float = 0.0
    fails: bool = False
    """Timed jobs only: end FAILED instead of COMPLETED."""
    audio: bytes | None = None
    """None: `fake_mp3(request_id.encode())`, distinct per job."""
    audio_content_type: str = "audio/mpeg"
    audio_url: str | None = None
    """None: `{base_url}/files/{request_id}.mp3`, served by the fake."""
    download_delay: float = 0.0
    poll_delay: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.statuses, str) or not self.statuses:
            raise ValueError("statuses must be a non-empty sequence of status strings")
        if self.failure_form not in FAILURE_FORMS:
            raise ValueError(f"failure_form must be one of {FAILURE_FORMS}")
        if self.output_form not in OUTPUT_FORMS:
            raise ValueError(f"output_form must be one of {OUTPUT_FORMS}")
        if (self.duration is not None and self.duration < 0) or self.queued_for < 0:
            raise ValueError("duration and queued_for must be >= 0")


@dataclass
class Injection:
    """A scripted answer that replaces the normal handling of the next `times` requests of a
    kind. `body`: dict -> JSON, str/bytes -> as is, None -> `{"error": <standard message>}`.
    `drop` closes the connection without an answer (tests/fakes/segmind.py's docstring says
    what the aiohttp client sees). `create_job` (submit only) creates the job before answering, for
    ambiguous failures where the client cannot know the job exists. `pieces`, `piece_pause`,
    `transfer`: None uses the fake's."""

    status: int = 500
    body: bytes | str | Mapping[str, object] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    times: int = 1
    delay: float = 0.0
    drop: bool = False
    create_job: bool = False
    pieces: int | None = None
    piece_pause: float | None = None
    transfer: Transfer | None = None

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError("times must be >= 1")
        if self.pieces is not None and self.pieces < 1:
            raise ValueError("pieces must be >= 1")
        if self.piece_pause is not None and self.piece_pause < 0:
            raise ValueError("piece_pause must be >= 0")
        if self.transfer is not None and self.transfer not in TRANSFERS:
            raise ValueError(f"transfer must be one of {TRANSFERS}")
