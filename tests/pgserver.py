"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary
directory, a server on 127.0.0.1 (a free port), stopped at the end.

``COPYTRADER_TEST_PG_URL`` set: use that server instead. initdb and postgres
refuse to run as root, so as root they run as the ``postgres`` user (or
``nobody``) through ``runuser``. When no server can be started the tests that
need one are skipped with the reason, unless ``CI`` or
``COPYTRADER_REQUIRE_PG=1`` is set: then they fail.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Optional

URL_ENV = "COPYTRADER_TEST_PG_URL"


def required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("COPYTRADER_REQUIRE_PG") == "1"


def _bin_dir() -> Optional[str]:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]), reverse=True)
    return next((d for d in dirs if os.path.exists(os.path.join(d, "initdb"))), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.dir: Optional[str] = None
        self.url: Optional[str] = None
        self._run_as: list[str] = []
        self._bin = ""

    def start(self) -> str:
        """The URL of a running cluster; raises RuntimeError saying why not."""
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries (initdb) found: apt-get install postgresql "
                               f"or set {URL_ENV}")
        self._bin = bin_dir
        user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if user is None:
                raise RuntimeError("running as root and no postgres/nobody user to run initdb as")
            self._run_as = ["runuser", "-u", user.pw_name, "--"]
        # as root, in /tmp: a TMPDIR under /root would not be reachable by the postgres user
        self.dir = tempfile.mkdtemp(prefix="copytrader-pg-", dir="/tmp" if user is not None else None)
        if user is not None:
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        data = os.path.join(self.dir, "data")
        self._cmd(["initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                   "--locale=C"], timeout=120)
        last = ""
        for _ in range(3):  # a port taken between probe and bind: try another
            port = _free_port()
            opts = f"-h 127.0.0.1 -p {port} -k {self.dir} -c fsync=off -c full_page_writes=off -c max_connections=60"
            out = subprocess.run([*self._run_as, os.path.join(bin_dir, "pg_ctl"), "-D", data, "-l",
                                  os.path.join(self.dir, "log"), "-o", opts, "-w", "-t", "60", "start"],
                                 capture_output=True, text=True, timeout=90)
            if out.returncode == 0:
                self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
                return self.url
            last = (out.stdout + out.stderr).strip()[-300:]
        raise RuntimeError(f"pg_ctl start failed: {last}")

    def _cmd(self, args: list[str], timeout: int) -> None:
        out = subprocess.run([*self._run_as, os.path.join(self._bin, args[0]), *args[1:]],
                             capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {(out.stdout + out.stderr).strip()[-300:]}")

    def stop(self) -> None:
        if self.dir is None:
            return
        data = os.path.join(self.dir, "data")
        if self.url:
            subprocess.run([*self._run_as, os.path.join(self._bin, "pg_ctl"), "-D", data, "-m", "immediate",
                            "-w", "-t", "30", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=5).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
