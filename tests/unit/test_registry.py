"""Model registry: loaded once under a lock, states that readiness can trust."""

from __future__ import annotations

import threading

import pytest

from services.runtime.registry import MissingWeightsError, ModelRegistry, ModelUnavailable


def test_loads_once_even_when_many_threads_ask_at_once():
    reg = ModelRegistry()
    calls = []
    gate = threading.Event()

    def loader():
        calls.append(1)
        gate.wait(5)
        return object()

    reg.register("m", loader, version="1")
    got = []
    threads = [threading.Thread(target=lambda: got.append(reg.get("m"))) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(x) for x in got}) == 1
    assert reg.states()["m"]["state"] == "ready" and reg.states()["m"]["load_seconds"] is not None


def test_missing_files_are_reported_without_loading():
    reg = ModelRegistry()
    reg.register("m", lambda: pytest.fail("must not load"), version="1", check_files=lambda: ["w.pth"])
    assert reg.states()["m"]["state"] == "missing_weights"
    with pytest.raises(ModelUnavailable, match="kadr models download"):
        reg.get("m")


def test_a_failing_load_says_why():
    reg = ModelRegistry()

    def broken():
        raise RuntimeError("size mismatch for conv1.weight")

    reg.register("m", broken, version="1")
    reg.warm_up()
    st = reg.states()["m"]
    assert st["state"] == "failed" and "size mismatch" in st["message"]

    def vanished():
        raise MissingWeightsError("missing: w.pth")

    reg.register("n", vanished, version="1")
    with pytest.raises(ModelUnavailable):
        reg.get("n")
    assert reg.states()["n"]["state"] == "missing_weights"


def test_models_to_warm_are_loading_before_the_first_heartbeat():
    reg = ModelRegistry()
    reg.register("warm", lambda: 1, version="1")
    reg.register("lazy", lambda: 2, version="1")
    reg.announce_warm_up(["warm"])
    assert reg.states()["warm"]["state"] == "loading" and reg.states()["lazy"]["state"] == "not_loaded"
    reg.warm_up(["warm"])
    assert reg.states()["warm"]["state"] == "ready"
    with reg.use("lazy") as v:
        assert v == 2
