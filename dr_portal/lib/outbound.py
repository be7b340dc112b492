"""Outbound HTTP to addresses users configure (http_check and webhook steps, notification webhooks).

A manager or operator who can type a URL must not make the server reach what only the
server can reach: loopback services, the cloud metadata address, the private network.
So every such request goes through `request()` here, which

- takes http:// and https:// only;
- resolves the host name once, refuses the request when any address it resolves to is
  loopback, link-local, private, shared (CGNAT), multicast, reserved or unspecified (also
  when hidden inside an IPv6 address: IPv4-mapped, 6to4, NAT64, Teredo), unless the
  allow-list (`DR_OUTBOUND_ALLOW`: CIDRs and host names) names the address or the host;
- connects to that exact checked address (the Host header and TLS server name stay the
  host name), so a second DNS answer cannot swap in another address (no rebinding);
- never follows a redirect: a 3xx is the answer;
- reads at most `max_body` bytes of the answer.

No proxy from the environment is used (http.client ignores HTTP_PROXY), so the address
checked is the address connected to. Plain Python: the allow-list comes from Django's
settings only when Django is configured.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}
MAX_BODY = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # CGNAT: is_private is False for it


class Refused(Exception):
    """The request was not made: its scheme or address is not allowed."""


@dataclass(frozen=True)
class AllowList:
    """Networks and host names that may be reached although they are internal."""

    networks: tuple = ()
    hosts: frozenset = frozenset()  # lower-case names; "*.example.org" covers subdomains
    entries: tuple = field(default=(), compare=False)

    def names(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(
            h.startswith("*.") and host.endswith(h[1:]) for h in self.hosts
        )

    def covers(self, address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


def parse_allow(entries) -> AllowList:
    """An AllowList from CIDRs, addresses and host names; ValueError names a bad entry."""
    networks, hosts = [], set()
    for raw in entries or ():
        entry = str(raw).strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        name = entry.lower().rstrip(".")
        label = name[2:] if name.startswith("*.") else name
        if not label or not all(
            part and len(part) <= 63 and all(c.isalnum() or c == "-" for c in part)
            for part in label.split(".")
        ):
            raise ValueError(f"{entry!r} is neither a network (CIDR), an address nor a host name")
        hosts.add(name)
    return AllowList(tuple(networks), frozenset(hosts), tuple(entries or ()))


def configured_allow() -> AllowList:
    """The allow-list from settings.DR_OUTBOUND_ALLOW (empty without Django settings)."""
    try:
        from django.conf import settings  # noqa: PLC0415 (engines use this outside Django)

        if not settings.configured:
            return AllowList()
        entries = getattr(settings, "DR_OUTBOUND_ALLOW", ())
    except ImportError:
        return AllowList()
    return entries if isinstance(entries, AllowList) else parse_allow(entries)


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, Teredo), or None."""
    if address.version != 6:
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_internal(address) -> str:
    """Why an address is not public ("" when it is a public unicast address)."""
    for a in (_embedded_ipv4(address), address):  # the embedded IPv4 is the real target
        if a is None:
            continue
        if a.is_unspecified:
            return "unspecified"
        if a.is_loopback:
            return "loopback"
        if a.is_link_local:
            return "link-local (cloud metadata lives here)"
        if a.is_multicast:
            return "multicast"
        if a.version == 4 and a in _SHARED:
            return "shared (CGNAT)"
        if a.is_reserved:
            return "reserved"
        if a.is_private:
            return "private"
        if not a.is_global:
            return "not public"
    return ""


def check_address(host: str, address: str, allow: AllowList) -> None:
    """Raise Refused when `address` (resolved from `host`) may not be reached."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if allow.names(host) or allow.covers(ip):
        return
    embedded = _embedded_ipv4(ip)
    if embedded is not None and allow.covers(embedded):
        return
    reason = why_internal(ip)
    if reason:
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise Refused(
            f"refused: {shown} is a {reason} address; outbound requests may only go to "
            "public addresses unless DR_OUTBOUND_ALLOW names it"
        )


def resolve(host: str, port: int, allow: AllowList) -> list[tuple]:
    """Every (family, sockaddr) the host resolves to, each checked; Refused if any is internal."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    # One internal answer refuses the name: a name that mixes public and internal
    # addresses is either broken or an attempt to be lucky on the second try.
    for _family, _type, _proto, _name, sockaddr in infos:
        check_address(host, sockaddr[0], allow)
    seen, out = set(), []
    for family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.add(sockaddr[0])
            out.append((family, sockaddr))
    return out


def _connect_checked(host: str, port: int, timeout, allow: AllowList) -> socket.socket:
    """A socket connected to a checked address of host (the addresses in order, like curl)."""
    last: OSError | None = None
    for family, sockaddr in resolve(host, port, allow):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"cannot connect to {host}")


class GuardedHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose connect() resolves, checks and connects to the checked address."""

    def __init__(self, host, port=None, *, allow: AllowList, **kwargs):
        super().__init__(host, port, **kwargs)
        self.allow = allow

    def connect(self):
        self.sock = _connect_checked(self.host, self.port, self.timeout, self.allow)


class GuardedHTTPSConnection(http.client.HTTPSConnection):
    """The same for TLS: the certificate is checked against the host name, not the address."""

    def __init__(self, host, port=None, *, allow: AllowList, **kwargs):
        kwargs.setdefault("context", ssl.create_default_context())
        super().__init__(host, port, **kwargs)
        self.allow = allow

    def connect(self):
        sock = _connect_checked(self.host, self.port, self.timeout, self.allow)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Response:
    status: int
    reason: str
    headers: dict
    body: bytes  # at most max_body bytes

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL, or Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"refused: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise Refused(f"refused: scheme {scheme or 'none'!r}; only http:// and https:// are used")
    if not parts.hostname:
        raise Refused("refused: the URL has no host name")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.hostname, port or SCHEMES[scheme], path


def obvious_refusal(url: str, allow: AllowList | None = None) -> str:
    """Why url will be refused, when that is plain without DNS (a bad scheme, an internal
    IP literal, localhost); "" otherwise. For forms: the request itself checks again."""
    try:
        _scheme, host, _port, _path = check_url(url)
        allow = configured_allow() if allow is None else allow
        if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
            if not allow.names(host):
                raise Refused(f"refused: {host} is a loopback address")
            return ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return ""  # a host name: resolved and checked when the request is made
        check_address(host, host, allow)
    except Refused as exc:
        return str(exc)
    return ""


def request(
    method: str,
    url: str,
    *,
    headers: dict | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
    max_body: int = MAX_BODY,
    allow: AllowList | None = None,
) -> Response:
    """Make one guarded request; Refused when not allowed, OSError on a network failure."""
    scheme, host, port, path = check_url(url)
    allow = configured_allow() if allow is None else allow
    cls = GuardedHTTPSConnection if scheme == "https" else GuardedHTTPConnection
    conn = cls(host, port, allow=allow, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read(max_body) if method != "HEAD" else b""
        except http.client.HTTPException as exc:
            raise OSError(f"bad HTTP answer: {type(exc).__name__} {exc}".strip()) from None
        return Response(
            resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, data
        )
    finally:
        conn.close()


def mask_url(url: str) -> str:
    """The URL with everything after the host hidden: ping and hook URLs are capabilities
    (whoever knows the path can ping or post), so pages for viewers and logs show only this."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return "(not a valid URL)"
    if not parts.scheme or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown = f"{parts.scheme}://{host}{f':{port}' if port else ''}"
    return f"{shown}/…" if (parts.path.strip("/") or parts.query) else shown
