"""A real `rag serve` process for the server tests: started on a free loopback port,
waited for through /readyz, stopped by its PID.

    with RagServer(["--data", str(data)], keys=keys_file) as server:
        httpx.get(server.url + "/healthz")
        OpenAI(base_url=server.v1, api_key=key)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a test server: none of the caller's OpenAI or rag settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RAG_"))}
    env.update(GRADIO_ANALYTICS_ENABLED="False", TOKENIZERS_PARALLELISM="false", RAG_EMBED_THREADS="1",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class RagServer:
    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None, port: int | None = None):
        self.args = list(args)
        self.log_path = Path(log_path)
        self.env = env or server_env()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.v1 = self.url + "/v1"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "RagServer":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "serve", *self.args, "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rag serve exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rag serve not ready after {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def __enter__(self) -> "RagServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def patiently(client: httpx.Client, method: str, url: str, timeout: float = 60.0, **kwargs) -> httpx.Response:
    """One request, as a well-behaved client sends it: on 429 or 503 wait out Retry-After and retry.

    Every request counts against the rate limit, polls and checks after a load included."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.request(method, url, **kwargs)
        if response.status_code not in (429, 503) or time.monotonic() > deadline:
            return response
        time.sleep(min(float(response.headers.get("retry-after", 1)), 5.0))


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict:
    """Poll GET /v1/jobs/{id} until the job is no longer queued or running."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        response = patiently(client, "GET", f"/v1/jobs/{job_id}", timeout=deadline - time.monotonic())
        assert response.status_code == 200, f"GET /v1/jobs/{job_id}: {response.status_code} {response.text}"
        job = response.json()
        if job.get("status") not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout} s: {job}")
