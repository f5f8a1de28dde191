"""Network failures a user can act on, in one line: the host, the cause (DNS lookup failed,
connection refused, TLS certificate not trusted, proxy refused, timed out) and the fix —
instead of urllib3's nested reprs."""

from __future__ import annotations

import re

from ..errors import one_line, redact

_HOST_RE = re.compile(r"host='([^']+)'|https?://([^/:\s'\"]+)")


def _host(text: str) -> str:
    m = _HOST_RE.search(text)
    return (m.group(1) or m.group(2)) if m else "the Hub"


def explain(exc: BaseException) -> str:
    """One line for a failed request: `<host>: <cause> — <fix>`, or the error itself when it is
    not a network failure."""
    chain, e, seen = [], exc, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " | ".join(f"{type(c).__name__}: {c}" for c in chain)
    low = text.lower()
    names = {type(c).__name__ for c in chain for c in type(c).__mro__}
    host = _host(text)
    offline = "or set HF_HUB_OFFLINE=1 to use a copy downloaded before"
    if "ProxyError" in names or "proxy" in low and ("refused" in low or "tunnel" in low):
        cause, fix = "the proxy refused the connection", f"check HTTPS_PROXY/NO_PROXY, {offline}"
    elif (
        "SSLError" in names
        or "certificate verify failed" in low
        or "certificate_verify_failed" in low
    ):
        cause = "TLS certificate not trusted"
        fix = "point REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) at your proxy's CA bundle"
    elif (
        "NameResolutionError" in names
        or "name or service not known" in low
        or "temporary failure in name resolution" in low
        or "nodename nor servname" in low
        or "getaddrinfo failed" in low
    ):
        cause, fix = "DNS lookup failed", f"check HF_ENDPOINT and your network/DNS, {offline}"
    elif "ConnectionRefusedError" in names or "connection refused" in low:
        cause, fix = "connection refused", f"is HF_ENDPOINT right and the server up? {offline}"
    elif (
        any(
            n in names
            for n in (
                "ConnectTimeout",
                "ReadTimeout",
                "ReadTimeoutError",
                "ConnectTimeoutError",
                "TimeoutError",
                "Timeout",
            )
        )
        or "timed out" in low
    ):
        cause, fix = "timed out", f"raise timeout_s, check the network or proxy, {offline}"
    else:
        return redact(f"{type(exc).__name__}: {one_line(exc, 200)}")
    return redact(f"{host}: {cause} — {fix}")
