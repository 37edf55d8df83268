"""The workflow's duration model: what polls showed becomes an estimate, and a replay of
the same history rebuilds it."""

from __future__ import annotations

import random

from bot.durations import DUE_QUANTILE, DurationModel, Estimate, Observation


def test_no_history_no_guess() -> None:
    model = DurationModel()
    assert model.estimate(100) is None
    model.observe(Observation(100, lower=5.0, upper=4.0))  # unusable: ends before it starts
    assert model.estimate(100) is None


def test_one_job_gives_a_guess_near_what_polls_showed() -> None:
    model = DurationModel()
    model.observe(Observation(100, lower=14.0, upper=21.0))
    estimate = model.estimate(100)
    assert estimate is not None
    assert 14.0 <= estimate.median <= 21.0
    assert estimate.due >= estimate.median


def test_duration_grows_with_text_length() -> None:
    model = DurationModel()
    for chars in (50, 200, 400, 800, 100, 600):
        true = 10 + 0.025 * chars
        model.observe(Observation(chars, lower=true - 1, upper=true + 1))
    short, long = model.estimate(50), model.estimate(800)
    assert short is not None
    assert long is not None
    assert 9 < short.median < 14
    assert 27 < long.median < 33


def simulate(model: DurationModel, jobs: int, rng: random.Random) -> list[bool]:
    """Poll each job once at its due time, then every 2 s, like a short budget does;
    return whether each first poll found the job done."""
    hits = []
    for _ in range(jobs):
        chars = rng.randrange(50, 800)
        true = (10 + 0.025 * chars) * rng.uniform(0.9, 1.1)
        estimate = model.estimate(chars)
        first = estimate.due if estimate is not None else 7.0
        lower, at = 0.0, first
        while at < true:
            lower, at = at, at + 2.0
        hits.append(lower == 0.0)
        model.observe(Observation(chars, lower, at))
    return hits


def test_polls_at_the_due_time_find_most_jobs_done() -> None:
    rng = random.Random(7)
    model = DurationModel()
    simulate(model, 60, rng)  # learn
    hits = simulate(model, 200, rng)
    share = sum(hits) / len(hits)
    # It tracks its quantile from hits and misses alone: close to DUE_QUANTILE, and it
    # neither polls so late that every job is long done nor so early that most miss.
    assert DUE_QUANTILE - 0.1 <= share <= DUE_QUANTILE + 0.1


def test_the_estimate_follows_a_workflow_that_got_faster() -> None:
    model = DurationModel(history=50)
    for _ in range(50):  # slow days: ~40 s
        model.observe(Observation(100, lower=37.0, upper=43.0))
    slow = model.estimate(100)
    assert slow is not None
    for _ in range(50):  # now ~20 s
        model.observe(Observation(100, lower=18.0, upper=22.0))
    fast = model.estimate(100)
    assert fast is not None
    assert 18.0 <= fast.median <= 22.0
    assert fast.due < 0.7 * slow.due


def test_a_window_from_the_submit_says_only_done_by_then() -> None:
    model = DurationModel()
    model.observe(Observation(100, lower=0.0, upper=30.0))
    first = model.estimate(100)
    assert first is not None
    assert first.median == 30.0  # all it knows: done by 30 s
    for _ in range(20):
        model.observe(Observation(100, lower=13.0, upper=15.0))
    # A first poll at 20 s that found the job done says it took at most 20 s: it must not
    # pull the estimate up to 20 s (polls timed by the model would keep it there).
    for _ in range(50):
        model.observe(Observation(100, lower=0.0, upper=20.0))
    later = model.estimate(100)
    assert later is not None
    assert later.median < 17.0


def test_the_due_time_leaves_out_the_noise_of_wide_windows() -> None:
    # Every job takes 20 s; polls 8 s apart see it end somewhere in an 8 s window.
    model = DurationModel()
    rng = random.Random(5)
    for _ in range(100):
        first = rng.uniform(0, 8)
        lower = first + 8 * int((20 - first) // 8)
        model.observe(Observation(300, lower=lower, upper=lower + 8))
    estimate = model.estimate(300)
    assert estimate is not None
    assert 19.0 <= estimate.median <= 21.0
    assert estimate.due <= 21.5  # not 20 + a quantile of the windows' own spread


def test_replay_rebuilds_the_same_model() -> None:
    rng = random.Random(3)
    history = [
        Observation(c, lo, lo + rng.uniform(1, 5))
        for c, lo in ((rng.randrange(20, 900), rng.uniform(0, 30)) for _ in range(300))
    ]
    first, second = DurationModel(), DurationModel()
    for seen in history:
        first.observe(seen)
    for seen in history:
        second.observe(seen)
    assert first.estimate(300) == second.estimate(300)


def test_likelihood_orders_jobs_by_how_far_past_their_median_they_are() -> None:
    short = Estimate(median=10.0, due=12.0)
    long = Estimate(median=30.0, due=36.0)
    assert short.likelihood(10.0) == 0.0
    assert short.likelihood(12.0) == 1.0
    # 13 s into a 10 s job beats 33 s into a 30 s job: the short one is further past due.
    assert short.likelihood(13.0) > long.likelihood(33.0)
