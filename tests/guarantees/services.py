"""Servers a guarantees test starts, stops and restarts itself: a redis-server and a PostgreSQL cluster of its
own, on free ports, never the machine's shared ones (5432, 6379)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from tests.servers import ROOT, free_port, server_env, test_database_url


class OwnRedis:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([*command, "--daemonize", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # a crash, not a polite shutdown
            self.process.wait()


@contextlib.contextmanager
def own_redis():
    redis = OwnRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: a root test runs it as the postgres account.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class OwnPostgres:
    """A throwaway cluster from initdb (trust auth, fsync off) in a temporary directory."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self.bin = Path(found[-1]).parent if found else Path(shutil.which("initdb") or "initdb").parent
        self.dir = Path(tempfile.mkdtemp(prefix="tokenhub-pg-"))
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/tokenhub"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._ctl("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _ctl(self, program: str, *args: str) -> None:
        subprocess.run(_as_postgres([str(self.bin / program), *args]), check=True, capture_output=True)

    def _pg_ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        data = str(self.dir / "data")
        self._ctl("pg_ctl", action, "-D", data, "-w", "-o", options, "-l", str(self.dir / "log"), *args)

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")  # every backend is ended, every client connection broken

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("stop", "-m", "immediate")

    def processes(self) -> list[int]:
        postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    @contextlib.contextmanager
    def stalled(self):
        """Every process of the cluster stopped (SIGSTOP): connections stay open, nothing answers."""
        stopped = self.processes()
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def copy_test_database(self) -> None:
        """The test database as it stands (schema, functions, the rows a test seeded) into this cluster."""
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE tokenhub")
        dump = subprocess.run(["pg_dump", "--no-owner", test_database_url()], check=True, capture_output=True)
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", self.url], input=dump.stdout, check=True, capture_output=True
        )


@contextlib.contextmanager
def own_postgres():
    cluster = OwnPostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.dir, ignore_errors=True)


BOOKS = """
import json, django
django.setup()
from accounts.models import User
from billing.models import UsageRecord
from tests.guarantees.conftest import books_are_whole
records = [[r.status, str(r.cost_usd), r.error] for r in UsageRecord.objects.order_by("pk")]
print(json.dumps({"problems": books_are_whole(User.objects.get(username="alice")), "records": records}))
"""


def books_in(database_url: str) -> dict:
    """books_are_whole() and the usage records of another database, read by a process of its own."""
    env = server_env(DATABASE_URL=database_url)
    done = subprocess.run([sys.executable, "-c", BOOKS], cwd=ROOT, env=env, check=True, capture_output=True)
    return json.loads(done.stdout.decode().strip().splitlines()[-1])
