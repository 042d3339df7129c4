"""routing/ is a pure-Python science package: it imports and runs without Django."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import routing
from tests.conftest import REPO


def test_every_routing_module_imports_with_django_blocked():
    modules = [m.name for m in pkgutil.walk_packages(routing.__path__, "routing.")]
    script = (
        "import sys, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('django', 'rest_framework', 'labeling', 'tracelab'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
