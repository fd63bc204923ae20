"""Pushing the content version to every web process, so a read needs no round trip to Redis.

With Redis, each process keeps a thread subscribed to a channel on which every bump is also
published. While that subscription is healthy the version is read from memory; before it is
established, and whenever it breaks, readers fall back to reading the shared cache per request.
Subscribing comes before the initial read, so no bump can fall between the two.

Without Redis there is nothing to subscribe to: the file cache read is local and cheap.
"""
from __future__ import annotations

import logging
import os
import threading
import time

logger = logging.getLogger(__name__)

CHANNEL = "statuspage:content-version"


class VersionWatcher:
    def __init__(self, redis_url: str, *, channel: str | None = None, read_current) -> None:
        self.redis_url = redis_url
        self.channel = channel or CHANNEL
        self._read_current = read_current  # () -> str | None: the token in the shared cache
        self._version: str | None = None
        self._healthy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @property
    def version(self) -> str | None:
        """The pushed version, or None when the caller must read the shared cache itself."""
        self._ensure_running()
        return self._version if self._healthy else None

    def publish(self, version: str) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
        try:
            client.publish(self.channel, version)
        finally:
            client.close()
        # This process need not wait for its own message.
        if self._healthy:
            self._version = version

    def stop(self) -> None:
        self._stop.set()

    def _ensure_running(self) -> None:
        # A worker forked from a parent that had started the thread has no thread: start anew.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._healthy, self._version = False, None
        self._thread = threading.Thread(target=self._run, name="content-version-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import redis

        delay = 0.5
        while not self._stop.is_set():
            pubsub = None
            try:
                client = redis.Redis.from_url(self.redis_url, socket_timeout=None, socket_connect_timeout=5, health_check_interval=30)
                pubsub = client.pubsub()
                pubsub.subscribe(self.channel)
                # Only once Redis confirms the subscription is a bump sure to reach us; then read
                # the token, so one published in between is either read or received.
                deadline = time.monotonic() + 10
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "subscribe":
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError("no subscription confirmation from Redis")
                self._version = self._read_current()
                self._healthy = True
                delay = 0.5
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self._version = data.decode() if isinstance(data, bytes) else str(data)
            except Exception as exc:
                logger.warning("content version subscription lost (%s); reading the cache per request", exc)
            finally:
                self._healthy = False
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
            time.sleep(delay)
            delay = min(delay * 2, 30)
