"""Fair slots: round-robin order between keys, positions, cancellation, handover races."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slots import FairSlots


async def settle() -> None:
    """Let every ready task run (acquire steps, handed-over waiters resuming)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Line:
    """Drives a FairSlots: each `join` is a task waiting for a slot under a key, with its
    reported positions and the order slots were actually granted recorded."""

    def __init__(self, slots: FairSlots) -> None:
        self.slots = slots
        self.served: list[str] = []
        self.positions: dict[str, list[int]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._count: dict[Hashable, int] = {}

    async def join(self, key: str) -> str:
        """Start a waiter for `key`; its name is key + its 1-based number for that key."""
        self._count[key] = self._count.get(key, 0) + 1
        name = f"{key}{self._count[key]}"
        self.positions[name] = []

        async def wait() -> None:
            await self.slots.acquire(key, self.positions[name].append)
            self.served.append(name)

        self.tasks[name] = asyncio.create_task(wait())
        await settle()
        return name

    async def release(self) -> None:
        self.slots.release()
        await settle()

    def last_position(self, name: str) -> int:
        return self.positions[name][-1]


async def full(capacity: int = 1) -> FairSlots:
    """Slots with every one taken, so each new acquire waits."""
    slots = FairSlots(capacity)
    for _ in range(capacity):
        await slots.acquire("holder")
    return slots


async def test_round_robin_order_between_keys() -> None:
    line = Line(await full())
    for key, count in (("A", 5), ("B", 1), ("C", 2)):
        for _ in range(count):
            await line.join(key)
    assert line.slots.snapshot() == list("ABCACAAA")
    assert line.slots.waiting == 8
    for _ in range(8):
        await line.release()
    assert line.served == ["A1", "B1", "C1", "A2", "C2", "A3", "A4", "A5"]
    assert line.slots.in_use == 1
    assert line.slots.waiting == 0


async def test_positions_follow_the_service_order_and_change_only_when_it_does() -> None:
    line = Line(await full())
    for key in "AAB":
        await line.join(key)
    # A1 first; B joins the rotation after A, so it overtakes A2.
    assert line.positions == {"A1": [1], "A2": [2, 3], "B1": [2]}
    await line.join("C")
    assert line.positions["C1"] == [3]
    assert line.positions["A2"] == [2, 3, 4]
    assert line.positions["A1"] == [1]  # unchanged places are not re-announced
    assert line.positions["B1"] == [2]
    await line.release()  # A1 served; A goes to the back: B, C, A
    assert line.served == ["A1"]
    assert (line.positions["B1"], line.positions["C1"], line.positions["A2"]) == (
        [2, 1],
        [3, 2],
        [2, 3, 4, 3],
    )
    await line.join("B")  # B2 waits for the next round, after A2
    assert line.slots.snapshot() == list("BCAB")
    assert line.positions["B2"] == [4]


async def test_a_key_with_many_jobs_delays_a_later_key_by_at_most_one() -> None:
    line = Line(await full())
    for _ in range(20):
        await line.join("hog")
    await line.join("late")
    assert line.last_position("late1") == 2
    await line.release()
    await line.release()
    assert line.served == ["hog1", "late1"]


async def test_a_key_that_waits_again_joins_the_end_of_the_rotation() -> None:
    line = Line(await full())
    for key in "ABC":
        await line.join(key)
    await line.release()  # A1 served, A has no more waiters: it leaves the rotation
    await line.join("A")
    assert line.slots.snapshot() == list("BCA")
    for _ in range(3):
        await line.release()
    assert line.served == ["A1", "B1", "C1", "A2"]


async def test_cancelled_waiter_mid_queue_moves_the_others_up() -> None:
    line = Line(await full())
    for key in "AABC":
        await line.join(key)
    assert line.slots.snapshot() == list("ABCA")
    line.tasks["B1"].cancel()
    with pytest.raises(asyncio.CancelledError):
        await line.tasks["B1"]
    assert line.slots.snapshot() == list("ACA")
    assert line.slots.waiting == 3
    assert line.positions["C1"] == [3, 2]
    assert line.positions["A2"] == [2, 3, 4, 3]
    assert line.positions["A1"] == [1]
    for _ in range(3):
        await line.release()
    assert line.served == ["A1", "C1", "A2"]


async def test_cancelling_a_keys_only_waiter_drops_the_key_from_the_rotation() -> None:
    line = Line(await full())
    for key in "ABC":
        await line.join(key)
    line.tasks["B1"].cancel()
    await settle()
    assert line.slots.snapshot() == list("AC")
    await line.join("B")  # B lost its place: it starts again at the end
    assert line.slots.snapshot() == list("ACB")


async def test_slot_handed_over_as_the_waiter_is_cancelled_passes_on() -> None:
    line = Line(await full())
    first = await line.join("A")
    second = await line.join("B")
    line.slots.release()  # hands the slot to A1's future...
    line.tasks[first].cancel()  # ...whose task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await line.tasks[first]
    await settle()
    assert line.served == [second]  # passed on, not leaked
    assert line.slots.in_use == 1
    line.slots.release()
    assert line.slots.in_use == 0


async def test_waiter_cancelled_just_before_a_release_is_skipped() -> None:
    line = Line(await full())
    first = await line.join("A")
    second = await line.join("B")
    line.tasks[first].cancel()  # its future is cancelled now, its task resumes later
    line.slots.release()  # must skip it, not give it the slot
    with pytest.raises(asyncio.CancelledError):  # not an error from the queue's clean-up
        await line.tasks[first]
    await settle()
    assert line.served == [second]
    assert line.slots.waiting == 0
    assert line.slots.in_use == 1


async def test_freed_slot_never_goes_to_a_newcomer_while_someone_waits() -> None:
    slots = await full(2)
    line = Line(slots)
    await line.join("A")
    slots.release()  # A1 has the slot but has not run yet
    newcomer = asyncio.create_task(slots.acquire("B"))
    await settle()
    assert line.served == ["A1"]
    assert not newcomer.done()
    assert slots.snapshot() == ["B"]
    slots.release()
    await asyncio.wait_for(newcomer, 1)
    assert slots.in_use == 2


async def test_capacity_above_one_grants_free_slots_at_once_then_takes_turns() -> None:
    slots = FairSlots(3)
    line = Line(slots)
    for key in "AAA":
        await line.join(key)
    assert line.served == ["A1", "A2", "A3"]
    assert line.positions == {"A1": [], "A2": [], "A3": []}
    for key in "AABB":
        await line.join(key)
    assert slots.snapshot() == list("ABAB")
    assert slots.in_use == 3
    await line.release()
    await line.release()
    assert line.served[3:] == ["A4", "B1"]
    for _ in range(5):
        await line.release()
    assert line.served[5:] == ["A5", "B2"]
    assert slots.in_use == 0
    assert slots.waiting == 0


async def test_many_keys_are_served_in_rounds() -> None:
    line = Line(await full())
    counts = {f"k{i:02d}": 1 + i % 4 for i in range(40)}
    for key, count in counts.items():
        for _ in range(count):
            await line.join(key)
    total = sum(counts.values())
    expected = [f"{key}{n}" for n in range(1, 5) for key, count in counts.items() if count >= n]
    for _ in range(total):
        await line.release()
    assert line.served == expected
    # Every waiter was told 1 before its turn.
    assert all(line.last_position(name) == 1 for name in expected)


async def test_a_failing_position_callback_does_not_break_the_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slots = await full()

    def broken(position: int) -> None:
        raise RuntimeError("boom")

    seen: list[int] = []
    bad = asyncio.create_task(slots.acquire("A", broken))
    good = asyncio.create_task(slots.acquire("B", seen.append))
    await settle()
    with caplog.at_level(logging.ERROR, logger="bot.slots"):
        slots.release()
        await asyncio.wait_for(bad, 1)
    assert seen == [2, 1]
    assert "position callback failed" in caplog.text
    slots.release()
    await asyncio.wait_for(good, 1)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FairSlots(0)


# -- model check ---------------------------------------------------------------------------

# ("join", key) | ("release", _) | ("cancel", index into the waiting tasks)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from("ABCD")),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
    ),
    max_size=40,
)


class Model:
    """The specification, written plainly: a rotation of keys, each with a FIFO line."""

    def __init__(self) -> None:
        self.rotation: list[str] = []
        self.lines: dict[str, list[str]] = {}

    def join(self, key: str, name: str) -> None:
        if key not in self.lines:
            self.rotation.append(key)
            self.lines[key] = []
        self.lines[key].append(name)

    def serve(self) -> str | None:
        if not self.rotation:
            return None
        key = self.rotation.pop(0)
        name = self.lines[key].pop(0)
        if self.lines[key]:
            self.rotation.append(key)
        else:
            del self.lines[key]
        return name

    def cancel(self, name: str) -> None:
        key = name[0]
        self.lines[key].remove(name)
        if not self.lines[key]:
            del self.lines[key]
            self.rotation.remove(key)

    def order(self) -> list[str]:
        """Serve a copy to the end: the order the model predicts."""
        copy = Model()
        copy.rotation = list(self.rotation)
        copy.lines = {k: list(v) for k, v in self.lines.items()}
        result = []
        while (name := copy.serve()) is not None:
            result.append(name)
        return result


@settings(max_examples=150, deadline=None)
@given(operations, st.integers(1, 3))
def test_matches_the_round_robin_model(ops: list[tuple[str, object]], capacity: int) -> None:
    async def scenario() -> None:
        slots = FairSlots(capacity)
        line = Line(slots)
        model = Model()
        holding = 0  # slots held by waiters that were served (or granted at once)
        for op, arg in ops:
            if op == "join":
                assert isinstance(arg, str)
                before = len(line.served)
                name = await line.join(arg)
                if len(line.served) > before:  # a free slot, nobody waiting
                    assert model.order() == []
                    holding += 1
                else:
                    model.join(arg, name)
            elif op == "release" and holding:
                expected = model.serve()
                await line.release()
                if expected is None:
                    holding -= 1
                else:
                    assert line.served[-1] == expected
            elif op == "cancel":
                waiting = model.order()
                if waiting:
                    assert isinstance(arg, int)
                    name = waiting[arg % len(waiting)]
                    line.tasks[name].cancel()
                    await settle()
                    model.cancel(name)
            order = model.order()
            assert [name[0] for name in order] == slots.snapshot()
            assert slots.waiting == len(order)
            assert slots.in_use == holding
            for place, name in enumerate(order, start=1):
                reported = line.positions[name]
                assert reported[-1] == place
                assert all(a != b for a, b in itertools.pairwise(reported))
        for task in line.tasks.values():
            task.cancel()
        await asyncio.gather(*line.tasks.values(), return_exceptions=True)

    asyncio.run(scenario())
