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


H = "https://out.segmind.com/r"


@pytest.mark.parametrize(
    ("winner", "loser"),
    [
        # Each clue alone beats no clue (the loser comes first: order alone would pick it).
        ({"type": "audio", "data": f"{H}/a"}, None),
        ({"x": f"{H}/a.mp3"}, None),
        ({"x": f"{H}/A.WAV"}, None),  # the path is compared in lower case
        *(({f"my{word}": f"{H}/a"}, None) for word in ("Audio", "speech", "VOICE", "sound", "tts")),
        # A clue that it is not audio loses to no clue.
        (None, {"type": "image", "data": f"{H}/a"}),
        *((None, {"x": f"{H}/a{ext}"}) for ext in (".png", ".jpg", ".jpeg", ".gif", ".webp")),
        *((None, {"x": f"{H}/a{ext}"}) for ext in (".json", ".txt", ".html")),
        # The weights: a declared audio type beats an audio extension and name together;
        # an audio extension beats an audio-sounding name; a name beats an image's penalty.
        ({"type": "audio/mpeg", "data": f"{H}/a"}, {"speech": f"{H}/a.mp3"}),
        ({"x": f"{H}/a.mp3"}, {"speech": f"{H}/a"}),
        ({"type": "audio", "data": f"{H}/a.png"}, {"speech": f"{H}/a.mp3"}),
        ({"type": "audio", "data": f"{H}/a.mp3"}, {"type": "audio", "data": f"{H}/a"}),
        ({"speech": f"{H}/a.png"}, {"x": f"{H}/a"}),
    ],
)
def test_audio_url_scoring(winner: dict[str, str] | None, loser: dict[str, str] | None) -> None:
    """Pairs that differ in one clue (or weigh two against each other): the more
    audio-like URL is taken, whichever comes first."""
    plain = {"x": f"{H}/plain"}
    win, lose = winner or plain, loser or plain
    expected = next(v for v in win.values() if isinstance(v, str) and v.startswith(H))
    for output in ([lose, win], [win, lose]):
        assert find_audio_url(output) == expected


def test_equal_scores_go_to_the_first_url() -> None:
    assert find_audio_url([{"x": f"{H}/1.mp3"}, {"x": f"{H}/2.mp3"}]) == f"{H}/1.mp3"
    assert find_audio_url(json.dumps([f"{H}/1", f"{H}/2", f"{H}/3"])) == f"{H}/1"


def test_walk_is_bounded_but_reaches_what_is_inside_the_bounds() -> None:
    # A URL at the deepest level still inside the bound is found, in lists and objects.
    for wrap in (lambda n: [n], lambda n: {"k": n}):
        node: object = AUDIO
        for _ in range(32):
            node = wrap(node)
        assert find_audio_url(node) == AUDIO
        with pytest.raises(NoAudioInOutputError):
            find_audio_url(wrap(node))  # one level too deep: not walked
    # A branch too deep to walk is skipped, not the end of the walk.
    deep: object = "https://x.segmind.com/deep.mp3"
    for _ in range(40):
        deep = [deep]
    assert find_audio_url([deep, {"speech": f"{H}/after"}]) == f"{H}/after"
    # Past the node budget nothing more is looked at, and it still ends.
    many: list[object] = [1] * 9_999 + [AUDIO]  # the list and 9,999 numbers: 10,000 nodes
    with pytest.raises(NoAudioInOutputError):
        find_audio_url(many)
    assert find_audio_url(many[1:]) == AUDIO


@pytest.mark.parametrize(
    ("parse", "body", "message"),
    [
        (parse_submit, [], "submit answer is not a JSON object"),
        (parse_submit, {"poll_url": "ftp://x/y"}, "submit answer has no usable poll_url"),
        (parse_submit, {"poll_url": "https://api.segmind.com"}, "submit answer has no request_id"),
        (parse_poll, "x", "status answer is not a JSON object"),
        (parse_poll, {"status": 3}, "status answer has no status"),
        (parse_poll, {"status": "COMPLETED"}, "COMPLETED without output"),
        (parse_poll, {"status": "D" * 60}, "unknown job status " + repr("D" * 40)),
        (find_audio_url, {"a": 1}, "no audio URL in the result"),
    ],
)
def test_malformed_answers_say_what_was_wrong(parse: object, body: object, message: str) -> None:
    """The message goes to the operator's log: it names what is missing."""
    with pytest.raises(MalformedResponseError) as caught:
        parse(body)  # type: ignore[operator]
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("poll_url", "request_id"),
    [
        ("https://api.segmind.com/v1/requests/abc", "abc"),
        ("https://api.segmind.com/v1/requests/abc/", "abc"),
        ("https://api.segmind.com/v1/requests/REQX/", "REQX"),
        ("https://api.segmind.com/abc", "abc"),
    ],
)
def test_request_id_falls_back_to_the_poll_urls_last_segment(
    poll_url: str, request_id: str
) -> None:
    assert parse_submit({"poll_url": poll_url}).request_id == request_id
    assert parse_submit({"poll_url": poll_url, "request_id": " "}).request_id == request_id


def test_request_id_is_capped() -> None:
    long = "r" * 300
    handle = parse_submit({"poll_url": "https://api.segmind.com/x", "request_id": long})
    assert handle.request_id == "r" * 200


@pytest.mark.parametrize("key", ["error", "error_message", "message", "detail"])
def test_failure_reason_from_each_known_key(key: str) -> None:
    result = parse_poll({"status": "FAILED", key: "noisy clip"})
    assert result.status is JobStatus.FAILED
    assert result.error == "noisy clip"


def test_failure_without_a_reason_has_an_empty_one() -> None:
    assert parse_poll({"status": "FAILED"}).error == ""
    assert parse_poll({"status": "FAILED", "error": ""}).error == ""
