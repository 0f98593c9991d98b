"""What the queue page asks the server beyond the basic routes, on SQLite and
PostgreSQL: a search over a whole step answers the count and the rank of a
match ("hit n of m") and moves to the next or previous match; the job list
filters by definition, finds a job by number or id and says how many match;
a param outside its declared constraints is refused with a 400 naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, serving


def _search(server: LiveServer, step_id: str, **params: Any) -> dict[str, Any]:
    r = server.client.get(f"/api/steps/{step_id}/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_search_counts_ranks_and_moves_over_the_whole_step(any_server: LiveServer) -> None:
    server = any_server
    job = server.wait_job(server.submit("burst", lines=2000)["id"])
    sid = job["steps"][0]["id"]
    # "line 1" is in lines 1, 10-19, 100-199 and 1000-1999
    first = _search(server, sid, q="LINE 1")
    assert (first["count"], first["seqs"], first["index"]) == (1111, [1], 0)
    assert first["last_seq"] == 2000 and first["position"] > 0
    after_19 = _search(server, sid, q="line 1", seq=19, limit=2)
    assert (after_19["seqs"], after_19["index"]) == ([100, 101], 11)
    before_100 = _search(server, sid, q="line 1", seq=100, direction="prev")
    assert (before_100["seqs"], before_100["index"]) == ([19], 10)
    past_the_end = _search(server, sid, q="line 1", seq=1999)
    assert (past_the_end["seqs"], past_the_end["index"], past_the_end["count"]) == ([], None, 1111)
    # errors are every fifth line from 4 on: the last one, found from the end
    last_error = _search(server, sid, level="error", direction="prev")
    assert (last_error["count"], last_error["seqs"], last_error["index"]) == (400, [1999], 399)
    both = _search(server, sid, q="line 19", level="error")
    assert (both["count"], both["seqs"]) == (23, [19])  # 19, 194, 199, 1904..1999 by 5

    r = server.client.get(f"/api/steps/{sid}/search", params={"direction": "up"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "direction"
    r = server.client.get(f"/api/steps/{job['id']}/search")
    assert r.status_code == 404

    raw = server.client.get(f"/api/steps/{sid}/logs/raw")
    assert raw.headers["content-disposition"] == "inline"
    assert raw.headers["content-type"].startswith("text/plain")
    assert raw.text.count("\n") == 2000 and "\tline 2000\n" in raw.text


@pytest.fixture
def idle_server(tmp_path: Path, any_store: str | None) -> Any:
    """A server that runs no steps: submitted jobs stay queued, as listed."""
    with serving(tmp_path / "data", store=any_store, workers=False) as live:
        yield live


def test_job_list_filters_finds_and_counts(idle_server: LiveServer) -> None:
    server = idle_server
    jobs = [server.submit("burst" if n % 3 else "drip", lines=1) for n in range(1, 13)]
    everything = server.client.get("/api/jobs", params={"limit": 5}).json()
    assert everything["total"] == 12 and len(everything["jobs"]) == 5
    assert everything["next_before"] == 8
    drips = server.client.get("/api/jobs", params={"definition": "drip", "limit": 2}).json()
    assert drips["total"] == 4 and [j["number"] for j in drips["jobs"]] == [12, 9]
    older = server.client.get(
        "/api/jobs", params={"definition": "drip", "before": drips["next_before"]}
    ).json()
    assert older["total"] == 4 and [j["number"] for j in older["jobs"]] == [6, 3]
    for find in ("3", "#3", jobs[2]["id"][:8].upper(), jobs[2]["id"]):
        found = server.client.get("/api/jobs", params={"q": find}).json()
        assert [j["id"] for j in found["jobs"]] == [jobs[2]["id"]], find
        assert found["total"] == 1
    none = server.client.get("/api/jobs", params={"q": "#99", "status": "queued"}).json()
    assert (none["jobs"], none["total"]) == ([], 0)


def test_params_outside_their_constraints_are_a_400_naming_the_field(
    idle_server: LiveServer,
) -> None:
    server = idle_server
    refused = {
        "lines": (-5, "must be between 0 and 1000000, got -5"),
        "rate": (2e6, "must be between 0 and 1000000"),
        "mix": ("bogus:3", "unknown level 'bogus'"),
    }
    for name, (value, words) in refused.items():
        r = server.client.post("/api/jobs", json={"definition": "demo", "params": {name: value}})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["field"] == f"params.{name}" and words in error["message"]
    r = server.client.post("/api/jobs", json={"definition": "demo", "params": {"lines": "x"}})
    assert r.status_code == 422, "a value of the wrong type stays a 422"
    assert server.client.get("/api/jobs").json()["total"] == 0

    definitions = server.client.get("/api/definitions").json()["definitions"]
    demo = next(d for d in definitions if d["name"] == "demo")
    params = {p["name"]: p for p in demo["params"]}
    assert (params["lines"]["min"], params["lines"]["max"]) == (0, 1_000_000)
    assert params["mix"]["pattern"] and params["fail_step"]["pattern"] is None
