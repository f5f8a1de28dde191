"""What the server says about one file, from every source it says it in, checked against each
other and, at the end, against the bytes:

- the repo listing (`size`, the LFS `sha256`, the git `blobId` of a small file);
- the resolve answer's headers: `X-Linked-Size` and `X-Linked-Etag` (an LFS file's size and
  sha256; on the Hub they sit on the redirect, so every answer of a redirect chain is read),
  else `ETag` of the resolve answer itself (64 hex: a sha256, 40 hex: a git blob sha1; a CDN's
  ETag after a redirect is not the Hub's and is ignored);
- the body's own framing: `Content-Length` of a whole-file answer, the total of `Content-Range`.

A mirror whose listing has no sizes or hashes is still checked against what its headers state.
Two sources that disagree are an error naming both (`Disagreement`): the bytes cannot match
both. Nothing stated at all is recorded as such (`source() == "computed"`), never passed off
as verified."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from ..errors import RuntimeFailure
from .remote import RemoteFile

HEX64 = re.compile(r"[0-9a-f]{64}")
HEX40 = re.compile(r"[0-9a-f]{40}")
CONTENT_RANGE_TOTAL = re.compile(r"bytes (?:\d+-\d+|\*)/(\d+)")

# what a manifest entry's `sha256_source` says
FROM_SERVER = "server"  # the server stated this sha256 and the bytes have it
FROM_GIT_SHA1 = "git-sha1"  # the server stated the git blob sha1, the bytes have it
COMPUTED = "computed"  # nothing stated a hash: the sha256 is of the bytes as received


class Disagreement(RuntimeFailure):
    """Two of the server's statements about one file contradict each other."""


@dataclass
class Claim:
    value: str | int
    source: str  # "repo listing", "X-Linked-Etag", "Content-Length", …


@dataclass
class Stated:
    """Every claim about one file's size, sha256 and git blob sha1; thread-safe (ranged parts
    report from several threads)."""

    name: str
    claims: dict[str, list[Claim]] = field(default_factory=dict)
    probed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_listing(cls, f: RemoteFile) -> Stated:
        s = cls(f.path)
        if f.size is not None:
            s.add("size", f.size, "repo listing")
        if f.sha256:
            s.add("sha256", f.sha256.lower(), "repo listing")
        if f.blob_id and HEX40.fullmatch(f.blob_id.lower()):
            s.add("git_sha1", f.blob_id.lower(), "repo listing")
        return s

    # -- what is known ---------------------------------------------------------------------------

    def get(self, kind: str) -> str | int | None:
        with self.lock:
            found = self.claims.get(kind)
            return found[0].value if found else None

    @property
    def size(self) -> int | None:
        v = self.get("size")
        return int(v) if v is not None else None

    @property
    def sha256(self) -> str | None:
        v = self.get("sha256")
        return str(v) if v is not None else None

    @property
    def git_sha1(self) -> str | None:
        v = self.get("git_sha1")
        return str(v) if v is not None else None

    def wants_probe(self) -> bool:
        """True when a HEAD may tell what the listing did not (a size, or any hash)."""
        return not self.probed and (self.size is None or not (self.sha256 or self.git_sha1))

    def source(self) -> str:
        return FROM_SERVER if self.sha256 else FROM_GIT_SHA1 if self.git_sha1 else COMPUTED

    def sources(self) -> list[str]:
        """Which statements the bytes were checked against: ["size: repo listing", …]."""
        with self.lock:
            return [f"{kind}: {c.source}" for kind, cs in self.claims.items() for c in cs]

    # -- adding claims ---------------------------------------------------------------------------

    def add(self, kind: str, value: str | int, source: str) -> None:
        with self.lock:
            found = self.claims.setdefault(kind, [])
            for c in found:
                if c.value != value:
                    raise Disagreement(
                        f"{self.name}: the server contradicts itself about the file's {kind.replace('_', ' ')}: "
                        f"the {c.source} says {c.value}, the {source} says {value}; "
                        "not trusting either (a broken mirror or proxy? check HF_ENDPOINT)"
                    )
            if not any(c.source == source for c in found):
                found.append(Claim(value, source))

    def observe(self, resp) -> None:
        """Take what an answer (and the redirects before it) states about the file."""
        chain = list(getattr(resp, "history", None) or []) + [resp]
        linked = False
        for r in chain:
            h = r.headers
            if (v := _etag(h.get("X-Linked-Etag"))) and HEX64.fullmatch(v):
                self.add("sha256", v, "X-Linked-Etag header")
                linked = True
            if (v := h.get("X-Linked-Size", "").strip()).isdigit():
                self.add("size", int(v), "X-Linked-Size header")
        first = chain[0]
        if not linked and (v := _etag(first.headers.get("ETag"))):
            if HEX64.fullmatch(v):
                self.add("sha256", v, "ETag header")
            elif HEX40.fullmatch(v):
                self.add("git_sha1", v, "ETag header")
        self._framing(resp)

    def _framing(self, resp) -> None:
        """The size a body's framing states: a 206's Content-Range total, or the length of a
        whole-file 200 — also one to a range request, which is the whole file (not compressed,
        not a redirect)."""
        h = resp.headers
        if resp.status_code == 206:
            m = CONTENT_RANGE_TOTAL.fullmatch(h.get("Content-Range", "").strip())
            if m:
                self.add("size", int(m.group(1)), "Content-Range header")
        elif resp.status_code == 200 and h.get("Content-Encoding", "identity").strip().lower() in (
            "",
            "identity",
        ):
            length = h.get("Content-Length", "").strip()
            if length.isdigit() and "chunked" not in h.get("Transfer-Encoding", "").lower():
                self.add("size", int(length), "Content-Length header")

    # -- the bytes -------------------------------------------------------------------------------

    def mismatch(self, size: int, sha256: str, git_sha1: str) -> str | None:
        """None when bytes of `size` with these hashes are what every source stated, else what
        differs (naming the source)."""
        with self.lock:
            claims = {k: list(v) for k, v in self.claims.items()}
        for c in claims.get("size", []):
            if size != c.value:
                return f"{self.name}: {size} bytes received, the {c.source} says {c.value}"
        for c in claims.get("sha256", []):
            if sha256 != c.value:
                return f"{self.name}: sha256 mismatch (the {c.source} says {c.value}, the bytes have {sha256})"
        for c in claims.get("git_sha1", []):
            if git_sha1 and git_sha1 != c.value:
                return f"{self.name}: git blob id mismatch (the {c.source} says {c.value}, the bytes have {git_sha1})"
        return None


def _etag(value: str | None) -> str:
    """An ETag without its weak marker and quotes, lower-case ("" when absent)."""
    if not value:
        return ""
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"').strip().lower()
