"""The job runner against the fake: progress, deadline, cancel, concurrency, budget."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from bot.credits import CreditPause, CreditsPausedError
from bot.durations import Observation
from bot.jobs import JobRequest, JobRunner, Phase, Progress
from bot.segmind.budget import RequestBudget
from bot.segmind.errors import (
    InsufficientCreditsError,
    JobFailedError,
    JobTimeoutError,
    MalformedResponseError,
    NoAudioInOutputError,
    WorkflowNotFoundError,
)
from bot.segmind.models import JobHandle
from bot.segmind.retry import RetryPolicy
from tests.conftest import MakeClient
from tests.fakes.segmind import FakeSegmind, Injection, JobScript
from tests.test_credits import Clock

INTERVAL = 0.02


def make_runner(make_client: MakeClient, **overrides: object) -> JobRunner:
    options: dict[str, object] = {"poll_interval": INTERVAL, "timeout": 10.0, "max_concurrent": 4}
    client_options = overrides.pop("client", {})
    options.update(overrides)
    return JobRunner(make_client(**client_options), **options)  # type: ignore[arg-type]


def request(fake: FakeSegmind, text: str = "Hello world") -> JobRequest:
    return JobRequest(fake.sample_url, text, "en")


def other_tasks() -> set[asyncio.Task[object]]:
    """Tasks besides this test's own and the fake server's connection handlers."""
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and not getattr(t.get_coro(), "__qualname__", "").startswith("RequestHandler.")
    }


async def test_happy_path_reports_progress_and_returns_the_audio(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    runner = make_runner(make_client)
    events: list[Progress] = []
    result = await runner.run(request(fake_segmind), events.append)
    job = fake_segmind.jobs[result.request_id]
    assert result.audio.data.startswith(b"ID3")
    assert result.request_id.encode() in result.audio.data
    assert job.text == "Hello world"
    phases = [e.phase for e in events]
    assert phases == [
        Phase.SUBMITTING,
        Phase.SUBMITTED,
        Phase.PROCESSING,
        Phase.DOWNLOADING,
        Phase.DONE,
    ]
    assert all(b.elapsed >= a.elapsed for a, b in itertools.pairwise(events))
    assert events[1].handle is not None
    assert events[1].handle.request_id == result.request_id
    assert fake_segmind.count("submit") == 1
    assert runner.in_flight == 0


async def test_failed_job_carries_segmind_reason(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.script_jobs(
        JobScript(statuses=("QUEUED", "FAILED"), failure_reason="Sample too noisy")
    )
    with pytest.raises(JobFailedError, match="Sample too noisy") as info:
        await make_runner(make_client).run(request(fake_segmind))
    assert info.value.request_id in fake_segmind.jobs


async def test_output_as_object_and_without_audio(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    runner = make_runner(make_client)
    fake_segmind.script_jobs(
        JobScript(output={"node": {"text": "hi"}}),
        JobScript(output=json.dumps({"image": "not a url"})),
    )
    with pytest.raises(NoAudioInOutputError) as info:
        await runner.run(request(fake_segmind))
    assert info.value.request_id is not None
    with pytest.raises(NoAudioInOutputError):
        await runner.run(request(fake_segmind))
    # An object (not a JSON string) with the URL nested in a list; reuse a served file.
    served = next(iter(fake_segmind.jobs.values())).audio_url
    fake_segmind.script_jobs(JobScript(output={"n": [{"audio": "x"}, {"url": served}]}))
    result = await runner.run(request(fake_segmind))
    assert result.audio.size > 0


async def test_deadline_raises_typed_error_and_leaves_no_task(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    before = other_tasks()
    fake_segmind.script_jobs(JobScript(statuses=("QUEUED", "PROCESSING")))  # never completes
    runner = make_runner(make_client, timeout=0.3)
    with pytest.raises(JobTimeoutError) as info:
        await runner.run(request(fake_segmind))
    assert info.value.request_id in fake_segmind.jobs
    assert runner.in_flight == 0
    assert other_tasks() <= before


async def test_cancel_stops_polling_at_once(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    before = other_tasks()
    fake_segmind.script_jobs(JobScript(statuses=("PROCESSING",)))
    runner = make_runner(make_client)
    task = asyncio.create_task(runner.run(request(fake_segmind)))
    await fake_segmind.wait_for(lambda: fake_segmind.count("poll") >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    polls = fake_segmind.count("poll")
    await asyncio.sleep(INTERVAL * 5)  # time for polls that should not happen
    assert fake_segmind.count("poll") == polls
    assert runner.in_flight == 0
    assert other_tasks() <= before


async def test_concurrency_cap_is_fifo_with_positions(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    runner = make_runner(make_client, max_concurrent=2)
    positions: dict[int, list[int]] = {i: [] for i in range(5)}

    def tracker(i: int) -> object:
        def on_progress(p: Progress) -> None:
            if p.phase is Phase.QUEUED:
                assert p.position is not None
                positions[i].append(p.position)

        return on_progress

    tasks = []
    for i in range(5):
        tasks.append(
            asyncio.create_task(runner.run(request(fake_segmind, f"text {i}"), tracker(i)))  # type: ignore[arg-type]
        )
        await asyncio.sleep(0)  # arrive in order
    await asyncio.gather(*tasks)
    # Jobs in flight at Segmind, from its own log: +1 at submit, -1 at download.
    in_flight = peak = 0
    for r in fake_segmind.requests:
        in_flight += {"submit": 1, "download": -1}.get(r.kind, 0)
        peak = max(peak, in_flight)
    submitted = [r.json["text"] for r in fake_segmind.requests if r.kind == "submit"]  # type: ignore[index]
    assert submitted == [f"text {i}" for i in range(5)]  # FIFO
    assert positions[0] == positions[1] == []
    assert [positions[i][0] for i in (2, 3, 4)] == [1, 2, 3]
    assert positions[4][-1] == 1
    assert peak == 2


async def test_budget_holds_across_jobs_and_fake_never_rate_limits(make_client: MakeClient) -> None:
    async with FakeSegmind(rate_limit=(6, 0.5)) as fake:
        budget = RequestBudget(6, window=0.5)
        runner = make_runner(
            make_client, client={"workflow_url": fake.workflow_url, "budget": budget}
        )
        results = await asyncio.wait_for(
            asyncio.gather(*(runner.run(request(fake, f"t{i}")) for i in range(4))), 20
        )
        assert len(results) == 4
        api = [r for r in fake.requests if r.kind in ("submit", "poll")]
        assert all(r.status != 429 for r in api)
        times = sorted(r.time for r in api)
        for i, t in enumerate(times):
            in_window = [u for u in times[i:] if u - t < 0.5 - 0.01]
            assert len(in_window) <= 6


async def test_poll_errors_past_retries_do_not_lose_a_paid_job(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, max_total=1)
    runner = make_runner(make_client, client={"retry": policy})
    fake_segmind.inject("poll", Injection(status=503, times=5))
    result = await runner.run(request(fake_segmind))
    assert result.audio.size > 0
    assert fake_segmind.count("submit") == 1


async def test_job_not_found_ends_the_job(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("poll", Injection(status=404, body={"error": "Request not found"}))
    with pytest.raises(WorkflowNotFoundError):
        await make_runner(make_client).run(request(fake_segmind))


async def test_repeated_garbage_status_gives_up(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("poll", Injection(status=200, body="<html>oops</html>", times=10))
    with pytest.raises(MalformedResponseError):
        await make_runner(make_client).run(request(fake_segmind))
    assert fake_segmind.count("poll") == 3


async def test_one_garbage_status_is_tolerated(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("poll", Injection(status=200, body="{}", times=1))
    result = await make_runner(make_client).run(request(fake_segmind))
    assert result.audio.size > 0


async def test_hundred_jobs_all_delivered_distinctly(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    runner = make_runner(make_client, max_concurrent=100)
    results = await asyncio.gather(
        *(runner.run(request(fake_segmind, f"t{i}")) for i in range(100))
    )
    assert len({r.audio.data for r in results}) == 100
    assert fake_segmind.count("submit") == 100


class RecordingJournal:
    def __init__(self, fake: FakeSegmind) -> None:
        self.fake = fake
        self.events: list[str] = []

    async def submitting(self) -> None:
        self.events.append(f"submitting (submits so far: {self.fake.count('submit')})")

    async def submitted(self, handle: JobHandle) -> None:
        self.events.append(
            f"submitted {handle.request_id} (polls so far: {self.fake.count('poll')})"
        )


async def test_journal_records_before_each_step(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    journal = RecordingJournal(fake_segmind)
    result = await make_runner(make_client).run(request(fake_segmind), journal=journal)
    assert journal.events == [
        "submitting (submits so far: 0)",
        f"submitted {result.request_id} (polls so far: 0)",
    ]


async def test_resume_polls_without_submitting_again(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    client = make_client()
    handle = await client.submit(fake_segmind.sample_url, "earlier", "en")
    runner = make_runner(make_client)
    result = await runner.run(request(fake_segmind), resume=handle, submitted_ago=1.0)
    assert result.request_id == handle.request_id
    assert fake_segmind.count("submit") == 1


async def test_resume_counts_time_already_spent(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.script_jobs(JobScript(statuses=("PROCESSING",)))
    handle = await make_client().submit(fake_segmind.sample_url, "earlier", "en")
    runner = make_runner(make_client, timeout=100.0)
    with pytest.raises(JobTimeoutError):
        await runner.run(request(fake_segmind), resume=handle, submitted_ago=99.8)


@pytest.mark.parametrize(
    "poll_url",
    [
        "https://segmind-results.s3.amazonaws.com/workflows/request/abc",
        "https://api.segmind.com.evil.example/workflows/request/abc",
        "{base}/v1/get-user-credits",
    ],
)
async def test_a_resumed_job_is_polled_only_on_segmind_status_urls(
    fake_segmind: FakeSegmind, make_client: MakeClient, poll_url: str
) -> None:
    # A store the bot no longer fully trusts (restored from a backup, edited by hand): the
    # key must not follow a status URL that is not the API's own.
    runner = make_runner(make_client)
    handle = JobHandle("abc", poll_url.format(base=fake_segmind.base_url))
    with pytest.raises(MalformedResponseError, match="outside Segmind"):
        await runner.run(request(fake_segmind), resume=handle, submitted_ago=1.0)
    assert fake_segmind.requests == []


async def test_the_deadline_counts_from_the_submit_not_from_the_slot(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # SEGMIND_TIMEOUT is documented as counted from the submit: a job held before its
    # submit (here a 429 pause of the whole account) must still get all of it at Segmind.
    budget = RequestBudget(0)
    runner = make_runner(make_client, timeout=1.0, client={"budget": budget})
    fake_segmind.script_jobs(JobScript(duration=0.5))
    budget.pause_for(0.7)
    result = await asyncio.wait_for(runner.run(request(fake_segmind)), 5)
    assert result.elapsed > 1.0  # longer than the timeout in all, yet within it at Segmind


async def test_cancel_during_submit_lets_it_land_and_be_recorded(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    fake_segmind.inject("submit", Injection(status=200, delay=0.3, body=None, create_job=True))
    # An injected 200 has no poll_url: use a normal slow submit instead.
    fake_segmind._injections["submit"].clear()
    fake_segmind.default_script = JobScript(statuses=("PROCESSING",))
    journal = RecordingJournal(fake_segmind)
    runner = make_runner(make_client)
    slow = Injection(status=503, delay=0.3)  # sent, answered late: a definite outcome
    fake_segmind.inject("submit", slow)
    task = asyncio.create_task(runner.run(request(fake_segmind), journal=journal))
    await fake_segmind.wait_for(lambda: fake_segmind.count("submit") == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancel waited for the answer instead of abandoning a request on the wire.
    assert [r.status for r in fake_segmind.requests if r.kind == "submit"] == [503]
    assert runner.in_flight == 0


async def test_owners_take_turns_for_slots(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    runner = make_runner(make_client, max_concurrent=1)
    tasks = []
    for owner, text in [("a", "a0"), ("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b0")]:
        tasks.append(asyncio.create_task(runner.run(request(fake_segmind, text), owner=owner)))
        await asyncio.sleep(0)  # arrive in order; a0 takes the only slot
    assert runner.waiting == 4
    await asyncio.gather(*tasks)
    submitted = [r.json["text"] for r in fake_segmind.requests if r.kind == "submit"]  # type: ignore[index]
    # b0 came last but waits for one more of a's jobs, not three.
    assert submitted == ["a0", "a1", "b0", "a2", "a3"]


async def test_out_of_credits_pauses_the_queue_and_notifies_once(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    clock = Clock()
    pause = CreditPause(300, clock=clock)
    notified: list[tuple[str, float | None]] = []
    pause.listeners.append(lambda detail, until: notified.append((detail, until)))
    runner = make_runner(make_client, max_concurrent=1, credit_pause=pause)
    fake_segmind.inject("submit", Injection(status=406))
    journals = [RecordingJournal(fake_segmind) for _ in range(10)]
    tasks = []
    for i in range(10):
        job = runner.run(request(fake_segmind, f"t{i}"), journal=journals[i], owner=i)
        tasks.append(asyncio.create_task(job))
        await asyncio.sleep(0)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(outcomes[0], InsufficientCreditsError)
    for outcome in outcomes[1:]:
        assert isinstance(outcome, CreditsPausedError)
        assert outcome.paused_until == clock.now + 300
        assert outcome.request_id is None
    assert fake_segmind.count("submit") == 1
    assert journals[0].events == ["submitting (submits so far: 0)"]
    assert all(j.events == [] for j in journals[1:])  # nothing recorded for unsent jobs
    assert len(notified) == 1
    assert notified[0][1] == clock.now + 300
    assert runner.in_flight == runner.waiting == 0

    # Still paused: a new job fails at once, without a submit or a second notification.
    events: list[Progress] = []
    with pytest.raises(CreditsPausedError):
        await runner.run(request(fake_segmind), events.append)
    assert [e.phase for e in events] == []
    assert fake_segmind.count("submit") == 1

    # After the cooldown, submits go through again and a success re-arms the notification.
    clock.now += 301
    result = await runner.run(request(fake_segmind))
    assert result.audio.size > 0
    assert not pause.active()
    fake_segmind.inject("submit", Injection(status=406))
    with pytest.raises(InsufficientCreditsError):
        await runner.run(request(fake_segmind))
    assert len(notified) == 2
    assert fake_segmind.count("submit") == 3


async def test_resumed_job_is_not_blocked_by_the_credit_pause(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    handle = await make_client().submit(fake_segmind.sample_url, "earlier", "en")
    pause = CreditPause(300, clock=Clock())
    pause.trip("out of credits")
    runner = make_runner(make_client, credit_pause=pause)
    result = await runner.run(request(fake_segmind), resume=handle)
    assert result.request_id == handle.request_id
    assert fake_segmind.count("submit") == 1
    assert pause.active()  # only a new submit's success proves credits are back


async def test_no_credit_pause_keeps_the_old_behaviour(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    runner = make_runner(make_client, max_concurrent=1)
    fake_segmind.inject("submit", Injection(status=406, times=2))
    outcomes = await asyncio.gather(
        *(runner.run(request(fake_segmind, f"t{i}")) for i in range(3)), return_exceptions=True
    )
    assert [type(o) for o in outcomes[:2]] == [InsufficientCreditsError] * 2
    assert not isinstance(outcomes[2], BaseException)
    assert fake_segmind.count("submit") == 3


async def test_with_history_a_short_budget_polls_when_the_job_is_due(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # 4 requests a second and a 0.02 s poll interval: requests are scarce. Without
    # history the job would spend one on every free slot (~0.27 s apart) until done; with
    # history it spends one, when most such jobs are done.
    budget = RequestBudget(4, window=1.0)
    runner = make_runner(make_client, client={"budget": budget})
    for _ in range(10):
        runner.durations.observe(Observation(len("Hello world"), lower=0.55, upper=0.65))
    fake_segmind.script_jobs(JobScript(duration=0.6))
    result = await asyncio.wait_for(runner.run(request(fake_segmind)), 5)
    [submit] = [r for r in fake_segmind.requests if r.kind == "submit"]
    polls = [r for r in fake_segmind.requests if r.kind == "poll"]
    assert len(polls) == 1
    assert polls[0].time - submit.time >= 0.6
    assert result.polls == 1


async def test_without_history_a_short_budget_polls_at_every_free_request(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # The same job on a bot that never saw one finish: no guess, so it checks as often
    # as the budget lets it (the case the test above improves on).
    budget = RequestBudget(4, window=1.0)
    runner = make_runner(make_client, client={"budget": budget})
    fake_segmind.script_jobs(JobScript(duration=0.6))
    await asyncio.wait_for(runner.run(request(fake_segmind)), 5)
    assert fake_segmind.count("poll") >= 2


async def test_jobs_alike_do_not_poll_in_lockstep(
    fake_segmind: FakeSegmind, make_client: MakeClient
) -> None:
    # Fifty jobs with the same text, started together, on a roomy budget with history: each
    # job's poll grid is shifted by its own phase. With one shared grid they all polled in
    # the same loop iteration, and the bot stalled for everyone (ack p99 10x in the bench).
    runner = make_runner(make_client, poll_interval=0.2, max_concurrent=50)
    for _ in range(5):
        runner.durations.observe(Observation(len("Hello world"), lower=0.25, upper=0.35))
    fake_segmind.script_jobs(*(JobScript(duration=0.5) for _ in range(50)))
    await asyncio.wait_for(
        asyncio.gather(*(runner.run(request(fake_segmind)) for _ in range(50))), 10
    )
    first_polls: dict[str, float] = {}
    for r in fake_segmind.requests:
        if r.kind == "poll":
            first_polls.setdefault(r.path, r.time)
    times = sorted(first_polls.values())
    assert len(times) == 50
    assert times[-1] - times[0] > 0.05  # spread over half an interval, not one instant
