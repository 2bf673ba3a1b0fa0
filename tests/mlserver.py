"""A real MLServer (PyPI ``mlserver`` + ``mlserver-sklearn``) on loopback, as a test partner.

MLServer pins versions of FastAPI and Starlette other than Bastion's, so it lives in its own
virtual environment (``.peers/mlserver-1.7.1/`` at the repository root, git-ignored, built once
from the package index and reused); only its HTTP port is shared with the tests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
VERSION = "1.7.1"
VENV = ROOT / ".peers" / f"mlserver-{VERSION}"


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def environment() -> Path:
    """The ``mlserver`` executable, building its environment on first use."""
    executable = VENV / "bin" / "mlserver"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(VENV) + ".lock"):
        if not executable.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            # the same scikit-learn as the tests pickle with; torch stays out (constraints)
            subprocess.run(
                [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                 "-c", str(ROOT / "constraints.txt"), f"mlserver=={VERSION}",
                 f"mlserver-sklearn=={VERSION}", f"scikit-learn=={_sklearn_version()}"],
                check=True, capture_output=True)
    return executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_sklearn(model: Path, folder: Path, name: str = "model") -> Iterator[str]:
    """Serve a joblib-saved scikit-learn model; yield its ``…/v2/models/NAME`` URL."""
    executable = environment()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.joblib").write_bytes(model.read_bytes())
    (folder / "model-settings.json").write_text(json.dumps({
        "name": name, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"}}))
    http = _free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": _free_port(),
        "metrics_port": _free_port(), "parallel_workers": 0}))
    log = (folder / "mlserver.log").open("wb")
    process = subprocess.Popen([str(executable), "start", str(folder)], cwd=folder,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError("MLServer exited: "
                                   + (folder / "mlserver.log").read_text()[-2000:])
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(f"{base}/v2/models/{name}/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("MLServer did not get ready in 90 s")
            time.sleep(0.5)
        yield f"{base}/v2/models/{name}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
