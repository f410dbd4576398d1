"""Programs from Debian's packages that development and the tests need, installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..._errors import ServiceError


def ensure_program(program: str, package: str) -> str:
    """Path of ``program``; installs Debian's ``package`` when it is missing and we are root."""
    found = shutil.which(program) or (f"/usr/bin/{program}" if Path(f"/usr/bin/{program}").exists() else None)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError(f"{program} is not installed: run `sudo apt-get install -y {package}`")
    print(f"installing {package} from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return f"/usr/bin/{program}"
