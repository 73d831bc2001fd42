"""Debian's PgBouncer in transaction mode in front of the local PostgreSQL, for tests and benchmarks.

It runs the system binary with a configuration of its own (its own port, log and pid file in a
temporary directory; no system service). PgBouncer refuses to run as root: as root it drops to the
`postgres` user, which must be able to read the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if not found:
        raise RuntimeError("pgbouncer is not installed (scripts/ensure-services installs Debian's package)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def pgbouncer(host: str = "127.0.0.1", port: int = 5432, user: str = "postgres", pool_size: int = 4):
    """Yields (listen port, path of its log); stops it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="tokenhub-pgbouncer-"))
    listen_port = _free_port()
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    config = workdir / "pgbouncer.ini"
    config.write_text(
        CONFIG.format(host=host, port=port, listen_port=listen_port, dir=workdir, user=user, pool_size=pool_size)
    )
    command = [binary(), str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
        workdir.chmod(0o777)
        for path in workdir.iterdir():
            path.chmod(0o666)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(listen_port, process)
        yield listen_port, workdir / "pgbouncer.log"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {process.stderr.read().decode()[-500:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"pgbouncer did not listen on {port} within {timeout}s")
