"""The pushed content version, against a real Redis (CI_REDIS_URL, or the local default)."""
from __future__ import annotations

import os
import secrets
import time

import pytest

from incidents.version_watch import VersionWatcher

REDIS_URL = os.environ.get("CI_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS_URL}")


def _eventually(read, expected, within: float = 5.0):
    # Waits for a background thread to catch up; the bound only keeps a failure from hanging.
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = read()
        if value == expected:
            return value
        time.sleep(0.01)
    return read()


@pytest.fixture
def channel():
    return f"test:content-version:{secrets.token_hex(4)}"


def test_a_watcher_starts_from_the_shared_token(channel):
    watcher = VersionWatcher(REDIS_URL, channel=channel, read_current=lambda: "v0")
    try:
        assert _eventually(lambda: watcher.version, "v0") == "v0"
    finally:
        watcher.stop()


def test_a_bump_published_elsewhere_reaches_the_watcher(channel):
    reader = VersionWatcher(REDIS_URL, channel=channel, read_current=lambda: "v0")
    writer = VersionWatcher(REDIS_URL, channel=channel, read_current=lambda: "v0")
    try:
        _eventually(lambda: reader.version, "v0")
        writer.publish("v1")
        assert _eventually(lambda: reader.version, "v1") == "v1"
    finally:
        reader.stop()
        writer.stop()


def test_without_a_subscription_readers_are_told_to_read_the_cache(channel):
    watcher = VersionWatcher("redis://127.0.0.1:1/0", channel=channel, read_current=lambda: "v0")
    try:
        assert watcher.version is None
    finally:
        watcher.stop()


def test_the_page_follows_a_bump_through_redis(client, page, settings, channel, monkeypatch, django_capture_on_commit_callbacks):
    from incidents import cache, services

    settings.REDIS_URL = REDIS_URL
    settings.CACHES = {"default": {"BACKEND": "statuspage.lib.redis_cache.RedisCache", "LOCATION": REDIS_URL}}
    from django.core.cache import cache as shared

    monkeypatch.setattr(cache, "shared_cache", shared)
    monkeypatch.setattr("incidents.version_watch.CHANNEL", channel)
    cache.reset_version_watcher()
    shared.delete(cache.VERSION_KEY)
    try:
        watcher = cache._version_watcher()
        before = client.get("/api/v2/status.json")
        _eventually(lambda: watcher.version is not None, True)
        with django_capture_on_commit_callbacks(execute=True):
            services.page_save(page=page)  # any committed change bumps the version
        token = shared.get(cache.VERSION_KEY)
        assert _eventually(lambda: watcher.version, token) == token
        assert client.get("/api/v2/status.json")["ETag"] != before["ETag"]
    finally:
        cache.reset_version_watcher()
        shared.delete(cache.VERSION_KEY)
