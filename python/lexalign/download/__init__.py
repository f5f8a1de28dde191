"""Downloads from the Hugging Face Hub: huggingface_hub for the API and the session (headers,
proxies, CA bundle), our own bounded transfers for the files. One retry policy (retry.py), an
overall deadline that also cuts transfers (deadline.py, fetch.py), untrusted file names checked
(names.py), parallel transfers with one progress display (orchestrate.py, files.py,
progress.py), a validated manifest (manifest.py), network errors in one line (network.py) and
offline verification (verify.py).

Files appear under their final names only when complete and checked (a partial file under
`.cache/lexalign/` + rename), and a later run resumes partial files.
"""

from .orchestrate import Downloader, RepoResult
from .verify import verify

__all__ = ["Downloader", "RepoResult", "verify"]
