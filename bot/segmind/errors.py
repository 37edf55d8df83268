"""Typed failures of a Segmind job.

Each class carries a message that is safe to show a user: fixed wording plus, where
useful, Segmind's own detail after `sanitize_detail` (no key, no HTML, bounded length).
The Discord layer picks its reply by class; operators get `str(error)` and `request_id`.
"""

from __future__ import annotations

import re
from typing import ClassVar

MAX_DETAIL_CHARS = 300
_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")


_REASON_KEYS = ("message", "error", "detail", "msg", "reason", "description")


def reason_text(value: object, _depth: int = 0) -> str:
    """The human text in a reason Segmind sent as a string, an object such as
    `{"message": ...}` (its `error_message` form), or a list of those."""
    if isinstance(value, str):
        return value
    if _depth > 4:
        return ""
    if isinstance(value, dict):
        for key in _REASON_KEYS:
            text = reason_text(value.get(key), _depth + 1)
            if text.strip():
                return text
        return ""
    if isinstance(value, list | tuple):
        parts = (reason_text(item, _depth + 1) for item in value[:5])
        return "; ".join(part for part in parts if part.strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def sanitize_detail(text: object, *secrets: str) -> str:
    """Make any server-provided text safe for a user and a log line (plain text, never a
    Python repr of an object)."""
    value = reason_text(text)
    lowered = value.lstrip()[:200].lower()
    if lowered.startswith(("<!doctype", "<html", "<?xml", "<head", "<body")):
        return ""
    for secret in secrets:
        if secret:
            value = value.replace(secret, "[redacted]")
    value = _TAG.sub(" ", value)
    value = "".join(ch if ch.isprintable() else " " for ch in value)
    value = _SPACE.sub(" ", value).strip()
    if len(value) > MAX_DETAIL_CHARS:
        value = value[: MAX_DETAIL_CHARS - 1].rstrip() + "…"
    return value


class SegmindError(Exception):
    """Base of every failure the client and runner raise."""

    summary: ClassVar[str] = "The voice service failed."
    status: ClassVar[int | None] = None

    def __init__(
        self,
        detail: str = "",
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.summary} ({self.detail})" if self.detail else self.summary

    def __str__(self) -> str:
        return self.message


class SegmindHTTPError(SegmindError):
    """Segmind answered with an error status."""

    summary = "The voice service returned an error."


class BadRequestError(SegmindHTTPError):
    status = 400
    summary = "The voice service rejected the request."


class AuthenticationError(SegmindHTTPError):
    status = 401
    summary = "The voice service rejected the bot's API key."


class PermissionDeniedError(SegmindHTTPError):
    status = 403
    summary = "The bot's API key is not allowed to use this workflow."


class WorkflowNotFoundError(SegmindHTTPError):
    status = 404
    summary = "The voice workflow (or the job) was not found."


class InsufficientCreditsError(SegmindHTTPError):
    status = 406
    summary = "The Segmind account is out of credits."


class RateLimitedError(SegmindHTTPError):
    status = 429
    summary = "The voice service is busy (rate limited)."


class ServerError(SegmindHTTPError):
    status = 500
    summary = "The voice service had an internal error."


class BadGatewayError(SegmindHTTPError):
    status = 502
    summary = "The voice service is unreachable right now (bad gateway)."


class ServiceUnavailableError(SegmindHTTPError):
    status = 503
    summary = "The voice service is temporarily unavailable."


class GatewayTimeoutError(SegmindHTTPError):
    status = 504
    summary = "The voice service timed out."


class UnexpectedStatusError(SegmindHTTPError):
    summary = "The voice service answered with an unexpected status."

    def __init__(
        self,
        http_status: int,
        detail: str = "",
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        text = f"HTTP {http_status}" + (f": {detail}" if detail else "")
        super().__init__(text, request_id=request_id, retry_after=retry_after)


STATUS_ERRORS: dict[int, type[SegmindHTTPError]] = {
    cls.status: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        WorkflowNotFoundError,
        InsufficientCreditsError,
        RateLimitedError,
        ServerError,
        BadGatewayError,
        ServiceUnavailableError,
        GatewayTimeoutError,
    )
    if cls.status is not None
}


def error_for_status(
    status: int,
    detail: str = "",
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> SegmindHTTPError:
    """Map an HTTP error status to its typed error (never raises)."""
    cls = STATUS_ERRORS.get(status)
    if cls is None:
        return UnexpectedStatusError(status, detail, request_id=request_id, retry_after=retry_after)
    return cls(detail, request_id=request_id, retry_after=retry_after)


class JobFailedError(SegmindError):
    """The job ran and Segmind reported FAILED; `detail` is its reason."""

    summary = "The voice service could not make the audio."


class JobTimeoutError(SegmindError):
    """The per-job deadline passed. The job may still finish (and be billed) on Segmind."""

    summary = "The voice service took too long."


class MalformedResponseError(SegmindError):
    """An answer we cannot use: not JSON, missing fields, unknown status, no audio URL."""

    summary = "The voice service sent an answer the bot could not understand."


class NoAudioInOutputError(MalformedResponseError):
    summary = "The voice service finished but its result holds no audio."


class SegmindConnectionError(SegmindError):
    """The request could not be completed: refused, reset, or timed out.

    `request_sent` is False only when the connection failed before any byte of the
    request left (refused, DNS, TLS, connect timeout): the one case where re-sending a
    submit cannot create a second, billed job.
    """

    summary = "The bot could not reach the voice service."

    def __init__(
        self,
        detail: str = "",
        *,
        request_sent: bool = True,
        request_id: str | None = None,
    ) -> None:
        self.request_sent = request_sent
        super().__init__(detail, request_id=request_id)


class OutputRejectedError(SegmindError):
    """The result's audio could not be used: disallowed URL, too large, or not audio."""

    summary = "The audio the voice service produced could not be used."


class UnsafeOutputURLError(OutputRejectedError):
    summary = "The voice service pointed to an audio location the bot does not trust."


class OutputTooLargeError(OutputRejectedError):
    summary = "The audio the voice service produced is too large."


class NotAudioError(OutputRejectedError):
    summary = "The voice service's result is not an audio file."
