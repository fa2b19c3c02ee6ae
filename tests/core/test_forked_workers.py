"""The forked workers of the suite's several-device runs (ftrecipe/forked_workers.py) end as fresh workers
would, as torchrun sees them through their clients: the exit code, death by a signal, signals forwarded,
and no worker left behind when its client is killed. With a stand-in command instead of ftrecipe's."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SERVER = """
import os, sys, time
from ftrecipe.forked_workers import socket_path, start_server

def main(args, owns_process):
    kind, pid_file = args[0], args[1]
    open(pid_file, "w").write(str(os.getpid()))
    if kind == "exit":
        return int(args[2])
    if kind == "echo":
        print("worker", os.environ["MARK"], os.getcwd(), flush=True)
        return 0
    if kind == "kill":
        os.kill(os.getpid(), 9)
    time.sleep(120)
    return 0

start_server(main)
print(socket_path(), flush=True)
sys.stdin.read()  # the server lives while this process does
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="forked workers need Linux (pidfd_open)")


@pytest.fixture
def server():
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    path = process.stdout.readline().strip()
    yield path
    process.stdin.close()
    process.wait(timeout=30)


def client(path: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ftrecipe.forked_workers", path, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not (path.is_file() and path.read_text()):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.02)
    return int(path.read_text())


def ended(process: subprocess.Popen, worker: int) -> None:
    """Wait for a client to end; if it does not, say what it and its worker were doing (a failure under
    the suite's load once: the client outlived its SIGTERM by 30 s)."""
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        states = {name: _state(pid) for name, pid in (("client", process.pid), ("worker", worker))}
        process.kill()
        pytest.fail(f"the client did not end within 30 s: {states}")


def _state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return "gone"
    keep = ("State", "PPid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return "; ".join(line for line in status if line.split(":")[0] in keep) + f"; wchan {wchan}"


def gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_the_worker_gets_the_clients_streams_environment_and_folder_and_its_exit_code(server, tmp_path):
    echo = client(server, "echo", str(tmp_path / "pid"), cwd=tmp_path, env={**os.environ, "MARK": "seven"})
    assert echo.communicate(timeout=30)[0] == f"worker seven {tmp_path}\n" and echo.returncode == 0
    failing = client(server, "exit", str(tmp_path / "pid2"), "3")
    failing.communicate(timeout=30)
    assert failing.returncode == 3
    assert wait_for(tmp_path / "pid2") not in (failing.pid, echo.pid)  # a forked process, not the client


def test_a_worker_killed_by_a_signal_kills_its_client_with_it(server, tmp_path):
    killed = client(server, "kill", str(tmp_path / "pid"))
    killed.communicate(timeout=30)
    assert killed.returncode == -signal.SIGKILL  # what torchrun would see of a worker killed by kill -9


def test_signals_reach_the_worker_and_a_killed_client_leaves_no_worker(server, tmp_path):
    terminated = client(server, "sleep", str(tmp_path / "a"))
    worker = wait_for(tmp_path / "a")
    terminated.send_signal(signal.SIGTERM)  # as torchrun stops its workers
    ended(terminated, worker)
    assert terminated.returncode == -signal.SIGTERM and gone(worker)

    orphaned = client(server, "sleep", str(tmp_path / "b"))
    worker = wait_for(tmp_path / "b")
    orphaned.kill()
    ended(orphaned, worker)
    assert gone(worker), "the worker outlived its killed client"


def test_a_signal_that_comes_before_the_workers_pid_reaches_the_worker(tmp_path):
    """torchrun may stop its workers while one is still being forked: the client keeps the signal and
    forwards it once the server has told it the worker's pid (it neither dies of it nor loses it).
    A stand-in server answers here, so the signal surely comes first; `sleep` stands in for the worker."""
    from ftrecipe.forked_workers import _receive

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "socket"))
    listener.listen(1)
    waiting = client(str(tmp_path / "socket"), "sleep")
    connection, _ = listener.accept()
    request, fds = _receive(connection)  # the client is connected, so its handlers are in place
    for fd in fds:
        os.close(fd)
    assert request["args"] == ["sleep"]
    waiting.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the signal is handled before the pid is sent (had it killed the client, the test fails below)
    worker = subprocess.Popen(["sleep", "60"])
    try:
        connection.sendall(json.dumps({"pid": worker.pid}).encode() + b"\n")
        assert worker.wait(timeout=10) == -signal.SIGTERM, "the early signal never reached the worker"
        connection.sendall(f"{-signal.SIGTERM}\n".encode())
        waiting.communicate(timeout=30)
        assert waiting.returncode == -signal.SIGTERM
    finally:
        worker.kill()
        connection.close()
        listener.close()
