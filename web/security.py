"""Who may talk to the server, and the headers every answer carries.

- With a token, every request must carry it: `Authorization: Bearer T`, the cookie the page gets
  after opening `/?token=T` once, or `?token=T` itself.
- Without one (loopback only, see `host_policy`), the Host header must name the loopback: a web
  page elsewhere cannot reach the server by pointing its own domain at 127.0.0.1 (DNS rebinding).
- Every answer forbids framing, MIME sniffing and scripts or images from anywhere else.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

COOKIE = "clipsearch_token"
LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
]


TOKEN_UNSAFE = ';,"\\&#%?+='  # a cookie's or a query string's separators and escapes


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_policy(host: str, token: str | None) -> str | None:
    """Why the server must not start with these settings, or None."""
    if is_loopback(host) or token:
        return None
    return (
        f"--host {host} would let anyone who can reach this machine search the index and read "
        "every indexed picture; give a secret with --token T (or CLIPSEARCH_TOKEN) and share "
        "http://HOST:PORT/?token=T, or keep the default --host 127.0.0.1"
    )


def token_policy(token: str | None) -> str | None:
    """Why a token cannot be used, or None. It travels in a cookie, a header and a URL: printable
    ASCII without spaces or the characters those would need quoted."""
    if token is None:
        return None
    bad = sorted({c for c in token if not (33 <= ord(c) < 127) or c in TOKEN_UNSAFE})
    if not token or bad:
        shown = ", ".join(repr(c) for c in bad) or "an empty token"
        return (
            f"--token must be printable ASCII without spaces or {' '.join(TOKEN_UNSAFE)} "
            f"(it is sent in a cookie and in URLs); this one has {shown}"
        )
    return None


def _host_name(value: str) -> str:
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware enforcing the rules above on HTTP requests."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token

    def _token_of(self, scope) -> tuple[str | None, bool]:
        """(token sent, whether it came in the query string)."""
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("token"):
            return query["token"][0], True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:
            return None, False
        return (cookie[COOKIE].value if COOKIE in cookie else None), False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        set_cookie = None
        if self.token:
            sent, in_query = self._token_of(scope)
            if sent is None or not hmac.compare_digest(sent.encode(), self.token.encode()):
                return await _refuse(send, 401, "a valid token is required (?token=T once)")
            if in_query:
                set_cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        else:
            headers = dict(scope.get("headers") or [])
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host and not is_loopback(host):  # no Host header: not a browser
                message = f"this server answers for the loopback only, not for {host!r}"
                return await _refuse(send, 403, message)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if set_cookie:
                    extra.append((b"set-cookie", set_cookie.encode("latin-1")))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + HEADERS})
    await send({"type": "http.response.body", "body": body})
