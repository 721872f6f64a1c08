"""Server-side request forgery guard for outgoing HTTP notifications.

A webhook URL comes from configuration, but a configuration can be written by someone who should not
reach the worker's network. Before each request the target is checked: scheme http/https only, port
80/443/8080/8443 only, and every address the host resolves to must be public — loopback, private,
link-local, shared (100.64/10), multicast, reserved, unspecified and cloud metadata addresses are
refused unless the channel sets ``allow_private`` (which also lifts the port list: an internal
receiver may listen anywhere). The request is then pinned to the checked address (Host header and TLS
SNI keep the name), so DNS cannot answer differently between check and connect (rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from alerts.base import DeliveryError

ALLOWED_SCHEMES = ("http", "https")
ALLOWED_PORTS = (80, 443, 8080, 8443)
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# The one setting that lifts the address and port checks; every refusal it can lift names it.
ALLOW_PRIVATE_HINT = "set allow_private: true on the channel (alerts.channels.<name>)"


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # with the host replaced by the checked address
    host_header: str
    sni_hostname: str


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for check, what in (  # most specific first: 0.0.0.0 and 169.254/16 are "private" too
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE, "shared (100.64/10)"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    ):
        if check:
            return f"a {what} address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"webhook: host does not resolve ({exc.strerror})", transient=True) from None
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
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DeliveryError(f"{what}: invalid port; correct the channel's url", transient=False) from None
    if not allow_private and port not in ALLOWED_PORTS:
        allowed = ", ".join(map(str, ALLOWED_PORTS))
        raise DeliveryError(
            f"{what}: port {port} not allowed ({allowed}); {ALLOW_PRIVATE_HINT} (it allows any port)", transient=False
        )
    addresses = _resolve(parts.hostname, port)
    if not allow_private:
        for text in addresses:
            reason = _refused(ipaddress.ip_address(text.split("%")[0]))
            if reason:
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
