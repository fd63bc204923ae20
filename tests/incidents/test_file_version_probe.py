"""Without Redis, the version token lives in the file cache and is re-read only when it changes."""
from __future__ import annotations

import pytest
from django.core.cache import cache as shared
from django.core.cache.backends.filebased import FileBasedCache

from incidents import cache


@pytest.fixture
def file_cache(settings, tmp_path):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}}
    cache.reset_version_watcher()
    cache.clear_local()
    yield
    cache.reset_version_watcher()


def test_the_token_is_read_from_the_file_cache(file_cache):
    shared.set(cache.VERSION_KEY, "abc", timeout=None)

    assert cache.current_version().startswith("abc.")


def test_an_unchanged_file_is_not_read_again(file_cache, monkeypatch):
    shared.set(cache.VERSION_KEY, "abc", timeout=None)
    cache.current_version()
    reads = []
    original = FileBasedCache.get
    monkeypatch.setattr(FileBasedCache, "get", lambda self, *a, **k: reads.append(a) or original(self, *a, **k))

    cache.current_version()

    assert reads == []


def test_a_bump_by_another_process_is_seen_on_the_next_request(file_cache):
    shared.set(cache.VERSION_KEY, "abc", timeout=None)
    cache.current_version()

    cache._bump()  # the file is replaced, as another process would do

    assert not cache.current_version().startswith("abc.")
