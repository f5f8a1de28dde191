"""Downloads from the Hugging Face Hub with real huggingface_hub calls, plus what the library
does not do at the pinned version: one retry policy (retry.py), an overall deadline
(deadline.py), a watcher that hashes and reports progress from one read of the file being
written (watch.py), a validated manifest (manifest.py), orchestration (orchestrate.py) and
offline verification (verify.py).

Files appear under their final names only when complete (huggingface_hub's `.incomplete` +
rename), and a later run resumes partial files.
"""

from .orchestrate import Downloader, RepoResult
from .verify import verify

__all__ = ["Downloader", "RepoResult", "verify"]
