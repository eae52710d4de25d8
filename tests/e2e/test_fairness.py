"""Who goes first on a shared worker (real enhance worker, one pool process): a single
photo ahead of batch items already waiting, and two keys' batches by turns."""

from __future__ import annotations

import itertools

import pytest

from testbed.photos import flat_png
from testbed.stack import wait_for
from tests.e2e.conftest import create_key, key_session, running_stack

pytestmark = pytest.mark.slow

FAST = {"quality": "fast", "upscale": 1, "max_faces": 0}
WINDOW = 2


def _batch_of(s, n: int, seed: int) -> str:
    bid = s.post(f"{s.base}/api/v1/batches", json={"params": FAST}).json()["id"]
    for i in range(0, n, 5):
        files = [("files", (f"p{j}.png", flat_png(seed=seed + j))) for j in range(i, min(n, i + 5))]
        assert s.post(f"{s.base}/api/v1/batches/{bid}/items", files=files).status_code == 202
    s.post(f"{s.base}/api/v1/batches/{bid}/close").raise_for_status()
    return bid


def _get(s, url: str, **kw) -> dict:
    r = s.get(url, **kw)
    assert r.status_code == 200, (url, r.status_code, r.text)
    return r.json()


def _items(s, bid: str) -> list[dict]:
    return [
        _get(s, f"{s.base}/api/v1/jobs/{i['id']}") for i in _get(s, f"{s.base}/api/v1/batches/{bid}/items")["items"]
    ]


def test_a_single_photo_overtakes_waiting_batch_items_and_two_keys_batches_take_turns(
    redis_server, models_dir, tmp_path
):
    with running_stack(redis_server, models_dir, tmp_path, KADR_BATCH_WINDOW=str(WINDOW)) as st:
        alice = key_session(create_key(st["env"], "fair-alice"), st["url"])
        bob = key_session(create_key(st["env"], "fair-bob"), st["url"])
        a = _batch_of(alice, 16, seed=0)
        b = _batch_of(bob, 12, seed=100)
        single = bob.post(
            f"{st['url']}/api/v1/enhance", files={"file": ("one.png", flat_png(seed=999))}, data=FAST
        ).json()["id"]
        for s, bid in ((alice, a), (bob, b)):
            wait_for(
                lambda s=s, bid=bid: (
                    s.get(f"{s.base}/api/v1/batches/{bid}", params={"limit": 0}).json()["state"] == "succeeded"
                ),
                300,
                f"batch {bid} to end",
            )
        one = wait_for(
            lambda: (j := bob.get(f"{st['url']}/api/v1/jobs/{single}").json())["state"] == "succeeded" and j,
            60,
            "the single photo",
        )
        items = [(j["started_at"], "A") for j in _items(alice, a)] + [(j["started_at"], "B") for j in _items(bob, b)]
        items.sort()
        # The single photo waited for the item running when it came, at most: no batch
        # item that was waiting then started before it.
        overtaken = [t for t, _ in items if one["created_at"] < t < one["started_at"]]
        assert len(overtaken) <= 1, (one, items)
        assert one["started_at"] < max(t for t, who in items if who == "A")  # well before alice's batch ended
        # The batches take turns once both have items waiting: each feeds WINDOW items at
        # a time at the same step, so neither runs more than a window in a row while the
        # other has work left.
        first_b = next(i for i, (_, who) in enumerate(items) if who == "B")
        last_a = max(i for i, (_, who) in enumerate(items) if who == "A")
        both = [who for _, who in items[first_b : last_a + 1]]
        runs = [len(list(g)) for _, g in itertools.groupby(both)]
        assert first_b < last_a and max(runs) <= 2 * WINDOW, "".join(who for _, who in items)
