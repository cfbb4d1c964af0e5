"""The package's source is within its size limits (`tools/code_size.py --check`): no file over 500
lines, no function body over 80, unless it says why with a ``# size:`` comment."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_every_file_and_function_is_within_its_limit() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "code_size.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
