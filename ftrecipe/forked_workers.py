"""Workers of a several-device run forked from a warm process, for the test suite's two-process runs.

A run at ``hardware.devices: 2`` becomes a torchrun agent that starts two fresh ``python -m ftrecipe``
workers, each importing torch, Accelerate and Transformers again (about 7 s of CPU each on two cores): in
the suite's few dozen two-process runs, the largest share of its time. When the agent itself is a
:mod:`ftrecipe.warm_start` child, those imports are already done in it, so the child forks a *worker
server* before it runs the command (the preloaded libraries, the command's environment, nothing of the
command yet), and the agent starts ``python -m ftrecipe.forked_workers SOCKET ARGS`` instead of
``python -m ftrecipe ARGS``. That small client hands the server its environment, folder, arguments and
standard streams; the server forks a worker that becomes ``python -m ftrecipe ARGS`` exactly as the warm
child would (streams line-buffered, as ``-u`` leaves them unbuffered), and the client forwards the signals
torchrun sends it (Ctrl-C, SIGTERM) and ends with the worker's exit status, a signal's included, so the
agent sees what it would see of a fresh worker. A worker whose client is gone (killed) is killed too.

Nothing here runs outside a warm child: ``ftrecipe run`` started by a user launches fresh workers.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable

from ftrecipe.warm_start import run_as_command

_SOCKET: str | None = None
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
_LENGTH = 8  # bytes of the request's length prefix


def socket_path() -> str | None:
    """The worker server's socket in this process (a warm child running a command), or None."""
    return _SOCKET


def start_server(main: Callable[..., int]) -> None:
    """Fork the worker server from this process, as it stands (call it before the command runs); its workers
    run ``main(args, owns_process=True)`` (``ftrecipe.cli.main``). It ends when this process does: it watches
    a pipe whose only writer is this process."""
    global _SOCKET
    if not hasattr(os, "pidfd_open") or not hasattr(socket, "send_fds"):
        return
    folder = tempfile.mkdtemp(prefix="ftrecipe-workers-")
    path = os.path.join(folder, "socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    alive, keep_alive = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:
        os.close(keep_alive)
        _serve(listener, alive, folder, main)  # returns (and raises) only in a worker, which exits as a command does
        return
    os.close(alive)
    listener.close()
    _SOCKET = path  # keep_alive stays open (not inherited by torchrun's workers: close_fds) until this process ends


def _serve(listener: socket.socket, alive: int, folder: str, main: Callable[..., int]) -> None:
    """Accept clients until the pipe ``alive`` closes; each gets a waiter process that forks its worker.
    The server and the waiters end with ``os._exit`` (never this process's exit handlers); the workers
    return from here, to run as the command and exit as it does (no ``finally`` may stand in their way)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent's Ctrl-C is the workers' business, through their clients
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    try:
        while True:
            ready, _, _ = select.select([listener, alive], [], [])
            if alive in ready:
                break
            connection, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                os.close(alive)
                _wait_on(connection, main)
                return  # the worker
            connection.close()
    except Exception:  # noqa: BLE001 - the server must not outlive its use; a client then fails to connect
        pass
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(0)


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    size = int.from_bytes(data[:_LENGTH], "big")
    body = data[_LENGTH:]
    while len(body) < size:
        chunk = connection.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the client went away")
        body += chunk
    return json.loads(body), list(fds)


def _wait_on(connection: socket.socket, main: Callable[..., int]) -> None:
    """The waiter: fork the worker, tell the client its pid, and its exit status once it ends; kill it if
    the client goes away first."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        request, fds = _receive(connection)
        pid = os.fork()
    except Exception:  # noqa: BLE001
        os._exit(1)
    if pid == 0:
        connection.close()
        _become_worker(request, fds, main)  # raises SystemExit: the worker's exit
    try:
        _report(connection, pid, fds)
    finally:
        os._exit(0)


def _report(connection: socket.socket, pid: int, fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    ended = os.pidfd_open(pid)
    while True:
        ready, _, _ = select.select([connection, ended], [], [])
        if ended in ready:
            break
        if not connection.recv(64):  # the client is gone (killed): so goes its worker
            os.kill(pid, signal.SIGKILL)
            break
    _, status = os.waitpid(pid, 0)
    try:
        connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    except OSError:
        pass


def _become_worker(request: dict, fds: list[int], main: Callable[..., int]) -> None:
    """Run ``python -m ftrecipe ARGS`` in this forked process, with the client's streams and environment."""
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)  # line by line, as torchrun's `python -u` writes
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    threads = request["env"].get("OMP_NUM_THREADS", "")
    if "torch" in sys.modules and threads.isdigit():
        sys.modules["torch"].set_num_threads(int(threads))  # what the agent chose per worker
    run_as_command(main, request["args"], request["env"], request["cwd"])


def client(path: str, args: list[str]) -> int:
    """Have the server at ``path`` fork ``ftrecipe ARGS`` with this process's streams and environment;
    forward signals to it (those that came before its pid too); end as it ended."""
    worker: int | None = None
    pending: list[int] = []  # signals that came before the worker's pid: it gets them once it is known

    def forward(signum: int, _frame: object) -> None:
        if worker is None:
            pending.append(signum)
            return
        try:
            os.kill(worker, signum)
        except ProcessLookupError:
            pass

    for name in _FORWARDED:  # before connecting: torchrun's SIGTERM may come while the worker is being forked
        signal.signal(getattr(signal, name), forward)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    body = json.dumps({"args": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    message = len(body).to_bytes(_LENGTH, "big") + body
    sent = socket.send_fds(connection, [message], [0, 1, 2])
    connection.sendall(message[sent:])
    replies = connection.makefile("rb")
    worker = json.loads(replies.readline())["pid"]
    while pending:
        forward(pending.pop(0), None)
    line = replies.readline()
    code = int(line) if line.strip() else 1
    if code < 0:  # killed by a signal: die of the same one, as the agent would see a fresh worker die
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(client(sys.argv[1], sys.argv[2:]))
