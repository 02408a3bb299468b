"""A throwaway PostgreSQL server for the tests and the load test (Debian's `postgresql`).

`initdb` into a fresh temporary folder, start `postgres` listening only on a Unix socket in
that folder (no TCP port, so nothing outside this machine can reach it and parallel runs
cannot collide), and remove everything on stop. PostgreSQL refuses to run as root: as root
the server runs as the `postgres` user (or `nobody`), which owns the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "install Debian's PostgreSQL server: apt-get install -y postgresql"


def find_postgres_bin() -> Path:
    """The folder holding initdb/pg_ctl/postgres; RuntimeError naming the fix when absent."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(f"PostgreSQL server binaries (initdb) not found; {INSTALL_HINT}")
    return Path(candidates[-1]).parent


def _free_port() -> int:
    # Only names the socket file (.s.PGSQL.<port>); nothing listens on TCP.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayPostgres:
    """Context manager: `with ThrowawayPostgres() as pg: engine = create_engine(pg.url())`.

    `durable=False` turns fsync off (fine for tests); the load test keeps it on so the
    comparison with SQLite (synchronous=FULL) is fair.
    """

    role = "radonc"

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bin_dir = find_postgres_bin()
        self.root: Path | None = None
        self.port = _free_port()
        self._run_as: dict = {}

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        return (
            f"postgresql+psycopg://{self.role}@/{database}?host={self.socket_dir}&port={self.port}"
        )

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        # Our own fixed PostgreSQL programs and arguments; no shell, no user input.
        result = subprocess.run(  # noqa: S603
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.root)},
            check=False,
            **self._run_as,
        )
        if result.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )
        return result

    def start(self) -> ThrowawayPostgres:
        self.root = Path(tempfile.mkdtemp(prefix="radonc-pg-"))
        try:
            self._initdb_and_start()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb_and_start(self) -> None:
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            # Clients (root here) connect through the socket, so it must be reachable.
            self.root.chmod(0o755)
            self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        data = self.root / "data"
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            self.role,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = [
            f"-k {self.socket_dir}",
            "-c listen_addresses=''",
            f"-p {self.port}",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )

    def create_database(self, name: str) -> str:
        """Create a fresh database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.role,
            dbname="postgres",
            autocommit=True,
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # name chosen by our own code
        return self.url(name)

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
