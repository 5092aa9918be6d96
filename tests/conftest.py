"""Shared fixtures.

Data tests: ``raw_mirror_server`` serves files from a temporary directory over HTTP
on the loopback interface, standing in for the dataset mirrors, which cannot be
reached from test machines.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

# Run as a separate process so that a stuck request can never hang the tests'
# own interpreter; it binds an ephemeral port itself (no race for a free port)
# and reports it on stdout, and it records every requested path in a log file.
_MIRROR_SERVER_SCRIPT = r"""
import functools
import http.server
import sys

root, log_path = sys.argv[1], sys.argv[2]


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        with open(log_path, "a") as log:
            log.write(self.path + "\n")
        super().do_GET()

    def log_message(self, format, *args):
        pass


server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=root)
)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass
class RawMirrorServer:
    """A loopback HTTP server serving the files under ``root``."""

    root: Path
    port: int
    log_path: Path

    def new_mirror(self) -> tuple[Path, str]:
        """A fresh empty directory served by the server, and its base URL."""
        name = uuid.uuid4().hex[:12]
        folder = self.root / name
        folder.mkdir()
        return folder, f"http://127.0.0.1:{self.port}/{name}/"

    def requests(self) -> list[str]:
        """Paths requested so far, in order."""
        if not self.log_path.exists():
            return []
        return self.log_path.read_text().splitlines()


@pytest.fixture(scope="session")
def raw_mirror_server(tmp_path_factory: pytest.TempPathFactory):
    """Start a loopback-only HTTP file server for the session; stop it by PID."""
    base = tmp_path_factory.mktemp("raw_mirrors")
    root = base / "www"
    root.mkdir()
    log_path = base / "requests.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", _MIRROR_SERVER_SCRIPT, str(root), str(log_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"mirror server did not start (said {line!r})")
        yield RawMirrorServer(root=root, port=int(line), log_path=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture
def closed_loopback_url() -> str:
    """Base URL of a loopback port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def loopback_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a proxy configured in the environment away from loopback requests."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
