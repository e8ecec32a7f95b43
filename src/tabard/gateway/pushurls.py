"""A2A push-notification webhooks an agent registers through the gateway.

The A2A upstream calls the webhook URL an agent gives it (``tasks/pushNotificationConfig/
set``, 1.0 ``CreateTaskPushNotificationConfig``, or the push config of a ``message/send`` /
``SendMessage`` configuration), from inside the upstream's network and with the task's
data: an unchecked URL is server-side request forgery and a way to send task data
anywhere. The gateway does not call the URL itself, so it cannot pin what the name
resolves to; the control is an allow-list on the route (``push_urls``: https URL
prefixes). A URL is accepted only when

* it is ``https``, with a host, no user-info, no fragment, printable ASCII only, no
  backslash and no ``.``/``..`` path segment (literal or percent-encoded), so that the
  prefix compared is the path the upstream will call;
* its host is not a literal IP address outside the global unicast space (loopback,
  private, link-local, unique-local, multicast, reserved, unspecified; IPv4 in any of
  the forms resolvers accept, such as ``127.1`` or ``2130706433``, and IPv4-mapped IPv6),
  nor ``localhost``, a single-label name or a name under ``.localhost``, ``.local``,
  ``.internal``, ``.lan``, ``.home.arpa``;
* it starts with one of the route's ``push_urls``: same scheme, host and port, and a path
  that is the prefix's path or continues it (at a ``/`` unless the prefix ends with one).

A route without ``push_urls`` accepts no webhook. Written by hand: no library checks a URL
against a prefix allow-list with these address rules (``ipaddress`` does the ranges).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

__all__ = ["push_url_problem", "push_urls_of"]

# methods whose params may register a webhook (0.3 and 1.0 names)
_REGISTERING = frozenset({"message/send", "message/stream", "tasks/pushNotificationConfig/set",
                          "SendMessage", "SendStreamingMessage",
                          "CreateTaskPushNotificationConfig"})
_NOT_CONFIG = frozenset({"message", "metadata"})  # file parts carry URLs of their own
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
_PCT_DOT = re.compile(r"%2e", re.IGNORECASE)


def push_urls_of(method: str, params: Any) -> list[Any]:
    """Every webhook URL the params of an A2A request would register: the ``url`` values
    anywhere in them but the message and the metadata."""
    if method not in _REGISTERING or not isinstance(params, dict):
        return []
    return list(_urls(params, 0))


def _urls(value: dict[str, Any], depth: int) -> Iterator[Any]:
    if depth > 8:
        return
    for key, item in value.items():
        if key in _NOT_CONFIG and depth == 0:
            continue
        if key == "url":
            yield item
        elif isinstance(item, dict):
            yield from _urls(item, depth + 1)
        elif isinstance(item, list):
            for element in item:
                if isinstance(element, dict):
                    yield from _urls(element, depth + 1)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # the forms inet_aton (and so many resolvers) read as IPv4: 127.1, 0x7f.1, 2130706433
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _host_problem(host: str) -> str | None:
    address = _ip_literal(host)
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        if not address.is_global or address.is_multicast:
            return f"{host} is a loopback, private, link-local or reserved address"
        return None
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(_LOCAL_SUFFIXES) or "." not in name:
        return f"{host} is a local name"
    return None


def _path_problem(parts: SplitResult) -> str | None:
    path = parts.path
    if "\\" in path:
        return "its path holds a backslash"
    if re.search(r"%(2[fF]|5[cC])", path):
        return "its path holds an encoded '/' or '\\'"
    for segment in _PCT_DOT.sub(".", path).split("/"):
        if segment in (".", ".."):
            return "its path holds a '.' or '..' segment"
    return None


def _port(parts: SplitResult) -> int:
    return parts.port or 443


def _under(parts: SplitResult, prefix: str) -> bool:
    allowed = urlsplit(prefix)
    if (parts.scheme, (parts.hostname or "").rstrip("."), _port(parts)) != (
            allowed.scheme, (allowed.hostname or "").rstrip("."), _port(allowed)):
        return False
    base, path = allowed.path, parts.path
    if not base or base == "/" or base.endswith("/"):
        return path.startswith(base) or (path + "/") == base
    return path == base or path.startswith(base + "/")


def push_url_problem(url: Any, allowed: Sequence[str]) -> str | None:
    """Why ``url`` may not be registered as a webhook on a route allowing ``allowed``
    (module docstring), or None."""
    if not isinstance(url, str) or not 0 < len(url) <= 2048:
        return "the webhook URL must be a string of 1-2048 characters"
    if any(not 0x21 <= ord(c) <= 0x7E for c in url):
        return "the webhook URL holds a character that is not printable ASCII"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "the webhook URL is not a valid URL"
    if parts.scheme.lower() != "https" or not parts.hostname:
        return "the webhook URL must be an https:// URL with a host"
    if "@" in parts.netloc:
        return "the webhook URL must not carry user information"
    if parts.fragment or url.endswith("#"):
        return "the webhook URL must not have a #fragment"
    problem = _host_problem(parts.hostname) or _path_problem(parts)
    if problem is not None:
        return f"the webhook URL is refused: {problem}"
    if not allowed:
        return "this route accepts no push-notification webhooks (its push_urls are empty)"
    if not any(_under(parts, prefix) for prefix in allowed):
        return "the webhook URL is not under any of this route's push_urls"
    return None
