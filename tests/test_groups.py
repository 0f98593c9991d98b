"""Collapsible groups of lines are data: ``ctx.group(...)`` and ``::group::``
/ ``::endgroup::`` lines place every line in its group, the step's group tree
answers counts without reading lines, hostile groups stay harmless, and a
rebuild gives the same groups (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from steptrail.domain.vocabulary import MAX_GROUP_DEPTH, MAX_GROUP_NAME
from tests.conftest import run_cli, serving, store_args

pytestmark = pytest.mark.timeout(180)


def test_lines_know_their_groups_and_the_tree_counts_them(
    tmp_path: Path, any_store: str | None
) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, store=any_store) as live:
        job = live.wait_job(live.submit("grouped")["id"])
        step = job["steps"][0]
        logs = live.client.get(f"/api/steps/{step['id']}/logs", params={"limit": 100}).json()
        lines = {line["seq"]: line for line in logs["lines"]}
        assert len(lines) == 51
        assert {s: lines[s]["group"] for s in range(1, 11)} == {
            1: None,
            2: None,  # an opening line is held by the group around it
            3: 2,
            4: 2,
            5: 4,
            6: 4,  # the closing line is its group's last
            7: 2,
            8: None,
            9: None,  # an unbalanced end closes nothing
            10: None,  # a masked command opens nothing
        }
        assert lines[2]["message"] == "install dependencies"
        assert lines[10]["message"] == "***"
        assert lines[51]["group"] == 11 + MAX_GROUP_DEPTH - 1  # the deepest group

        groups = live.client.get(f"/api/steps/{step['id']}/groups").json()["groups"]
        by_seq = {g["seq"]: g for g in groups}
        assert by_seq[2] == {
            "seq": 2,
            "parent": None,
            "depth": 1,
            "name": "install dependencies",
            "last_seq": 7,
            "lines": 5,
            "errors": 1,
            "open": False,
        }
        assert by_seq[4] | {"name": None} == {
            "seq": 4,
            "parent": 2,
            "depth": 2,
            "name": None,
            "last_seq": 6,
            "lines": 2,
            "errors": 1,
            "open": False,
        }
        assert by_seq[11]["name"].startswith("n" * MAX_GROUP_NAME)
        assert "cut: 5,000 characters" in by_seq[11]["name"]
        deep = [g for g in groups if g["seq"] >= 11]
        assert len(deep) == MAX_GROUP_DEPTH  # the rest are ordinary lines
        assert max(g["depth"] for g in groups) == MAX_GROUP_DEPTH
        assert all(g["open"] and g["last_seq"] == 51 for g in deep)  # never closed
        assert [g["lines"] for g in deep[:2]] == [40, 39]

        download = live.client.get(
            f"/api/steps/{step['id']}/logs/download", params={"format": "ndjson"}
        )
        rows = [orjson.loads(row) for row in download.content.splitlines()]
        assert [row["group"] for row in rows[:8]] == [None, None, 2, 2, 4, 4, 2, None]

    for command in ("verify", "rebuild", "verify"):
        done = run_cli(command, *store_args(any_store, data_dir))
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
