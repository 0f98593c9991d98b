"""Searching one step's whole log: which lines match, how many, and where a
match stands among them (its rank), so a page can say "hit n of m" and move
to the next or previous match without holding the step's lines.

The matching is the logs route's (minimum level, case-insensitive substring;
Queries.filter_lines writes it for SQLite and PostgreSQL alike); the
counts use the ``lines_by_step`` index on (step_job_id, seq).
"""

from __future__ import annotations

from typing import Any, Literal

from steptrail.projections.queries import Queries
from steptrail.projections.readmodel import tracking_position

Direction = Literal["next", "prev"]


class StepSearch:
    def __init__(self, queries: Queries) -> None:
        self.queries = queries

    def search(
        self,
        step_job_id: str,
        seq: int,
        direction: Direction,
        limit: int,
        min_level: int | None,
        q: str | None,
    ) -> dict[str, Any] | None:
        """The matches after ``seq`` (``next``, ascending) or before it
        (``prev``, descending), up to ``limit``; ``index`` is the 0-based rank
        of the first of them among all the step's matches (None: none left
        that way); ``count`` is every match in the step."""
        where = ["l.step_job_id = ?"]
        params: list[Any] = [step_job_id]
        self.queries.filter_lines(where, params, min_level, q)
        matching = " AND ".join(where)
        after = direction == "next"
        with self.queries.db.read() as cur:
            position = tracking_position(cur)
            cur.execute("SELECT last_seq FROM steps WHERE step_job_id = ?", (step_job_id,))
            step = cur.fetchone()
            if step is None:
                return None
            cur.execute(f"SELECT COUNT(*) AS n FROM lines l WHERE {matching}", params)
            count = int(cur.fetchone()["n"])
            cur.execute(
                f"SELECT l.seq FROM lines l WHERE {matching} AND l.seq {'>' if after else '<'} ?"
                f" ORDER BY l.seq {'ASC' if after else 'DESC'} LIMIT ?",
                (*params, seq, limit),
            )
            seqs = [int(r["seq"]) for r in cur.fetchall()]
            # matches before the first returned one: its rank
            cur.execute(
                f"SELECT COUNT(*) AS n FROM lines l WHERE {matching} AND l.seq < ?",
                (*params, seqs[0] if seqs else seq),
            )
            rank = int(cur.fetchone()["n"])
        return {
            "count": count,
            "seqs": seqs,
            "index": rank if seqs else None,
            "last_seq": int(step["last_seq"]),
            "position": position,
        }
