"""`vad review serve` as its own process, on a free port: the browser and decision-log tests and
benchmarks/review_app.py start the real app this way.

    srv = Server(project_root, "wang").wait()   # returns once /healthz answers
    httpx.get(srv.url + "/")
    srv.stop()"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .project import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`vad review serve` in its own process, on a free port."""

    def __init__(self, root: Path, reviewer: str, code_root: Path = ROOT):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(code_root)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vad.cli", "review", "serve", "--root", str(root), "--port", str(self.port),
             "--reviewer", reviewer], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout: float = 120) -> "Server":
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"review server exited: {self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("review server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
