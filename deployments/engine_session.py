"""A flow run's process as our process worker starts it (deployments/prefect_worker.py), run as
`python -I -S deployments/engine_session.py`: the standard library only, so it starts in
milliseconds. In a session of its own, so that stopping the worker (its whole process group,
`registre worker` drains so) leaves the run to finish, as Prefect's own workspace supervisor does.

It has the worker's engine server (deployments/engine_server.py) fork Prefect's engine for the
run, passes on the signals it gets and exits with the engine's code; killed, it takes the engine
with it. With no server to answer, or when told to, it becomes `python -m prefect.engine`
itself: the cold start."""

import json
import os
import signal
import socket
import sys
from contextlib import suppress

SOCKET_ENV = "REGISTRE_ENGINE_SOCKET"  # deployments/engine_server.py's, not imported: see above
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def cold() -> None:
    for signum in FORWARDED:  # one that came while asking stops the run, as before it started
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine"])


def main() -> None:
    os.setsid()
    # held until the engine exists, then passed on: none is lost or handled twice
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.connect(os.environ[SOCKET_ENV])
        socket.send_fds(server, [b"\0"], [0, 1, 2])
        request = {"env": dict(os.environ), "cwd": os.getcwd()}
        server.sendall(json.dumps(request).encode() + b"\n")
        replies = server.makefile("rb")
        first = replies.readline().split()
    except (KeyError, OSError):
        first = []
    if first[:1] != [b"pid"]:
        server.close()
        cold()
    engine = int(first[1])
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        with suppress(ProcessLookupError):  # it has just ended: its code is on its way
            os.kill(engine, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    last = replies.readline().split()
    if last[:1] == [b"exit"]:
        sys.exit(int(last[1]))
    # the engine died without a word: killed. Die the same way, as far as it can be told.
    dying = received[-1] if received else signal.SIGKILL
    if dying != signal.SIGKILL:
        signal.signal(dying, signal.SIG_DFL)
    os.kill(os.getpid(), dying)


if __name__ == "__main__":
    main()
