"""The gateway's one subscription per process (gateway/fanout.py), the ?wait= long poll
on it, and the caps on held connections (gateway/holds.py), against a real Redis."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.errors import ApiError
from gateway.fanout import RESYNC, Fanout
from gateway.holds import Held, Holds
from gateway.sse import job_events, wait_for_end
from services.store.connection import connect
from services.store.jobs import JobStore
from testbed.stack import wait_for


@pytest.fixture()
def store(redis_client, redis_server):
    # The gateway's own client (a blocking pool, retries): 200 waiters reading at once
    # is what it is built for, and what redis-py's bare client is not.
    r = connect(redis_server)
    yield JobStore(r, ttl_seconds=3600)
    r.close()


@pytest.fixture()
def fanout(redis_server):
    return Fanout(lambda: connect(redis_server))


def _finish_later(store, job_id, delay=0.3):
    def finish():
        store.begin(job_id, max_deliveries=3, worker="w")
        store.transition(job_id, "succeeded", allowed_from=("running",), result={"ok": 1})

    t = threading.Timer(delay, finish)
    t.start()
    return t


def test_a_long_poll_wakes_on_the_transition(store, fanout):
    job = store.create(kind="enhance", owner="a", params={})
    assert wait_for_end(store, fanout.subscribe, job["id"], 0.2)["state"] == "queued"  # timeout: as it is
    t = _finish_later(store, job["id"])
    got = wait_for_end(store, fanout.subscribe, job["id"], 30)
    t.join()
    assert got["state"] == "succeeded" and got["result"] == {"ok": 1}
    assert wait_for_end(store, fanout.subscribe, "no-such-job", 1) is None
    assert fanout.waiters() == 0


def _pubsub_clients(r) -> int:
    return sum(1 for c in r.client_list() if c.get("flags", "").find("P") >= 0 or int(c.get("psub", 0)))


def test_two_hundred_waiters_share_one_redis_connection(store, fanout, redis_client):
    jobs = [store.create(kind="enhance", owner="a", params={})["id"] for _ in range(200)]
    got: dict[str, str] = {}
    before = _pubsub_clients(redis_client)  # other tests' processes-worth of fanouts

    def wait(jid):
        try:
            got[jid] = wait_for_end(store, fanout.subscribe, jid, 30)["state"]
        except Exception as e:  # named in the assertion, not lost in a thread warning
            got[jid] = repr(e)

    threads = [threading.Thread(target=wait, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    wait_for(lambda: fanout.waiters() == 200, 10, "every waiter registered")
    assert _pubsub_clients(redis_client) == before + 1
    for jid in jobs:
        store.begin(jid, max_deliveries=3, worker="w")
        store.transition(jid, "succeeded", allowed_from=("running",))
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    not_done = {j: got.get(j, "still waiting") for j in jobs if got.get(j) != "succeeded"}
    assert not not_done and fanout.waiters() == 0, (len(not_done), list(not_done.items())[:5])


def test_a_lost_subscription_tells_every_waiter_to_read_again(fanout, redis_client):
    with fanout.subscribe("kadr:job:x:events") as sub:
        assert sub.get(2) == RESYNC  # the first subscription: read the snapshot (again)
        redis_client.publish("kadr:job:x:events", "running")
        assert sub.get(2) == "running"
        redis_client.client_kill_filter(_type="pubsub")
        # Whatever was published while it was away is lost: the waiter is told to re-read.
        assert wait_for(lambda: sub.get(0.5) == RESYNC, 20, "a resync after the reconnect")
        redis_client.publish("kadr:job:x:events", "succeeded")
        assert wait_for(lambda: sub.get(0.5) == "succeeded", 10, "messages again after the reconnect")


def test_a_job_stream_ends_with_the_job_and_frees_its_waiter(store, fanout):
    job = store.create(kind="enhance", owner="a", params={})
    t = _finish_later(store, job["id"])
    events = list(
        job_events(store, job["id"], subscribe=fanout.subscribe, view=lambda j: {"state": j["state"]}, max_seconds=30)
    )
    t.join()
    assert events[1].startswith("event: progress") and '"queued"' in events[1]
    assert events[-1].startswith("event: end") and '"succeeded"' in events[-1]
    assert fanout.waiters() == 0


def test_holds_are_capped_per_key_and_per_process(redis_client):
    holds = Holds(redis_client, per_key=2, per_process=3, longest_seconds=60)
    a1, a2 = holds.acquire("a"), holds.acquire("a")
    with pytest.raises(ApiError) as e:
        holds.acquire("a")
    assert (e.value.status, e.value.code) == (429, "too_many_streams")
    b1 = holds.acquire("b")
    with pytest.raises(ApiError) as e:
        holds.acquire("c")
    assert (e.value.status, e.value.code) == (503, "server_busy") and e.value.headers["Retry-After"]
    a1()
    a1()  # releasing twice gives back one
    assert holds.open() == 2 and redis_client.zcard(Holds.key("a")) == 1
    holds.acquire("a")
    a2(), b1()


def test_a_hold_left_by_a_dead_process_lapses(redis_client):
    holds = Holds(redis_client, per_key=1, per_process=10, longest_seconds=60)
    holds.acquire("a")  # never released: its process died
    redis_client.zadd(Holds.key("a"), {m: time.time() - 1 for m in redis_client.zrange(Holds.key("a"), 0, -1)})
    holds.acquire("a")


def test_a_held_body_gives_its_hold_back_even_if_never_started(redis_client):
    holds = Holds(redis_client, per_key=5, per_process=5, longest_seconds=60)

    def body():
        yield "a"
        yield "b"

    never = Held(body(), holds.acquire("a"))
    never.close()
    ran = Held(body(), holds.acquire("a"))
    assert list(ran) == ["a", "b"]
    ran.close()
    assert holds.open() == 0 and redis_client.zcard(Holds.key("a")) == 0


def test_polls_asked_together_time_out_spread_over_the_last_tenth_of_their_wait():
    """1,000 ``?wait=60`` polls opened together used to time out in one instant and held a
    gevent process ~2 s answering them (bench/crowd.py); each timeout now draws its own
    end within the last quarter."""
    import random
    from collections import Counter

    from gateway.sse import spread_wait

    assert spread_wait(60, draw=lambda: 0.0) == 60
    assert spread_wait(60, draw=lambda: 1.0) == pytest.approx(45)
    rng = random.Random(7)
    ends = [spread_wait(60, draw=rng.random) for _ in range(1000)]
    assert 45 <= min(ends) and max(ends) <= 60
    # Spread, not shifted: 150 slots of 100 ms, ~7 polls each; none holds a crowd.
    slots = Counter(int(e * 10) for e in ends)
    assert len(slots) >= 140 and max(slots.values()) < 25
