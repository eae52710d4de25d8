from __future__ import annotations

import io

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from services.contracts.settings import Settings
from services.enhance.settings import EnhanceSettings
from services.runtime.settings import WorkerSettings
from services.store.blobs import BlobNotFound, LocalBlobStore, check_key


def test_blob_roundtrip_and_prefix_delete(tmp_path):
    s = LocalBlobStore(tmp_path)
    s.put_bytes("jobs/a/input", b"x" * 10)
    s.put_stream("jobs/a/result.png", io.BytesIO(b"y" * (3 * 1024 * 1024 + 7)))
    assert s.size("jobs/a/result.png") == 3 * 1024 * 1024 + 7
    assert b"".join(s.iter_chunks("jobs/a/result.png")) == b"y" * (3 * 1024 * 1024 + 7)
    s.copy("jobs/a/input", "jobs/b/input")
    assert s.get_bytes("jobs/b/input") == b"x" * 10
    assert s.delete_prefix("jobs/a") == 2
    assert not s.exists("jobs/a/input") and s.exists("jobs/b/input")
    with pytest.raises(BlobNotFound):
        s.get_bytes("jobs/a/input")
    # No temp files left behind by the atomic writes.
    assert not [p for p in tmp_path.rglob(".tmp-*")]


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../b", "a//b", "", "a/b c", "jobs/ä"])
def test_keys_never_escape_the_root(key):
    with pytest.raises(ValueError):
        check_key(key)


def test_settings_from_env_and_forbid_unknown(monkeypatch, tmp_path):
    monkeypatch.setenv("KADR_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("KADR_STORAGE_DIR", str(tmp_path / "b"))
    s = GatewaySettings()
    assert s.max_upload_bytes == 1234 and s.storage_dir.is_absolute()
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)
    # Each process holds only its own fields: a worker's settings refuse the gateway's.
    with pytest.raises(ValidationError, match="max_upload_bytes"):
        EnhanceSettings(max_upload_bytes=1234)


def test_time_limits_must_stay_below_visibility_timeout():
    with pytest.raises(ValidationError, match="visibility_timeout"):
        Settings(visibility_timeout_seconds=100, task_soft_time_limit_seconds=50, task_time_limit_seconds=200)
    with pytest.raises(ValidationError, match="soft"):
        Settings(task_soft_time_limit_seconds=300, task_time_limit_seconds=200)


def test_relative_dirs_become_absolute():
    s = WorkerSettings(models_dir="var/models", storage_dir="var/blobs")
    assert s.models_dir.is_absolute() and s.storage_dir.is_absolute()
