"""The one door for outbound HTTP: public destinations only, no redirects, bounded in time and size.

Every request the project makes to a URL (subscriber webhooks, Slack and Teams incoming
webhooks, the SMS provider) goes through `post`/`get` here. Receiver URLs are typed in by
strangers, so the process treats each of them as a potential server-side request forgery:

* `check_public_url` refuses anything that is not an https URL whose host name resolves
  only to globally routable addresses (a setting allow-lists networks of self-hosted
  receivers);
* `post`/`get` resolve the name once more at connection time, vet every answer, and then
  connect to the vetted IP itself (TLS is still verified against the host name), so a DNS
  answer that changes between the check and the connection (DNS rebinding) cannot steer
  the request inside;
* redirects are never followed, so a public receiver cannot bounce us to an internal one;
* time and response size are capped, and the outcome is classified for the retry logic
  (`OutboundError.permanent`).

Nothing here logs a full URL: Slack and Teams URLs carry their secret in the path.

The ESP API calls that django-anymail makes use `requests` directly; their endpoints are
operator-configured, not subscriber-supplied, so they stay outside this seam.
"""
from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError as Urllib3HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

logger = logging.getLogger("statuspage.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "StatusPage/1"
# How much of an error response is kept for the message (a receiver's reason, Twilio's JSON).
_ERROR_BODY_BYTES = 2048
_READ_CHUNK = 16 * 1024


class OutboundError(Exception):
    """A request that did not end in a 2xx answer.

    `permanent` tells the caller whether repeating the same request can ever succeed;
    `retry_after` (seconds) is the receiver's own hint from a Retry-After header.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after
        # The start of the receiver's answer, for providers that explain errors in the body.
        self.body = body


class UnsafeDestination(OutboundError):
    """The URL is not one we may connect to. The message is fit to show to whoever typed it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=urllib3.HTTPHeaderDict)  # case-insensitive
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    host_header: str
    path: str
    addresses: tuple[IPAddress, ...]


# --- deciding what is public -------------------------------------------------------------

# Named ranges first, so a refusal can say what kind of address it met. Everything that
# `ipaddress` does not consider globally reachable is refused afterwards as well.
_NAMED_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "a reserved 'this network' address"),
    ("127.0.0.0/8", "a loopback address"),
    ("::1/128", "a loopback address"),
    ("::/128", "the unspecified address"),
    ("10.0.0.0/8", "a private network address"),
    ("172.16.0.0/12", "a private network address"),
    ("192.168.0.0/16", "a private network address"),
    ("fc00::/7", "a private network address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("169.254.169.254/32", "a cloud metadata address"),
    ("fd00:ec2::254/128", "a cloud metadata address"),
    ("169.254.0.0/16", "a link-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("224.0.0.0/4", "a multicast address"),
    ("ff00::/8", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("64:ff9b:1::/48", "a local NAT64 address"),
)
_NAMED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), reason) for cidr, reason in _NAMED_RANGES
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address carries, which is where packets really go."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is the one reached
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _non_public_reason(address: IPAddress) -> str | None:
    """Why this address must not be contacted, or None if it is a public internet address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = _non_public_reason(embedded)
            if reason:
                return reason
            if address.ipv4_mapped is not None or address in _NAT64:
                # These reach exactly the embedded IPv4 address, so it alone decides (and
                # ipaddress would otherwise call ::ffff:0:0/96 private and 64:ff9b::/96 reserved).
                return None
    for network, reason in _NAMED_NETWORKS:
        if address in network:
            return reason
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return "not a public internet address"
    return None


@lru_cache(maxsize=8)
def _parse_networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _allowed_networks() -> tuple[IPNetwork, ...]:
    return _parse_networks(tuple(getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ()) or ()))


def _is_allow_listed(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for candidate in candidates for network in networks if candidate.version == network.version)


# --- parsing and resolving ----------------------------------------------------------------


def _parse(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, ascii host, port, Host header, path?query) or UnsafeDestination."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeDestination("This is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeDestination("The URL must start with https://")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("The URL must not contain a user name or password.")
    hostname = parts.hostname
    if not hostname:
        raise UnsafeDestination("The URL has no host name.")
    try:
        ipaddress.ip_address(hostname)
        ascii_host = hostname
    except ValueError:
        try:
            ascii_host = hostname.rstrip(".").encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UnsafeDestination("The URL's host name is not valid.") from None
        if not ascii_host:
            raise UnsafeDestination("The URL has no host name.")
    default_port = 443 if scheme == "https" else 80
    port = port or default_port
    shown_host = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    host_header = shown_host if port == default_port else f"{shown_host}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, ascii_host, port, host_header, path


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    seen: dict[IPAddress, None] = {}
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # IPv6 sockaddrs may carry a %scope suffix on link-local answers; the address decides.
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return tuple(seen)


def _vet(url: str, *, at_connection: bool) -> _Target:
    scheme, host, port, host_header, path = _parse(url)
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError, ValueError):
        if at_connection:
            # A name that resolved when it was entered and fails now is most often a DNS
            # hiccup; retrying is safe because nothing was contacted.
            raise OutboundError(f"Could not resolve {host} right now.", permanent=False) from None
        raise UnsafeDestination(f"The host name {host} cannot be found.") from None
    if not addresses:
        if at_connection:
            raise OutboundError(f"{host} has no usable address right now.", permanent=False)
        raise UnsafeDestination(f"The host name {host} has no internet address.")

    allowed = _allowed_networks()
    all_allow_listed = all(_is_allow_listed(address, allowed) for address in addresses)
    for address in addresses:
        if _is_allow_listed(address, allowed):
            continue
        reason = _non_public_reason(address)
        if reason:
            # The address itself is left out: telling a stranger what an internal name
            # resolves to would be a small leak of its own.
            raise UnsafeDestination(
                f"{host} points to {reason}; only public internet addresses can receive notifications."
            )
    if scheme == "http" and not all_allow_listed:
        raise UnsafeDestination("The URL must start with https:// (plain http is not encrypted).")
    return _Target(scheme, host, port, host_header, path, addresses)


def check_public_url(url: str) -> None:
    """Raise UnsafeDestination (with a message fit for the person who typed the URL) unless it is safe to POST to."""
    _vet(url, at_connection=False)


# --- the request itself -------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - current).total_seconds())


def _pool(target: _Target, address: IPAddress, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    # One pool per request, pinned to the address that was just vetted: a pool kept across
    # requests would reuse connections to whatever the name resolved to earlier.
    common: dict[str, Any] = {"timeout": timeout, "maxsize": 1, "block": False, "retries": False}
    if target.scheme == "https":
        ca_bundle = getattr(settings, "OUTBOUND_CA_BUNDLE", "") or _default_ca_bundle()
        return urllib3.HTTPSConnectionPool(
            str(address),
            target.port,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_bundle,
            # SNI and certificate checks use the name from the URL, not the IP we dial.
            server_hostname=target.host,
            assert_hostname=target.host,
            **common,
        )
    return urllib3.HTTPConnectionPool(str(address), target.port, **common)


def _default_ca_bundle() -> str:
    import certifi  # installed with requests (anymail); the same roots requests would use

    return certifi.where()


def _read_capped(response: urllib3.BaseHTTPResponse, limit: int, deadline: float, host: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise OutboundError(f"{host} took too long to send its answer.", permanent=False)
        chunk = response.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise _TooLarge()


class _TooLarge(Exception):
    pass


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    max_response_bytes: int | None = None,
) -> Response:
    """Send one request to a vetted public address and return its 2xx answer, else raise OutboundError."""
    target = _vet(url, at_connection=True)
    timeout_s = float(timeout if timeout is not None else getattr(settings, "OUTBOUND_HTTP_TIMEOUT", 10))
    limit = int(max_response_bytes or getattr(settings, "OUTBOUND_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES))
    started = time.monotonic()
    deadline = started + timeout_s

    sent_headers = urllib3.HTTPHeaderDict({"User-Agent": USER_AGENT})
    for name, value in (headers or {}).items():
        sent_headers[name] = value
    # Always ours: the caller must not be able to aim the Host header elsewhere.
    sent_headers["Host"] = target.host_header

    response: urllib3.BaseHTTPResponse | None = None
    last_error: Exception | None = None
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        pool = _pool(target, address, urllib3.Timeout(connect=remaining, read=remaining))
        try:
            response = pool.urlopen(
                method,
                target.path,
                body=body,
                headers=sent_headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
                release_conn=False,
            )
        except (NewConnectionError, ConnectTimeoutError) as exc:
            # Nothing reached the receiver yet, so the next address of the name may be tried.
            last_error = exc
            pool.close()
            continue
        except ReadTimeoutError:
            pool.close()
            _log(method, target, None, started, "timeout")
            raise OutboundError(f"{target.host} did not answer within {timeout_s:g} s.", permanent=False) from None
        except SSLError as exc:
            pool.close()
            _log(method, target, None, started, "tls error")
            # Certificates get fixed; a receiver with a broken one is retried, then quarantined.
            raise OutboundError(f"TLS with {target.host} failed: {exc}", permanent=False) from None
        except (Urllib3HTTPError, OSError) as exc:
            pool.close()
            _log(method, target, None, started, "connection error")
            raise OutboundError(f"The connection to {target.host} failed: {type(exc).__name__}", permanent=False) from None
        try:
            return _finish(method, target, response, limit, deadline, started)
        finally:
            response.release_conn()
            pool.close()

    _log(method, target, None, started, "unreachable")
    detail = f" ({type(last_error).__name__})" if last_error else ""
    raise OutboundError(f"Could not connect to {target.host}{detail}.", permanent=False)


def _finish(
    method: str,
    target: _Target,
    response: urllib3.BaseHTTPResponse,
    limit: int,
    deadline: float,
    started: float,
) -> Response:
    status = response.status
    headers = urllib3.HTTPHeaderDict(response.headers)
    try:
        if 200 <= status < 300:
            declared = headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _TooLarge()
            body = _read_capped(response, limit, deadline, target.host)
        else:
            body = _read_error_body(response, deadline, target.host)
    except _TooLarge:
        _log(method, target, status, started, "response too large")
        # Retrying cannot make the answer smaller, and a receiver that streams us megabytes
        # is misbehaving; the caller must not count this as delivered either.
        raise OutboundError(
            f"{target.host} answered with more than {limit} bytes; the answer was not read.",
            permanent=True,
            status=status,
        ) from None
    except ReadTimeoutError:
        _log(method, target, status, started, "timeout")
        raise OutboundError(f"{target.host} did not finish its answer in time.", permanent=False, status=status) from None
    except (Urllib3HTTPError, OSError) as exc:
        _log(method, target, status, started, "connection error")
        raise OutboundError(
            f"The connection to {target.host} broke while reading its answer: {type(exc).__name__}",
            permanent=False,
            status=status,
        ) from None

    _log(method, target, status, started, "")
    if 200 <= status < 300:
        return Response(status=status, headers=headers, body=body)
    raise _classify(target, status, headers, body)


def _read_error_body(response: urllib3.BaseHTTPResponse, deadline: float, host: str) -> bytes:
    try:
        return _read_capped(response, _ERROR_BODY_BYTES, deadline, host)
    except _TooLarge:
        return b""  # an error page we do not need; its status already says enough


def _classify(target: _Target, status: int, headers: Mapping[str, str], body: bytes) -> OutboundError:
    host = target.host
    retry_after = parse_retry_after(headers.get("Retry-After"))
    snippet = body[:300].decode("utf-8", errors="replace").strip()
    said = f": {snippet}" if snippet else ""
    if 300 <= status < 400:
        location = (headers.get("Location") or "(no Location)")[:200]
        # Permanent on purpose: following would let a public receiver bounce us to an internal
        # address, and repeating the request will only be redirected again. The owner has to
        # enter the final URL, which is what the message tells them.
        return OutboundError(
            f"{host} answered {status} redirecting to {location}; redirects are not followed, use the final URL.",
            permanent=True,
            status=status,
            body=body,
        )
    if status == 429:
        return OutboundError(f"{host} is rate limiting us (429){said}", permanent=False, status=status, retry_after=retry_after, body=body)
    if status == 408:
        return OutboundError(f"{host} timed out reading the request (408){said}", permanent=False, status=status, retry_after=retry_after, body=body)
    if status == 410:
        return OutboundError(f"{host} says the endpoint is gone (410){said}", permanent=True, status=status, body=body)
    if 400 <= status < 500:
        return OutboundError(f"{host} refused the request ({status}){said}", permanent=True, status=status, body=body)
    # 5xx and anything outside the HTTP ranges: the receiver is having trouble, try later.
    return OutboundError(f"{host} failed with {status}{said}", permanent=False, status=status, retry_after=retry_after, body=body)


def _log(method: str, target: _Target, status: int | None, started: float, problem: str) -> None:
    # Host only: webhook URLs of Slack and Teams carry their secret in the path.
    elapsed_ms = (time.monotonic() - started) * 1000
    if problem:
        logger.info("outbound %s %s -> %s (%s) in %.0f ms", method, target.host, status or "-", problem, elapsed_ms)
    else:
        logger.debug("outbound %s %s -> %s in %.0f ms", method, target.host, status, elapsed_ms)


def post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float | None = None,
    max_response_bytes: int | None = None,
) -> Response:
    return request("POST", url, body=body, headers=headers, timeout=timeout, max_response_bytes=max_response_bytes)


def get(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    max_response_bytes: int | None = None,
) -> Response:
    return request("GET", url, headers=headers, timeout=timeout, max_response_bytes=max_response_bytes)
