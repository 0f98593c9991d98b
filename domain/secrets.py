"""Secret params: kept encrypted apart from the events, only while their job runs.

A param declared ``secret=True`` never enters an event: the job's params hold
``***`` and the value goes, encrypted (Fernet: AES-128-CBC with an HMAC), into a
small table of its own — ``secrets.sqlite`` beside the SQLite store, or a
``secrets`` table in the PostgreSQL schema. The key is ``STEPTRAIL_SECRET_KEY``
when set (required on PostgreSQL: every worker host needs it), else a key file
``secret.key`` (mode 0600) in the data directory, never in the database. The
value is handed to the step's worker process over its pipe and deleted when the
job ends, so a job queued across a restart still gets it, and a copy of the
store or its backups never holds it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg
from cryptography.fernet import Fernet, InvalidToken

from steptrail.domain.store import StoreLocation

KEY_ENV = "STEPTRAIL_SECRET_KEY"


class SecretsUnavailable(RuntimeError):
    """Secrets cannot be kept here (no key) or can no longer be read."""


class _Connection(Protocol):
    """The secrets table on one database: its parameter mark and blob type."""

    mark: str
    blob: str

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class _SQLite:
    mark, blob = "?", "BLOB"

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self._conn.close()


class _Postgres:
    mark, blob = "%s", "BYTEA"

    def __init__(self, conninfo: str, schema: str) -> None:
        self._conninfo = f"{conninfo} options='-c search_path={schema}'"

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        pass


class SecretStore:
    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self._fernet: Fernet | None = None
        self._conn: _Connection
        if location.is_postgres:
            params = location.postgres_params()
            self._conn = _Postgres(location.postgres_conninfo(), params["schema"])
        else:
            location.data_dir.mkdir(parents=True, exist_ok=True)
            self._conn = _SQLite(location.data_dir / "secrets.sqlite")
        self._conn.run(
            "CREATE TABLE IF NOT EXISTS secrets (job_id TEXT NOT NULL, name TEXT NOT NULL,"
            f" token {self._conn.blob} NOT NULL, PRIMARY KEY (job_id, name))"
        )

    def _cipher(self) -> Fernet:
        """The key, loaded (or, for a data directory, created) on first use."""
        if self._fernet is None:
            self._fernet = Fernet(self._key())
        return self._fernet

    def _key(self) -> bytes:
        key = os.environ.get(KEY_ENV)
        if key:
            return key.encode()
        if self.location.is_postgres:
            raise SecretsUnavailable(
                f"secret params on PostgreSQL need {KEY_ENV} (the same on every host);"
                f" make one with: python -c 'from cryptography.fernet import Fernet;"
                f" print(Fernet.generate_key().decode())'"
            )
        path = self.location.data_dir / "secret.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        return path.read_bytes().strip()

    def keep(self, job_id: str, values: dict[str, str]) -> None:
        if not values:
            return  # most jobs have none: no key needed
        cipher = self._cipher()
        m = self._conn.mark
        for name, value in values.items():
            token = cipher.encrypt(value.encode())
            self._conn.run(
                f"INSERT INTO secrets (job_id, name, token) VALUES ({m}, {m}, {m})",
                (job_id, name, token),
            )

    def values(self, job_id: str) -> dict[str, str]:
        rows = self._conn.run(
            f"SELECT name, token FROM secrets WHERE job_id = {self._conn.mark}", (job_id,)
        )
        if not rows:
            return {}
        cipher = self._cipher()
        try:
            return {name: cipher.decrypt(bytes(token)).decode() for name, token in rows}
        except InvalidToken:
            raise SecretsUnavailable(
                f"the secrets of job {job_id} were sealed with another key"
            ) from None

    def forget(self, job_id: str) -> None:
        self._conn.run(f"DELETE FROM secrets WHERE job_id = {self._conn.mark}", (job_id,))

    def close(self) -> None:
        self._conn.close()
