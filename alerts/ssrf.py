"""Server-side request forgery guard for outgoing HTTP notifications.

A webhook URL comes from configuration, but a configuration can be written by someone who should not
reach the worker's network. Before each request the target is checked: scheme http/https only, port
80/443/8080/8443 only, and every address the host resolves to must be public — loopback, private,
link-local, shared (100.64/10), multicast, reserved, unspecified, documentation, benchmarking, IETF
protocol (192.0.0/24), site-local (fec0::/10), 6to4 (2002::/16), Teredo and cloud metadata addresses
are refused (:data:`REFUSED_NETWORKS`, then anything the standard library holds non-global), an
IPv4-mapped or NAT64 (64:ff9b::/96) address being judged by the IPv4 address it carries, unless the
channel sets ``allow_private`` (which also lifts the port list: an internal receiver may listen
anywhere) — except the cloud metadata addresses, which no setting allows, and a URL carrying
``user:password@``, refused because the pinned request would not send it. The request is then
pinned to the checked address (Host header and TLS SNI keep the name), so DNS cannot answer
differently between check and connect (rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from alerts.base import DeliveryError

ALLOWED_SCHEMES = ("http", "https")
ALLOWED_PORTS = (80, 443, 8080, 8443)
# AWS, GCP and Azure (169.254.169.254), AWS over IPv6, Alibaba Cloud (100.100.100.200).
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}
# Ranges refused whatever the Python version says of them (ipaddress' is_global has changed between
# releases, and holds 2002::/16 and fec0::/10 global): most specific first, each with what it is.
REFUSED_NETWORKS = [
    (ipaddress.ip_network(network), what)
    for network, what in (
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a 'this network' address (0/8)"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared address (100.64/10)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol assignment address (192.0.0/24)"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address (198.18/15)"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address (240/4)"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/32", "a Teredo address (2001::/32: it tunnels to any IPv4 address)"),
        ("2001:db8::/32", "a documentation address"),
        ("2002::/16", "a 6to4 address (2002::/16: it tunnels to any IPv4 address)"),
        ("3fff::/20", "a documentation address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address (fec0::/10)"),
        ("ff00::/8", "a multicast address"),
    )
]
# These carry an IPv4 address that is where the packet really goes: judged as that address.
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The one setting that lifts the address and port checks; every refusal it can lift names it.
ALLOW_PRIVATE_HINT = "set allow_private: true on the channel (alerts.channels.<name>)"
METADATA_REASON = "a cloud metadata address"


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # with the host replaced by the checked address
    host_header: str
    sni_hostname: str


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and (address in IPV4_MAPPED or address in NAT64):
        address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in METADATA_ADDRESSES:
        return METADATA_REASON
    for network, what in REFUSED_NETWORKS:
        if address in network:
            return what
    # Whatever else the standard library knows not to be public (IETF assignments such as 2001::/23).
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _resolve(host: str, port: int, what: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"{what}: host does not resolve ({exc.strerror})", transient=True) from None
    except UnicodeError:  # IDNA: an empty or over-long label; its message would be third-party text
        raise DeliveryError(f"{what}: not a valid host name; correct the channel's url", transient=False) from None
    return sorted({str(info[4][0]) for info in infos})


def check_target(url: str, *, allow_private: bool, what: str = "webhook") -> Target:
    """The pinned target for ``url``, or a final :class:`DeliveryError` saying why it is refused.

    Messages never repeat the URL: for webhooks it is a secret.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise DeliveryError(f"{what}: not a valid URL; correct the channel's url", transient=False) from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise DeliveryError(
            f"{what}: scheme {parts.scheme!r} not allowed (http, https; no setting allows others)", transient=False
        )
    if not parts.hostname:
        raise DeliveryError(f"{what}: the URL has no host; correct the channel's url", transient=False)
    if parts.username is not None or parts.password is not None:
        # The request goes to the pinned address: a user:password@ part would silently not be sent.
        raise DeliveryError(
            f"{what}: credentials in the URL are not sent; remove them from the channel's url", transient=False
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DeliveryError(f"{what}: invalid port; correct the channel's url", transient=False) from None
    if not allow_private and port not in ALLOWED_PORTS:
        allowed = ", ".join(map(str, ALLOWED_PORTS))
        raise DeliveryError(
            f"{what}: port {port} not allowed ({allowed}); {ALLOW_PRIVATE_HINT} (it allows any port)", transient=False
        )
    addresses = _resolve(parts.hostname, port, what)
    for text in addresses:
        reason = _refused(ipaddress.ip_address(text.split("%")[0]))
        if reason == METADATA_REASON:  # the instance's credentials endpoint: never, whatever the channel says
            raise DeliveryError(f"{what}: target resolves to {reason}; no setting allows it", transient=False)
        if reason and not allow_private:
            raise DeliveryError(
                f"{what}: target resolves to {reason}; {ALLOW_PRIVATE_HINT} to allow it", transient=False
            )
    chosen = addresses[0]
    netloc_host = f"[{chosen}]" if ":" in chosen else chosen
    netloc = f"{netloc_host}:{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    default_port = (parts.scheme == "https" and port == 443) or (parts.scheme == "http" and port == 80)
    host_header = parts.hostname if default_port else f"{parts.hostname}:{port}"
    return Target(pinned, host_header, parts.hostname)
