"""The parts of huggingface_hub a download runs with — its HTTP session, request headers, typed
errors for an error status, and its allow/ignore pattern filter — imported without the rest of
`huggingface_hub.utils` (issue 30: a CLI that starts fast).

`huggingface_hub.utils/__init__.py` imports all ~30 of its submodules eagerly: tqdm (and with it
asyncio), the cache scanner, git credential helpers, safetensors parsing, Xet … ~16 ms of a
small download's ~0.18 s start-up, for four functions. Python imports a package before any of
its submodules, so here the package module is created from its own spec without running its
`__init__` (`importlib.util.module_from_spec`: the real `__path__`, `__spec__`, `__file__`),
and the submodules that hold the four functions (`_http`, `_headers`, `_paths`) are imported
from it as usual. The first time anything asks the package for a name it does not hold yet
(`from huggingface_hub.utils import tqdm`, hf_hub_download's own imports), a module
`__getattr__` (PEP 562) runs the package's real `__init__` in that same module, once, under a
lock, and the module is then exactly what a plain import gives. If the package was already
imported, it is used as it is."""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Any

PACKAGE = "huggingface_hub.utils"
PARTS = ("_http", "_headers", "_paths")  # the submodules the four functions live in

_lock = threading.RLock()  # re-entered by the thread importing parts or running the __init__
_busy = threading.local()  # this thread is importing parts, or running the package's __init__


def get_session() -> Any:
    """huggingface_hub's requests session for this thread (its adapters, proxies, CA settings)."""
    return _part("_http").get_session()


def build_hf_headers(*, token: str | None) -> dict[str, str]:
    """huggingface_hub's request headers (user agent; the token when there is one)."""
    return _part("_headers").build_hf_headers(token=token)


def hf_raise_for_status(response: Any) -> None:
    """huggingface_hub's typed error (not found, gated, bad revision …) for an error status."""
    _part("_http").hf_raise_for_status(response)


def filter_repo_objects(
    items: list[str], *, allow_patterns: Any, ignore_patterns: Any
) -> list[str]:
    """The names the patterns keep, by huggingface_hub's own rules (what snapshot_download keeps)."""
    kept = _part("_paths").filter_repo_objects(
        items, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns
    )
    return list(kept)


def load() -> None:
    """Import the parts now (a command does this while its start-up imports, see startup.py)."""
    for name in PARTS:
        _part(name)


def _part(name: str) -> ModuleType:
    """`huggingface_hub.utils.<name>`, importing the package's __init__ only if it is asked for."""
    full = f"{PACKAGE}.{name}"
    module = sys.modules.get(full)
    if module is not None and not getattr(module.__spec__, "_initializing", False):
        return module  # imported, and not half-way by another thread
    import importlib

    with _lock:
        _package()
        _busy.active = True  # its `from . import logging`: a submodule, not the whole package
        try:
            return importlib.import_module(full)
        finally:
            _busy.active = False


def _package() -> ModuleType:
    """The package module: the one already imported, or one whose __init__ runs on first use."""
    with _lock:
        module = sys.modules.get(PACKAGE)
        if module is not None:
            return module
        import importlib.util

        import huggingface_hub

        spec = importlib.util.find_spec(PACKAGE)  # huggingface_hub is a dependency: found
        if spec is None or spec.loader is None:  # pragma: no cover
            raise ImportError(f"{PACKAGE} not found")
        module = importlib.util.module_from_spec(spec)
        module.__dict__["__getattr__"] = _completer(module)
        sys.modules[PACKAGE] = module
        huggingface_hub.utils = module  # what `import huggingface_hub.utils` binds
        return module


def _completer(module: ModuleType):
    """The package's `__getattr__` until its __init__ has run: run it, then answer."""

    def __getattr__(attr: str) -> Any:
        with _lock:
            if getattr(_busy, "active", False):
                # a submodule asked for by a part or by the __init__: the import system loads it
                raise AttributeError(f"module {PACKAGE!r} has no attribute {attr!r}")
            if module.__dict__.get("__getattr__") is __getattr__:
                _busy.active = True
                try:
                    module.__spec__.loader.exec_module(module)
                finally:
                    _busy.active = False
                if module.__dict__.get("__getattr__") is __getattr__:
                    del module.__dict__["__getattr__"]
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {attr!r}") from None

    return __getattr__
