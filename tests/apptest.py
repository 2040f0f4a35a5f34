"""Streamlit's AppTest for the page tests, with its scan for installed components done once per test process.

Every new `streamlit.testing.v1.AppTest` looks for Streamlit "v2 components" on its first run: it reads the
metadata of every installed distribution (about 0.35 s of CPU here, three quarters of a short page test). The
installed packages cannot change while the tests run, so this AppTest takes the answer of the first scan in the
process (a BidiComponentManager, built exactly as AppTest builds its own) instead of scanning again. Only
`from_file` is given (the one the page tests use), and nothing else differs: it still resolves a relative path
from the calling test's file, and it returns Streamlit's own AppTest.
Import it by base name: `from apptest import AppTest` (held by tests/app/test_apptest.py).
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

from streamlit.components.v2.component_manager import BidiComponentManager
from streamlit.testing.v1 import AppTest as _StreamlitAppTest

_lock = threading.Lock()
_components: BidiComponentManager | None = None


def installed_components() -> BidiComponentManager:
    """The process's one scan of the installed packages for components, as AppTest would make it."""
    global _components
    with _lock:
        if _components is None:
            manager = BidiComponentManager()
            manager.discover_and_register_components(start_file_watching=False)
            _components = manager
        return _components


class AppTest(_StreamlitAppTest):
    @classmethod
    def from_file(cls, script_path: str | Path, *, default_timeout: float = 3) -> _StreamlitAppTest:
        """Streamlit's AppTest.from_file (a relative path is resolved from the calling test's file, as there), with
        the process's component scan."""
        path = Path(script_path)
        if not path.is_absolute():
            path = Path(sys._getframe(1).f_code.co_filename).parent / path
        at = _StreamlitAppTest.from_file(path, default_timeout=default_timeout)
        at._bidi_component_manager = installed_components()
        return at
