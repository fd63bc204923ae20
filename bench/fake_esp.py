"""A stand-in for SendGrid's v3 mail API on 127.0.0.1, for bench/fanout.

SendGrid is the ESP whose anymail backend sends a whole batch as ONE request with per-recipient
merge data (one `personalization` per recipient: its address, substitutions, headers, custom
args), and gives each recipient its own message id (anymail's generated `anymail_id`, sent in
the personalization's custom_args). The real API answers 202 with an empty body and an
X-Message-Id header; this one does the same, after parsing the body and counting every address.

    python bench/fake_esp.py PORT_FILE      # binds a free port and writes it to PORT_FILE

GET /_stats answers what it has seen so far as JSON; POST /_dump writes every address it saw
(one per line, repeats included) to the path given in the request body.
"""
from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.addresses: Counter[str] = Counter()
        self.message_ids: set[str] = set()
        self.message_id_headers: set[str] = set()
        self.requests = 0
        self.recipients = 0
        self.first_accepted_at: float | None = None
        self.last_accepted_at: float | None = None
        self.errors: list[str] = []

    def stats(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "recipients": self.recipients,
                "distinct": len(self.addresses),
                "repeated": sum(1 for count in self.addresses.values() if count > 1),
                "message_ids": len(self.message_ids),
                "message_id_headers": len(self.message_id_headers),
                "first_accepted_at": self.first_accepted_at,
                "last_accepted_at": self.last_accepted_at,
                "errors": self.errors[:5],
            }


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/_stats":
            self._answer(200, json.dumps(STATE.stats()).encode(), {"Content-Type": "application/json"})
        else:
            self._answer(404)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_dump":
            with STATE.lock, open(body.decode(), "w") as handle:
                for address, count in STATE.addresses.items():
                    handle.write((address + "\n") * count)
            self._answer(204)
            return
        if self.path.rstrip("/") != "/v3/mail/send":
            self._answer(404, b'{"errors":[{"message":"not found"}]}')
            return
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._answer(401, b'{"errors":[{"message":"authorization required"}]}')
            return
        try:
            payload = json.loads(body)
            personalizations = payload["personalizations"]
            addresses = [to["email"] for p in personalizations for to in p["to"]]
            ids = [p.get("custom_args", {}).get("anymail_id") for p in personalizations]
            headers = [p.get("headers", {}).get("Message-ID") or payload.get("headers", {}).get("Message-ID") for p in personalizations]
            if not payload.get("subject") or not payload.get("content"):
                raise ValueError("no subject or content")
        except (ValueError, KeyError, TypeError) as exc:
            with STATE.lock:
                STATE.errors.append(repr(exc))
            self._answer(400, json.dumps({"errors": [{"message": str(exc)}]}).encode())
            return
        now = time.time()
        with STATE.lock:
            STATE.requests += 1
            STATE.recipients += len(addresses)
            STATE.addresses.update(address.lower() for address in addresses)
            STATE.message_ids.update(i for i in ids if i)
            STATE.message_id_headers.update(h for h in headers if h)
            if STATE.first_accepted_at is None:
                STATE.first_accepted_at = now
            STATE.last_accepted_at = now
        self._answer(202, headers={"X-Message-Id": uuid.uuid4().hex[:22]})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as handle:
        handle.write(str(server.server_address[1]))
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
