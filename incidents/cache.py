"""The read path's cache: one content version, one snapshot per version, rendered bytes per output.

Every write calls content_changed(), which bumps a version token in the shared cache once the
transaction commits. Readers compare their in-process copy against that token, so a request that
finds its output already rendered costs no SQL, and no process serves a page older than the last
commit. With Redis the token is also published, and each process holds it in memory while its
subscription is healthy (incidents.version_watch), so a read costs no round trip either.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
from django.db import connection, transaction

logger = logging.getLogger(__name__)

VERSION_KEY = "statuspage:content-version"
# Shared entries are also rebuilt every hour: uptime bars roll over at midnight and "upcoming"
# lists age even when nobody writes (current_version() carries the hour).
SHARED_TTL = 3600
GZIP_MIN_BYTES = 1024


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str
    # Compressed once per version, so gzip costs nothing per request (None when not worth it).
    gzipped: bytes | None = None


@dataclass
class _Local:
    version: str = ""
    values: dict[tuple, object] = field(default_factory=dict)


_local = _Local()
_lock = threading.Lock()


_watcher = None
_watcher_decided = False  # settings are read once per process: this runs on every request


def _version_watcher():
    """The push channel for the version token, when the shared cache is Redis (None otherwise)."""
    global _watcher, _watcher_decided
    if not _watcher_decided:
        if getattr(settings, "REDIS_URL", "") and settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
            from incidents.version_watch import VersionWatcher

            _watcher = VersionWatcher(settings.REDIS_URL, read_current=_shared_version)
        _watcher_decided = True
    return _watcher


class _FileVersionProbe:
    """With the file cache, re-read the token only when its file changed.

    Django's file cache replaces a file by renaming a new one over it, so (inode, mtime, size)
    changes on every write; one stat() is much cheaper than opening and unpickling the file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp: tuple | None = None
        self.version: str | None = None

    def read(self) -> str | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self.stamp:
            # Stat first, read second: a write in between leaves a stamp that no longer
            # matches, so the next request reads again.
            self.version, self.stamp = shared_cache.get(VERSION_KEY), stamp
        return self.version


_file_probe: _FileVersionProbe | None = None
_file_probe_decided = False


def _version_file_probe() -> _FileVersionProbe | None:
    global _file_probe, _file_probe_decided
    if not _file_probe_decided:
        backend = caches["default"]
        if isinstance(backend, FileBasedCache):
            _file_probe = _FileVersionProbe(backend._key_to_file(VERSION_KEY))
        _file_probe_decided = True
    return _file_probe


def reset_version_watcher() -> None:
    """Stop and forget the fast version readers, so the next read decides again (tests that
    switch caches)."""
    global _watcher, _watcher_decided, _file_probe, _file_probe_decided
    if _watcher is not None:
        _watcher.stop()
    _watcher, _watcher_decided, _file_probe, _file_probe_decided = None, False, None, False


def _bump() -> None:
    version = secrets.token_hex(8)
    shared_cache.set(VERSION_KEY, version, timeout=None)
    watcher = _version_watcher()
    if watcher is not None:
        try:
            watcher.publish(version)
        except Exception:  # readers whose subscription missed it re-read the cache on reconnect
            logger.exception("could not publish the content version")
    if getattr(settings, "STATIC_EXPORT_DIR", ""):
        from incidents.export import export_static_site

        try:
            export_static_site()
        except Exception:  # the commit stands; the next change rewrites the files
            logger.exception("static export failed")


class _PendingBump:
    """One bump shared by every content_changed() of a transaction: the first callback to run does it."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            _bump()


def content_changed() -> None:
    """Invalidate every cached page once the current transaction commits (once per transaction).

    Every call registers a callback, because skipping the registration when one is already
    queued loses the bump whenever that earlier one never runs on its own (tests keep one outer
    transaction and run only the callbacks they capture); the shared _PendingBump keeps it to
    one bump and one static export per commit.
    """
    pending = getattr(connection, "_statuspage_pending_bump", None)
    if pending is None or pending.done:
        pending = _PendingBump()
        connection._statuspage_pending_bump = pending
    transaction.on_commit(pending)


def _shared_version() -> str:
    version = shared_cache.get(VERSION_KEY)
    if version is None:
        shared_cache.add(VERSION_KEY, secrets.token_hex(8), timeout=None)
        version = shared_cache.get(VERSION_KEY)
    return version


def current_version() -> str:
    """The content version token, with the hour (so hourly-ageing outputs are rebuilt too)."""
    watcher = _version_watcher()
    version = watcher.version if watcher is not None else None
    if version is None:
        probe = _version_file_probe()
        version = probe.read() if probe is not None else None
    return f"{version or _shared_version()}.{int(time.time()) // 3600}"


def _remember(version: str, key: tuple, value: object) -> None:
    with _lock:
        if _local.version != version:
            _local.version, _local.values = version, {}
        _local.values[key] = value


def cached(key: tuple, build: Callable[[], object], *, version: str | None = None, share: bool = True) -> object:
    """A value at the current content version: from this process, else the shared cache, else built.

    Shared entries spare the database when many processes wake up to a new version at once;
    rendered bytes stay process-local (share=False) because rendering is cheap and they are big.
    """
    version = version or current_version()
    if _local.version == version and key in _local.values:
        return _local.values[key]
    shared_key = "statuspage:" + hashlib.blake2b(repr((version, key)).encode(), digest_size=16).hexdigest()
    value = shared_cache.get(shared_key) if share else None
    if value is None:
        value = build()
        if share:
            shared_cache.set(shared_key, value, timeout=SHARED_TTL)
    _remember(version, key, value)
    return value


def etag_for(version: str, key: tuple) -> str:
    return '"' + hashlib.blake2b(repr((version, key)).encode(), digest_size=10).hexdigest() + '"'


def rendered(key: tuple, build: Callable[[], tuple[bytes, str]], *, version: str | None = None) -> Rendered:
    """The bytes of one output at the current version, rendered at most once per process."""
    version = version or current_version()

    def render() -> Rendered:
        body, content_type = build()
        gzipped = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
        return Rendered(body=body, content_type=content_type, gzipped=gzipped)

    return cached(("rendered", *key), render, version=version, share=False)


def clear_local() -> None:
    """Forget the in-process copy (tests, and processes that must re-read at once)."""
    with _lock:
        _local.version, _local.values = "", {}
