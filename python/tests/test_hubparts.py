"""huggingface_hub's HTTP parts imported without `huggingface_hub.utils`' __init__ (hubparts.py,
issue 30): the functions are huggingface_hub's own; the first use of any other name of the
package runs its __init__ once, after which the package is what a plain import gives — from any
thread; and a package imported before is used as it is. Each case in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import PROJECT

PLAIN = "import huggingface_hub.utils as u\n"


def _python(code: str) -> dict:
    """Run code in a fresh interpreter (the project on its path); the JSON it prints last."""
    p = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(PROJECT)!r})\n{code}"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _names(expr: str) -> str:
    return f"sorted(k for k in vars({expr}) if k != '__getattr__')"


def test_the_parts_are_huggingface_hubs_own_without_the_rest_of_the_package():
    got = _python(
        "from lexalign.download import hubparts\n"
        "hubparts.load()\n"
        "import huggingface_hub.utils._http as h, huggingface_hub.utils._paths as p\n"
        "import json\n"
        "print(json.dumps({\n"
        "  'loaded': [m for m in ('tqdm', 'asyncio', 'huggingface_hub.utils.tqdm',\n"
        "             'huggingface_hub.utils._cache_manager') if m in sys.modules],\n"
        "  'session': type(hubparts.get_session()) is type(h.get_session()),\n"
        "  'same': h.hf_raise_for_status.__module__ == 'huggingface_hub.utils._http',\n"
        "  'kept': hubparts.filter_repo_objects(['a.json', 'b.bin', 'c/d.json'],\n"
        "          allow_patterns=['*.json'], ignore_patterns=['c/*']),\n"
        "  'agent': 'hf_hub/' in hubparts.build_hf_headers(token=None)['user-agent'],\n"
        "  'auth': hubparts.build_hf_headers(token='hf_x')['authorization'],\n"
        "}))\n"
    )
    assert got == {
        "loaded": [],
        "session": True,
        "same": True,
        "kept": ["a.json"],
        "agent": True,
        "auth": "Bearer hf_x",
    }


def test_the_first_other_name_completes_the_package_as_a_plain_import_has_it():
    plain = _python(f"{PLAIN}import json; print(json.dumps({_names('u')}))")
    got = _python(
        "from lexalign.download import hubparts\n"
        "hubparts.load()\n"
        f"{PLAIN}"
        "bare = '__getattr__' in vars(u)\n"
        "from huggingface_hub.utils import tqdm, scan_cache_dir\n"
        "import json\n"
        "print(json.dumps({'bare': bare, 'completed': '__getattr__' not in vars(u),\n"
        "  'tqdm': tqdm.__name__, 'class': isinstance(tqdm, type),\n"
        f"  'names': {_names('u')}}}))\n"
    )
    assert got["bare"] and got["completed"] and got["class"] and got["tqdm"] == "tqdm"
    assert got["names"] == plain, set(got["names"]) ^ set(plain)


def test_threads_asking_at_once_complete_the_package_once():
    got = _python(
        "from lexalign.download import hubparts\n"
        "hubparts.load()\n"
        f"{PLAIN}"
        "import threading, json\n"
        "runs, seen, errors = [], [], []\n"
        "spec = u.__spec__\n"
        "real = spec.loader.exec_module\n"
        "spec.loader.exec_module = lambda m: (runs.append(1), real(m))[1]\n"
        "def ask():\n"
        "    try: seen.append(id(u.scan_cache_dir))\n"
        "    except Exception as e: errors.append(repr(e))\n"
        "threads = [threading.Thread(target=ask) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(json.dumps({'runs': len(runs), 'distinct': len(set(seen)), 'n': len(seen),\n"
        "  'errors': errors}))\n"
    )
    assert got == {"runs": 1, "distinct": 1, "n": 8, "errors": []}


def test_a_package_imported_before_is_used_as_it_is():
    got = _python(
        f"{PLAIN}"
        "from lexalign.download import hubparts\n"
        "hubparts.load()\n"
        "import json\n"
        "print(json.dumps({'same': sys.modules['huggingface_hub.utils'] is u,\n"
        "  'plain': '__getattr__' not in vars(u)}))\n"
    )
    assert got == {"same": True, "plain": True}
