"""Parsing Segmind's answers: real shapes, hostile shapes, and property-based fuzzing."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.segmind.errors import (
    STATUS_ERRORS,
    MalformedResponseError,
    NoAudioInOutputError,
    SegmindError,
    UnexpectedStatusError,
    error_for_status,
    sanitize_detail,
)
from bot.segmind.models import JobStatus, find_audio_url, parse_poll, parse_submit

AUDIO = "https://segmind-results.s3.amazonaws.com/out/abc.mp3"


def test_output_as_json_string_nested() -> None:
    output = json.dumps(
        {
            "Voice Clone": {"voice_id": "v1", "preview": "https://images.segmind.com/x.png"},
            "Speak": {"output": {"audio_url": AUDIO}},
        }
    )
    assert find_audio_url(output) == AUDIO


def test_output_as_object_and_bare_url() -> None:
    assert find_audio_url({"result": [{"file": AUDIO}]}) == AUDIO
    assert find_audio_url(AUDIO) == AUDIO
    assert find_audio_url(json.dumps(AUDIO)) == AUDIO


def test_prefers_audio_looking_url_over_first() -> None:
    output = {"a": "https://images.segmind.com/a.png", "b": "https://x.segmind.com/speech"}
    assert find_audio_url(output) == "https://x.segmind.com/speech"
    output2 = {"image": "https://images.segmind.com/a.png", "z": AUDIO}
    assert find_audio_url(output2) == AUDIO


def test_excluded_sample_url_is_not_taken() -> None:
    sample = "https://cdn.discordapp.com/attachments/1/2/voice.mp3"
    output = {"input": sample, "tts": "https://x.segmind.com/r/out"}
    assert find_audio_url(output, exclude=[sample]) == "https://x.segmind.com/r/out"


def test_string_inside_string_json() -> None:
    inner = json.dumps({"audio": AUDIO})
    assert find_audio_url(json.dumps({"node": inner})) == AUDIO


@pytest.mark.parametrize("output", ["", "{}", "[]", "null", "not json", {"a": 1}, [None], 42])
def test_no_audio_url(output: object) -> None:
    with pytest.raises(NoAudioInOutputError):
        find_audio_url(output)


def test_deeply_nested_does_not_blow_up() -> None:
    deep: object = AUDIO
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(NoAudioInOutputError):
        find_audio_url(deep)  # beyond the depth bound
    with pytest.raises(NoAudioInOutputError):
        find_audio_url("[" * 100_000)


def test_parse_submit() -> None:
    h = parse_submit(
        {"request_id": "r1", "poll_url": "https://api.segmind.com/workflows/request/r1"}
    )
    assert (h.request_id, h.poll_url) == ("r1", "https://api.segmind.com/workflows/request/r1")
    h2 = parse_submit(
        {"poll_url": "https://api.segmind.com/workflows/request/r2", "status": "QUEUED"}
    )
    assert h2.request_id == "r2"
    bad: object
    for bad in ({}, {"poll_url": 5}, {"poll_url": "javascript:alert(1)"}, [], "x", None):
        with pytest.raises(MalformedResponseError):
            parse_submit(bad)


def test_parse_poll() -> None:
    assert parse_poll({"status": "QUEUED"}).status is JobStatus.QUEUED
    assert parse_poll({"status": "processing"}).status is JobStatus.PROCESSING
    done = parse_poll({"status": "COMPLETED", "output": "{}"})
    assert done.status is JobStatus.COMPLETED
    assert done.output == "{}"
    failed = parse_poll({"status": "FAILED", "error": "<b>bad</b> sample"})
    assert failed.error == "bad sample"
    with pytest.raises(MalformedResponseError, match="unknown job status"):
        parse_poll({"status": "EXPLODED"})
    with pytest.raises(NoAudioInOutputError):
        parse_poll({"status": "COMPLETED"})
    bad2: object
    for bad2 in ({}, {"status": 3}, [], None):
        with pytest.raises(MalformedResponseError):
            parse_poll(bad2)


def test_sanitize_detail() -> None:
    assert sanitize_detail("<!DOCTYPE html><html><body>502</body></html>") == ""
    assert "sk-123" not in sanitize_detail("bad key sk-123 given", "sk-123")
    long = sanitize_detail("x" * 5000)
    assert len(long) <= 300
    assert "\n" not in sanitize_detail("a\nb\x00c")


def test_error_for_status_maps_every_documented_status() -> None:
    for status in (400, 401, 403, 404, 406, 429, 500, 502, 504):
        err = error_for_status(status, "detail")
        assert type(err) is STATUS_ERRORS[status]
        assert err.status == status
    odd = error_for_status(418, "teapot")
    assert isinstance(odd, UnexpectedStatusError)
    assert "418" in str(odd)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
urlish = st.sampled_from(
    [AUDIO, "http://x/a.wav", "https://", "http://[::1", "http://a:99999/", "ftp://x/a.mp3"]
)


@given(st.one_of(json_values, urlish, st.text(), st.binary().map(repr)))
def test_find_audio_url_only_raises_typed_errors(output: object) -> None:
    try:
        url = find_audio_url(output)
    except SegmindError:
        return
    assert url.startswith(("http://", "https://"))


@given(json_values)
def test_parsers_only_raise_typed_errors(body: object) -> None:
    for parse in (parse_submit, parse_poll):
        with contextlib.suppress(MalformedResponseError):
            parse(body)


@given(st.integers(min_value=100, max_value=599), st.text(), st.none() | st.floats())
def test_error_mapping_total(status: int, detail: str, retry_after: float | None) -> None:
    err = error_for_status(status, sanitize_detail(detail, "key"), retry_after=retry_after)
    assert isinstance(err, SegmindError)
    assert len(str(err)) < 500
    assert "<" not in str(err) or "<" in detail


# -- Segmind's documented shapes (PLATFORM.md, "More shapes") ------------------------------


def test_failed_reason_as_error_message_object_is_plain_text() -> None:
    failed = parse_poll(
        {
            "status": "FAILED",
            "error_message": {"message": "Voice sample too short", "code": "E_SAMPLE"},
        }
    )
    assert failed.error == "Voice sample too short"
    nested = parse_poll({"status": "FAILED", "error_message": {"error": {"message": "deep"}}})
    assert nested.error == "deep"
    assert parse_poll({"status": "FAILED", "error_message": {"code": 7}}).error == ""


def test_processing_with_empty_output_is_not_finished() -> None:
    result = parse_poll({"status": "PROCESSING", "output": ""})
    assert result.status is JobStatus.PROCESSING
    assert result.output is None


def test_submit_answer_with_message() -> None:
    handle = parse_submit(
        {
            "request_id": "r1",
            "poll_url": "https://api.segmind.com/workflows/request/r1",
            "status": "QUEUED",
            "message": "Request queued",
        }
    )
    assert handle.request_id == "r1"


def test_pixelflow_output_prefers_the_audio_entry() -> None:
    # The documented PixelFlow form: a JSON string holding [{keyname, value: {data, type}}];
    # an image URL (even one named like audio) must lose to the entry typed audio.
    output = json.dumps(
        [
            {
                "keyname": "Cover",
                "value": {"data": "https://images.segmind.com/a.mp3", "type": "image"},
            },
            {"keyname": "Voice Clone", "value": {"data": "voice-123", "type": "text"}},
            {
                "keyname": "Speech",
                "value": {"data": "https://images.segmind.com/out/speech", "type": "audio"},
            },
        ]
    )
    assert find_audio_url(output) == "https://images.segmind.com/out/speech"
