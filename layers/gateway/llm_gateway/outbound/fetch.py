"""Fetching external media URLs safely (SSRF guard), within size and time limits.

- Only `https` (and `http` when `LLMGW_MEDIA_ALLOW_HTTP=1`, for development).
- The host is resolved once; every address must be public: loopback, private, link-local
  (169.254.0.0/16 — the cloud metadata service included), carrier-grade NAT, multicast,
  reserved and unspecified addresses are refused, for IPv4 and IPv6 (mapped addresses too).
- The connection goes to the address that was checked (no second DNS lookup to rebind), with
  TLS SNI and certificate checks against the original host name.
- Redirects are followed by hand (at most 3), and each hop is checked again.
- The body is streamed and cut at the size limit; the whole fetch has one deadline.

`LLMGW_MEDIA_ALLOWED_CIDRS` (comma-separated) exempts networks on purpose, e.g. a test server
on 127.0.0.1; it is empty by default.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from llm_gateway.api.errors import GatewayError

MAX_REDIRECTS = 3
_BLOCKED_V4 = [ipaddress.ip_network(n) for n in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15")]


@dataclass(slots=True)
class Fetched:
    data: bytes
    content_type: str | None
    final_url: str


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    raw = os.environ.get("LLMGW_MEDIA_ALLOWED_CIDRS", "")
    return [ipaddress.ip_network(c.strip(), strict=False) for c in raw.split(",") if c.strip()]


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address must not be fetched from (None when it is a public address)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _allowed_networks()):
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and any(ip in n for n in _BLOCKED_V4)):
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "a non-public address"
    return None


def _resolve(host: str, port: int) -> str:
    """The one address to connect to, after checking every address the name resolves to."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        infos = [str(literal)]
    except ValueError:
        try:
            infos = list(dict.fromkeys(ai[4][0] for ai in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
        except socket.gaierror:
            raise GatewayError("validation_error", f"Media URL host '{host[:100]}' does not resolve.",
                               errors=[{"path": "url", "message": "host does not resolve"}]) from None
    for addr in infos:
        problem = address_problem(ipaddress.ip_address(addr.split("%")[0]))
        if problem:
            raise GatewayError(
                "validation_error",
                f"Media URL host '{host[:100]}' resolves to {problem}; the gateway only fetches from public addresses.",
                errors=[{"path": "url", "message": f"blocked: {problem}"}],
            )
    return infos[0]


def _check_scheme(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    allowed = {"https", "http"} if os.environ.get("LLMGW_MEDIA_ALLOW_HTTP") == "1" else {"https"}
    if parts.scheme not in allowed or not parts.hostname:
        raise GatewayError("validation_error", f"Media URLs must be https:// (or s3:// of this gateway); got '{url[:100]}'.",
                           errors=[{"path": "url", "message": "unsupported URL scheme"}])
    if parts.username or parts.password:
        raise GatewayError("validation_error", "Media URLs must not carry credentials.", errors=[{"path": "url", "message": "credentials in URL"}])
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def fetch_url(client: httpx.Client, url: str, *, max_bytes: int, timeout_s: float) -> Fetched:
    """GET `url` with the SSRF guard; `validation_error` for refused or oversized media."""
    deadline = time.monotonic() + timeout_s
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port = _check_scheme(current)
        address = _resolve(host, port)
        parts = urlsplit(current)
        ip_host = f"[{address}]" if ":" in address else address
        target = parts._replace(netloc=f"{ip_host}:{port}").geturl()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GatewayError("provider_timeout", f"Fetching media from '{host[:100]}' took too long.", timeout="media")
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "*/*", "User-Agent": "llm-gateway-media/1"}
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            with client.stream("GET", target, headers=headers, extensions=extensions,
                               timeout=httpx.Timeout(remaining), follow_redirects=False) as resp:
                if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("location"):
                    current = urljoin(current, resp.headers["location"])
                    continue
                if resp.status_code >= 400:
                    raise GatewayError("validation_error", f"Media URL answered HTTP {resp.status_code}.",
                                       errors=[{"path": "url", "message": f"HTTP {resp.status_code}"}])
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(int(declared), max_bytes)
                chunks = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(size, max_bytes)
                    if time.monotonic() > deadline:
                        raise GatewayError("provider_timeout", f"Fetching media from '{host[:100]}' took too long.", timeout="media")
                    chunks.append(chunk)
                return Fetched(b"".join(chunks), resp.headers.get("content-type"), current)
        except httpx.TimeoutException:
            raise GatewayError("provider_timeout", f"Fetching media from '{host[:100]}' took too long.", timeout="media") from None
        except httpx.HTTPError as exc:
            raise GatewayError("validation_error", f"Media URL '{host[:100]}' could not be fetched ({type(exc).__name__}).",
                               errors=[{"path": "url", "message": "fetch failed"}]) from None
    raise GatewayError("validation_error", f"Media URL redirected more than {MAX_REDIRECTS} times.",
                       errors=[{"path": "url", "message": "too many redirects"}])


def _too_large(size: int, limit: int) -> GatewayError:
    return GatewayError("validation_error", f"Media is larger than the limit ({size} > {limit} bytes).",
                        errors=[{"path": "url", "message": f"larger than {limit} bytes"}], limit_bytes=limit)
