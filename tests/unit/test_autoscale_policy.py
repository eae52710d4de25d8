"""The autoscaling policy's rules, one by one, on plain numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ops.policy import HostState, QueueState, Rules, decide

GIB = 1 << 30
RULES = Rules(
    min_processes=1, max_processes=4, default_footprint_bytes=GIB, cooldown_seconds=60, ram_reserve_bytes=256 << 20
)
CALM = HostState(cpu_percent=20.0, free_ram_bytes=8 * GIB)


def q(**kw) -> QueueState:
    base = dict(queue="enhance", backlog=0, processes=1, busy=0, avg_task_seconds=3.0, footprint_bytes=GIB)
    return QueueState(**{**base, **kw})


@pytest.mark.parametrize(
    "state,host,why",
    [
        (q(backlog=3, busy=1), CALM, "backlog 3 > 2 x 1"),
        (q(backlog=1, busy=1), HostState(85.0, 8 * GIB), "cpu 85% > 80%"),
        (q(backlog=1, busy=1, avg_task_seconds=12.0), CALM, "avg task 12.0s > 10s"),
    ],
)
def test_each_origin_rule_grows_by_one(state, host, why):
    d = decide(state, host, RULES, since_last_change=None)
    assert (d.action, d.delta, d.reason) == ("grow", 1, "load_high") and why in d.detail


def test_no_growth_without_waiting_work():
    # A hot CPU or slow tasks with an empty queue: another process would only idle.
    d = decide(q(busy=1, avg_task_seconds=30.0), HostState(95.0, 8 * GIB), RULES, since_last_change=None)
    assert d.action == "hold"


def test_cooldown_and_max_hold_growth():
    assert decide(q(backlog=9), CALM, RULES, since_last_change=30).reason == "cooldown"
    assert decide(q(backlog=9), CALM, RULES, since_last_change=61).action == "grow"
    assert decide(q(backlog=99, processes=4), CALM, RULES, since_last_change=None).reason == "at_max"


def test_memory_below_one_more_process_blocks_growth():
    tight = HostState(20.0, free_ram_bytes=GIB + (200 << 20))  # < 1 GiB footprint + 256 MiB reserve
    d = decide(q(backlog=9, footprint_bytes=GIB), tight, RULES, since_last_change=None)
    assert (d.action, d.reason) == ("hold", "ram_budget")
    # The measured footprint counts, not the default: a 300 MiB process fits.
    assert decide(q(backlog=9, footprint_bytes=300 << 20), tight, RULES, since_last_change=None).action == "grow"
    # Unmeasured (no live process): the configured default applies.
    assert (
        decide(q(backlog=9, processes=0, footprint_bytes=None), tight, RULES, since_last_change=None).reason
        == "ram_budget"
    )


def test_gpu_memory_blocks_growth_only_on_gpu_queues():
    host = HostState(20.0, 8 * GIB, free_gpu_bytes=GIB)
    assert decide(q(backlog=9, gpu_footprint_bytes=2 * GIB), host, RULES, since_last_change=None).reason == "gpu_budget"
    assert decide(q(backlog=9, gpu_footprint_bytes=None), host, RULES, since_last_change=None).action == "grow"


def test_shrinks_one_idle_process_when_everything_is_low():
    d = decide(q(processes=3, busy=1), CALM, RULES, since_last_change=None)
    assert (d.action, d.delta, d.reason) == ("shrink", -1, "idle")
    assert decide(q(processes=3, busy=3), CALM, RULES, since_last_change=None).reason == "all_busy"
    assert decide(q(processes=1), CALM, RULES, since_last_change=None).reason == "steady"  # at min
    assert decide(q(processes=3, backlog=1), CALM, RULES, since_last_change=None).action == "hold"
    assert decide(q(processes=3), HostState(50.0, 8 * GIB), RULES, since_last_change=None).action == "hold"
    assert decide(q(processes=3), CALM, RULES, since_last_change=10).reason == "cooldown"


def test_below_min_grows_even_in_cooldown_and_above_max_shrinks_idle_only():
    assert decide(q(processes=0, busy=0), CALM, RULES, since_last_change=5).reason == "below_min"
    d = decide(q(processes=6, busy=4), CALM, RULES, since_last_change=None)
    assert (d.action, d.delta) == ("shrink", -2)
    d = decide(q(processes=6, busy=5), CALM, RULES, since_last_change=None)
    assert (d.action, d.delta) == ("shrink", -1)  # only the idle one
    assert decide(q(processes=6, busy=6), CALM, RULES, since_last_change=None).action == "hold"


@given(
    backlog=st.integers(0, 1000),
    processes=st.integers(0, 10),
    busy=st.integers(0, 10),
    avg=st.one_of(st.none(), st.floats(0, 100)),
    cpu=st.floats(0, 100),
    free=st.integers(0, 64 * GIB),
    since=st.one_of(st.none(), st.floats(0, 600)),
)
def test_invariants(backlog, processes, busy, avg, cpu, free, since):
    busy = min(busy, processes)
    state = q(backlog=backlog, processes=processes, busy=busy, avg_task_seconds=avg)
    d = decide(state, HostState(cpu, free), RULES, since_last_change=since)
    after = processes + d.delta
    assert d.action in ("grow", "shrink", "hold") and d.reason
    if d.action == "grow":
        assert after <= RULES.max_processes and free - RULES.ram_reserve_bytes >= GIB
    if d.action == "shrink":
        assert -d.delta <= processes - busy  # never a busy process
        assert after >= min(RULES.min_processes, processes)


def test_a_cpu_threshold_of_100_leaves_cpu_out_both_ways():
    # A saturated host reads 100.0: with both thresholds at 100 it neither grows nor stays on CPU's word.
    rules = Rules(**{**RULES.__dict__, "cpu_low_percent": 100.0, "cpu_high_percent": 100.0})
    pegged = HostState(100.0, 8 * GIB)
    assert decide(q(processes=2), pegged, rules, since_last_change=None).action == "shrink"
    assert decide(q(backlog=1, busy=1), pegged, rules, since_last_change=None).action == "hold"
