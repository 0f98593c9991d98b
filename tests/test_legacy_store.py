"""A store written before the package moved under ``steptrail`` (its events
name ``domain.aggregates:…``) is served, verified and rebuilt with the answers
it gave then, and takes new jobs beside its old ones.

``fixtures/store-0.1`` holds that store's two SQLite files and the API's
answers recorded by the code that wrote them: a demo job that succeeded, one
whose ``load`` step failed twice (a retry), and a job whose step reported
refused progress numbers. Newer answers may carry more fields; every
recorded one must be there, equal. (No recorded answer holds an ``/api/logs``
cursor: each listing fits one page, so a line id, which names a line's place
in the store since, is never compared.)
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from conftest import run_cli, serving, store_args

from steptrail.domain.store import JobStore, parse_store

FIXTURE = Path(__file__).parent / "fixtures" / "store-0.1"
ANSWERS: dict[str, dict[str, Any]] = orjson.loads((FIXTURE / "answers.json").read_bytes())


def holds(answer: Any, recorded: Any) -> bool:
    """``answer`` says all that ``recorded`` said (objects may have gained fields)."""
    if isinstance(recorded, dict):
        return isinstance(answer, dict) and all(
            k in answer and holds(answer[k], v) for k, v in recorded.items()
        )
    if isinstance(recorded, list):
        return (
            isinstance(answer, list)
            and len(answer) == len(recorded)
            and all(map(holds, answer, recorded))
        )
    return bool(answer == recorded)


def assert_same_answers(data_dir: Path, store: str | None) -> None:
    with serving(data_dir, store=store) as live:
        for url, recorded in ANSWERS.items():
            r = live.client.get(url)
            assert r.status_code == recorded["status"], url
            assert holds(r.json(), orjson.loads(recorded["body"])), url
        job = live.submit("demo", lines=5, rate=0)
        live.wait_job(job["id"])
        listed = live.client.get("/api/jobs").json()["jobs"]
        assert [j["number"] for j in listed] == [4, 3, 2, 1]


def copy_into_postgres(store: str, data_dir: Path) -> None:
    """The fixture's events, with their positions, into a new PostgreSQL store."""
    recorder: Any = JobStore(parse_store(store, data_dir)).recorder
    table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
    with sqlite3.connect(FIXTURE / "events.sqlite") as source:
        rows = source.execute(
            "SELECT rowid, originator_id, originator_version, topic, state"
            " FROM stored_events ORDER BY rowid"
        ).fetchall()
    with psycopg.connect(store.split("?")[0]) as conn:
        conn.cursor().executemany(
            f"INSERT INTO {table} (notification_id, originator_id, originator_version, topic,"
            " state) VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'notification_id'), %s)",
            (rows[-1][0],),
        )


@pytest.mark.timeout(180)
def test_a_store_of_the_previous_layout_gives_the_same_answers(
    tmp_path: Path, any_store: str | None
) -> None:
    data_dir = tmp_path / "data"
    if any_store is None:
        shutil.copytree(FIXTURE, data_dir, ignore=shutil.ignore_patterns("answers.json"))
        # Its read model numbers lines as they were inserted: verify says to
        # rebuild it, and the server does so at start.
        verified = run_cli("verify", *store_args(any_store, data_dir))
        assert verified.returncode == 3, verified.stdout + verified.stderr
        assert "older version of steptrail" in verified.stderr
    else:
        copy_into_postgres(any_store, data_dir)
    assert_same_answers(data_dir, any_store)

    rebuilt = run_cli("rebuild", *store_args(any_store, data_dir))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    verified = run_cli("verify", *store_args(any_store, data_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr
