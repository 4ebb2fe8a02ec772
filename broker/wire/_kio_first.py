"""kio, imported without hypothesis: imported first by the package, before any module uses kio.

kio's phantom types import hypothesis whenever it is installed (to register test
strategies) and then call a hook on every one of its thousands of classes: in a
venv with the test extra, that added ~20 MB of RSS and ~0.3 s of start-up to every
``edge run`` that serves the listener, for nothing the listener uses. Where hypothesis
is not already imported (a test that uses both has imported it, and keeps kio's
strategies), kio's probe is shown an absent hypothesis, and hypothesis is importable
again as soon as kio's probe is done.
"""

from __future__ import annotations

import importlib
import sys

if "hypothesis" in sys.modules:
    importlib.import_module("kio.static._phantom")
else:
    sys.modules["hypothesis"] = None  # type: ignore[assignment]  # import hypothesis: ImportError
    try:
        importlib.import_module("kio.static._phantom")
    finally:
        del sys.modules["hypothesis"]
