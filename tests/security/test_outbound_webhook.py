"""Outbound deliveries (completion callbacks, camera webhooks) against real receivers and
a real redis-server: redirects are not followed with the signature, private destinations
are refused unless allowlisted, the connection goes to the address that was checked
(DNS rebinding), and a delivery survives its deliverer (the lease) and is made once."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from services.contracts import redis_keys
from services.contracts.camera_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from services.store.jobs import JobStore
from services.store.outbox import Outbox
from services.upkeep.callbacks import CallbackRefused, check, networks
from services.upkeep.delivery import Deliverer, key_secret
from tests.fixtures.http_receiver import Receiver

LOOPBACK = ["127.0.0.0/8"]


def _settings(**kw):
    base = dict(
        job_ttl_seconds=3600,
        callback_allow_networks=LOOPBACK,
        callback_attempts=4,
        callback_backoff_seconds=0.01,
        callback_timeout_seconds=5,
        callback_signing_key=None,
        camera=lambda cid: None,
    )
    return SimpleNamespace(**{**base, **kw})


def _ended_job(r, url: str, state="succeeded") -> str:
    jobs = JobStore(r, 3600)
    job = jobs.create(kind="enhance", owner="owner1", params={}, callback_url=url)
    jobs.begin(job["id"], max_deliveries=3, worker="w")
    jobs.transition(job["id"], state, allowed_from=("running",), result={"blob": "jobs/x/result.jpg", "faces": 1})
    return job["id"]


@pytest.mark.parametrize(
    "url, code",
    [
        ("http://127.0.0.1/hook", "callback_forbidden"),
        ("http://10.1.2.3/hook", "callback_forbidden"),
        ("http://169.254.169.254/latest/meta-data", "callback_forbidden"),
        ("http://[::1]/hook", "callback_forbidden"),
        ("http://[::ffff:127.0.0.1]/hook", "callback_forbidden"),
        ("http://[fe80::1]/hook", "callback_forbidden"),
        ("http://0.0.0.0/hook", "callback_forbidden"),
        ("ftp://example.com/hook", "invalid_callback_url"),
        ("http://user:pw@example.com/hook", "invalid_callback_url"),
        ("javascript:alert(1)", "invalid_callback_url"),
        ("http://example.com:99999/", "invalid_callback_url"),
    ],
)
def test_private_and_odd_destinations_are_refused(url, code):
    with pytest.raises(CallbackRefused) as e:
        check(url, [], resolver=lambda h, p: ["93.184.216.34"])
    assert e.value.code == code


def test_a_name_resolving_to_any_private_address_is_refused_and_allowlists_open_it():
    both = lambda h, p: ["93.184.216.34", "192.168.1.10"]  # noqa: E731
    with pytest.raises(CallbackRefused):
        check("https://hooks.example.com/x", [], resolver=both)
    d = check("https://hooks.example.com/x?a=1", networks(["192.168.0.0/16"]), resolver=both)
    assert (d.scheme, d.host, d.port, d.target, d.address) == (
        "https",
        "hooks.example.com",
        443,
        "/x?a=1",
        "93.184.216.34",
    )


def test_the_connection_goes_to_the_address_checked_not_a_second_lookup(redis_client):
    receiver = Receiver(204)
    port = receiver.url.split(":")[2].split("/")[0]
    lookups = []

    def resolver(host, p):  # answers once; a rebinding DNS would answer differently the next time
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.9.9.9"]

    try:
        jid = _ended_job(redis_client, f"http://hooks.kadr.test:{port}/hook")
        d = Deliverer(redis_client, _settings(), resolver=resolver)
        assert d.tick() == 1
        assert lookups == ["hooks.kadr.test"]  # resolved once, at delivery
        headers, body = receiver.posts[0]
        assert headers["Host"] == f"hooks.kadr.test:{port}"
        doc = json.loads(body)
        assert doc["id"] == jid and doc["state"] == "succeeded" and "blob" not in doc["result"]
        secret = key_secret(redis_client, _settings(), "owner1")
        assert headers[SIGNATURE_HEADER] == signature(secret, headers[TIMESTAMP_HEADER], body)
        assert JobStore(redis_client).get(jid)["callback"]["state"] == "delivered"
    finally:
        receiver.close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_with_the_signature(redis_client, status):
    elsewhere = Receiver(204)
    receiver = Receiver(status, location=elsewhere.url)
    try:
        jid = _ended_job(redis_client, receiver.url)
        Deliverer(redis_client, _settings()).tick()
        cb = JobStore(redis_client).get(jid)["callback"]
        assert cb["state"] == "failed" and cb["attempts"] == 1, cb
        assert f"HTTP {status}" in cb["error"] and elsewhere.url in cb["error"]
        assert len(receiver.posts) == 1 and elsewhere.posts == []
    finally:
        receiver.close()
        elsewhere.close()


def test_without_the_allowlist_a_loopback_callback_is_never_sent(redis_client):
    receiver = Receiver(204)
    try:
        jid = _ended_job(redis_client, receiver.url)
        Deliverer(redis_client, _settings(callback_allow_networks=[])).tick()
        cb = JobStore(redis_client).get(jid)["callback"]
        assert cb["state"] == "failed" and "callback_forbidden" in cb["error"] and receiver.posts == []
    finally:
        receiver.close()


def test_retries_survive_a_dead_deliverer_and_end_in_one_delivery(redis_client):
    receiver = Receiver(204, fail_first=2)
    try:
        jid = _ended_job(redis_client, receiver.url)
        ob = Outbox(redis_client)
        # A deliverer claims it and dies before sending: the lease brings it back.
        assert len(ob.claim(now=time.time(), lease=0.2)) == 1
        assert ob.claim(now=time.time()) == []
        d = Deliverer(redis_client, _settings())
        deadline = time.monotonic() + 10  # the lease runs out, then three attempts
        while JobStore(redis_client).get(jid)["callback"]["state"] == "pending" and time.monotonic() < deadline:
            d.tick()
            time.sleep(0.02)
        cb = JobStore(redis_client).get(jid)["callback"]
        assert cb["state"] == "delivered" and cb["attempts"] == 3, cb
        assert receiver.answers == [503, 503, 204] and redis_client.zcard(redis_keys.OUTBOX_DUE) == 0
        # The same end state again (a replayed transition) is not announced twice.
        JobStore(redis_client).transition(jid, "succeeded", allowed_from=("succeeded",))
        assert redis_client.zcard(redis_keys.OUTBOX_DUE) == 0
    finally:
        receiver.close()


def test_a_receiver_that_stays_down_is_given_up_after_the_attempts(redis_client):
    receiver = Receiver(204, fail_first=100)
    try:
        jid = _ended_job(redis_client, receiver.url, state="failed")
        d = Deliverer(redis_client, _settings(callback_attempts=3))
        deadline = time.time() + 5
        while JobStore(redis_client).get(jid)["callback"]["state"] == "pending" and time.time() < deadline:
            d.tick()
            time.sleep(0.02)
        cb = JobStore(redis_client).get(jid)["callback"]
        assert cb["state"] == "failed" and cb["attempts"] == 3 and cb["status"] == 503
        assert json.loads(receiver.posts[0][1])["state"] == "failed"
    finally:
        receiver.close()


def test_a_deleted_job_is_announced_without_coming_back(redis_client):
    receiver = Receiver(204)
    try:
        jid = _ended_job(redis_client, receiver.url)
        JobStore(redis_client).delete(jid)
        Deliverer(redis_client, _settings()).tick()
        assert json.loads(receiver.posts[0][1]) == {
            "type": "job.ended",
            "id": jid,
            "state": "succeeded",
            "deleted": True,
        }
        assert not redis_client.exists(JobStore.job_key(jid))
    finally:
        receiver.close()
