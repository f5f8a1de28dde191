"""A repo's listing at a revision: the commit and every file with what the Hub states of it
(size; LFS sha256 or git blob id). One request — the one `HfApi.repo_info(files_metadata=True)`
sends, `GET /api/{models,datasets}/<repo>/revision/<rev>?blobs=True` — through huggingface_hub's
session, headers and errors (`hf_raise_for_status`: not found, gated, bad revision), read here
into RemoteFiles. HfApi's own module is not imported: building its dataclasses is ~20 ms of a
small download's start-up, for one request. An answer that is not a listing (a proxy's page, a
mirror that lies about types) is a one-line error naming the repo, not a traceback."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..errors import RuntimeFailure
from .remote import RemoteFile

API_KINDS = {"model": "models", "dataset": "datasets", "space": "spaces"}


def listing_url(endpoint: str, repo_type: str, repo_id: str, revision: str) -> str:
    """The API URL of a repo at a revision (pure; a revision such as `refs/pr/1` is quoted)."""
    return f"{endpoint.rstrip('/')}/api/{API_KINDS[repo_type]}/{repo_id}/revision/{quote(revision, safe='')}"


def request_listing(
    endpoint: str, repo_type: str, repo_id: str, revision: str, token: str | None, timeout: float
) -> Any:
    """The decoded JSON answer; huggingface_hub's typed errors for an error status."""
    from .hubparts import build_hf_headers, get_session, hf_raise_for_status

    resp = get_session().get(
        listing_url(endpoint, repo_type, repo_id, revision),
        headers=build_hf_headers(token=token),
        params={"blobs": True},
        timeout=timeout,
    )
    hf_raise_for_status(resp)
    try:
        return resp.json()
    except ValueError:
        kind = resp.headers.get("Content-Type", "no content type")
        raise RuntimeFailure(
            f"{repo_id}@{revision}: the Hub's answer is not JSON ({kind}): check HF_ENDPOINT"
        ) from None


def parse_listing(repo_id: str, revision: str, data: Any) -> tuple[str, list[RemoteFile]]:
    """(commit, files) from an API answer (pure); RuntimeFailure for an answer of the wrong shape."""

    def bad(what: str) -> RuntimeFailure:
        return RuntimeFailure(
            f"{repo_id}@{revision}: the Hub's listing is malformed ({what}); check HF_ENDPOINT"
        )

    if not isinstance(data, dict):
        raise bad(f"a {type(data).__name__}, not an object")
    commit = data.get("sha")
    if not commit:
        raise RuntimeFailure(
            f"{repo_id}: the Hub did not return a commit for revision {revision!r}"
        )
    if not isinstance(commit, str):
        raise bad("its commit is not a string")
    siblings = data.get("siblings") or []
    if not isinstance(siblings, list):
        raise bad("its file list is not a list")
    return commit, [_remote_file(s, bad) for s in siblings]


def _remote_file(s: Any, bad) -> RemoteFile:
    """One `siblings` entry; sizes and hashes are optional (a mirror may list names only)."""
    if not isinstance(s, dict) or not isinstance(s.get("rfilename"), str):
        raise bad("a file entry without a name")
    name = s["rfilename"]
    lfs = s.get("lfs")
    lfs = lfs if isinstance(lfs, dict) else {}
    size = s.get("size")
    sha256 = lfs.get("sha256") or None
    blob_id = s.get("blobId") or None
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise bad(f"{name!r} has size {size!r}")
    for what, value in (("sha256", sha256), ("blob id", blob_id)):
        if value is not None and not isinstance(value, str):
            raise bad(f"{name!r} has {what} {value!r}")
    return RemoteFile(path=name, size=size, sha256=sha256, blob_id=None if sha256 else blob_id)
