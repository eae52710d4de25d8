"""Where kadr may send a completion callback, and sending it there.

A ``callback_url`` comes from a user, so the server must not become their way into the
network it sits in (server-side request forgery): an address that is private, loopback,
link-local, multicast, reserved or unspecified is refused unless an operator allowlists
its network (``KADR_CALLBACK_ALLOW_NETWORKS``). The check runs twice: when the work is
created (a clear 400 at once) and at every delivery, where the name is resolved once and
the connection goes to the very address that was checked, so a DNS answer that changes
between the check and the connect (rebinding) cannot switch the destination. HTTPS keeps
verifying the certificate against the URL's host name (SNI and hostname check), not the
address. Redirects are never followed: the request carries a signature, and a 3xx would
hand it to wherever the receiver points.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import urllib3

MAX_URL = 2048
Resolver = Callable[[str, int], list[str]]
Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]


class CallbackRefused(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent
    address: str  # the checked address the connection goes to


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # typeshed's address may also be (int, bytes), from a Python built without IPv6; here the host is a str.
    return list(dict.fromkeys(cast(str, info[4][0]) for info in infos))


def networks(cidrs: Iterable[str]) -> Networks:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def check(url: str, allow: Networks, *, resolver: Resolver = resolve) -> Destination:
    """The destination of ``url`` if every address its host resolves to may be reached;
    ``CallbackRefused`` (code and message for the client) otherwise."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise CallbackRefused("invalid_callback_url", f"callback_url must be a URL of at most {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("invalid_callback_url", "callback_url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("invalid_callback_url", "callback_url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused("invalid_callback_url", "callback_url has an invalid port") from None
    host = parts.hostname
    try:
        addresses = [host] if _is_ip(host) else resolver(host, port)
    except OSError as e:
        raise CallbackRefused("callback_unresolvable", f"callback_url's host {host!r} does not resolve: {e}") from None
    if not addresses:
        raise CallbackRefused("callback_unresolvable", f"callback_url's host {host!r} does not resolve")
    for a in addresses:
        ip = ipaddress.ip_address(a.split("%", 1)[0])
        if not ip.is_global and not any(ip in n for n in allow):
            raise CallbackRefused(
                "callback_forbidden",
                f"callback_url's host {host!r} is {ip}, a private, loopback or link-local address; "
                "an operator can allow its network with KADR_CALLBACK_ALLOW_NETWORKS",
            )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port, target, addresses[0])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def post(dest: Destination, body: bytes, headers: dict[str, str], *, timeout: float) -> tuple[int, str]:
    """POST to the checked address; (status, Location or "")."""
    common: dict[str, Any] = dict(timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, maxsize=1)
    pool: urllib3.HTTPConnectionPool
    if dest.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            dest.address,
            dest.port,
            server_hostname=dest.host,
            assert_hostname=dest.host,
            cert_reqs="CERT_REQUIRED",
            **common,
        )
    else:
        pool = urllib3.HTTPConnectionPool(dest.address, dest.port, **common)
    host_header = dest.host if dest.port in (80, 443) else f"{dest.host}:{dest.port}"
    with pool:
        resp = pool.urlopen(
            "POST",
            dest.target,
            body=body,
            redirect=False,
            assert_same_host=False,
            headers={"Host": host_header, "User-Agent": "kadr-callbacks", **headers},
            preload_content=True,
        )
        return resp.status, resp.headers.get("Location", "")
