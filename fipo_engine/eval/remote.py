"""``fipo eval --server``: a team's stored benchmark by id or name, and ``--submit`` to its board.

Why: a researcher evaluates where the model is (a GPU box, a laptop) against the exact problem list
the team's board was scored on, and puts the result on that board, without copying files around.
The benchmark comes from ``GET /api/v1/benchmarks/<id>/`` (its problems, grader and SHA-256), the
result goes to ``POST /api/v1/leaderboards/<id>/entries/``, which keeps that hash. The API token is
read from ``$FIPO_API_TOKEN``, never from the command line (``ps`` shows argv to every local user).

A name resolves as the control plane resolves it: the newest version among the user's teams'
benchmarks of that name, else the built-in of that name (generated locally by the same code, and
checked against the server's hash so both sides score the same problems).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import httpx

from fipo_engine.data.problem import Problem
from fipo_engine.eval.benchmarks import BOXED_SUFFIX, Benchmark, load_benchmark, problems_sha256

API_TOKEN_ENV = "FIPO_API_TOKEN"


class RemoteError(ValueError):
    """The server could not give what was asked; the message says why (shown as ``fipo eval: ...``)."""


@dataclass(frozen=True)
class RemoteBenchmark:
    """A benchmark fetched from the server: what ``fipo eval`` scores, and what the board calls it."""

    benchmark: Benchmark
    id: int
    label: str
    team: int | None
    sha256: str


def api_client(server: str, timeout_s: float = 30.0) -> httpx.Client:
    """An HTTP client for ``server``'s API with the token from ``$FIPO_API_TOKEN``."""
    token = os.environ.get(API_TOKEN_ENV, "").strip()
    if not token:
        raise RemoteError(f"--server needs an API token in ${API_TOKEN_ENV} (create one on your account page)")
    if not server.startswith(("http://", "https://")):
        raise RemoteError(f"--server must be an http(s) URL, not {server!r}")
    return httpx.Client(base_url=server.rstrip("/") + "/api/v1", timeout=timeout_s,
                        headers={"Authorization": f"Token {token}"})


def _get(client: httpx.Client, path: str, what: str) -> Any:
    try:
        response = client.get(path)
    except httpx.HTTPError as exc:
        raise RemoteError(f"could not reach the server for {what}: {exc}") from None
    return _json(response, what)


def _json(response: httpx.Response, what: str) -> Any:
    if response.status_code in (401, 403):
        raise RemoteError(f"the server refused {what} (HTTP {response.status_code}): check ${API_TOKEN_ENV} "
                          "and your role in the team")
    if response.status_code == 404:
        raise RemoteError(f"{what}: not found on the server (or not visible to you)")
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        message = (data or {}).get("error", {}).get("message") if isinstance(data, dict) else None
        raise RemoteError(f"{what}: the server answered HTTP {response.status_code}"
                          + (f": {message}" if message else ""))
    if data is None:
        raise RemoteError(f"{what}: the server's answer is not JSON")
    return data


def resolve_id(client: httpx.Client, ref: str) -> int:
    """The id of benchmark ``ref`` (digits: an id; else a name, resolved as the control plane does)."""
    if re.fullmatch(r"[0-9]{1,18}", ref.strip()):  # ASCII only: "²".isdigit() is True and int("²") fails
        return int(ref)
    listed = _get(client, "/benchmarks/", "the benchmark list")
    named = [b for b in listed if isinstance(b, dict) and b.get("name") == ref]
    stored = [b for b in named if b.get("team") is not None]
    if stored:
        newest = max(b["version"] for b in stored)
        top = [b for b in stored if b["version"] == newest]
        if len({b["team"] for b in top}) > 1:
            teams = ", ".join(f"{b['id']} (team {b['team_name']})" for b in top)
            raise RemoteError(f"benchmark {ref!r} exists in several of your teams; give its id: {teams}")
        return int(top[0]["id"])
    builtin = [b for b in named if b.get("team") is None]
    if builtin:
        return int(builtin[0]["id"])
    raise RemoteError(f"benchmark {ref!r}: no benchmark of that name on the server")


def fetch_benchmark(client: httpx.Client, ref: str, *, grader: str | None = None,
                    prompt_suffix: str | None = None) -> RemoteBenchmark:
    """Benchmark ``ref`` (id or name) with its problems, ready for ``evaluate``."""
    bench_id = resolve_id(client, ref)
    data = _get(client, f"/benchmarks/{bench_id}/", f"benchmark {ref}")
    if data.get("builtin"):
        local = load_benchmark(data["name"], grader=grader, prompt_suffix=prompt_suffix)
        if problems_sha256(local.problems) != data["sha256"]:
            raise RemoteError(f"built-in {data['name']!r} differs between this install and the server "
                              "(different versions of fipo or its data packages): scores would not compare")
        bench = local
    else:
        problems = [Problem(id=str(p["id"]), prompt=p["prompt"], answer=str(p["answer"]), source=data["name"])
                    for p in data.get("problems") or []]
        if problems_sha256(problems) != data["sha256"]:
            raise RemoteError(f"benchmark {data['label']!r}: the problems received do not match its SHA-256")
        bench = Benchmark(data["name"], problems, grader or data["grader"],
                          BOXED_SUFFIX if prompt_suffix is None else prompt_suffix,
                          f"{data['label']} from the server (id {data['id']})")
    return RemoteBenchmark(bench, int(data["id"]), data["label"], data.get("team"), data["sha256"])


def submit_entry(client: httpx.Client, remote: RemoteBenchmark, *, team: int | None, model_name: str,
                 result: dict[str, Any]) -> dict[str, Any]:
    """Put ``result`` on the board of ``remote`` as ``model_name``; the created entry."""
    team_id = team if team is not None else remote.team
    if team_id is None:
        raise RemoteError("--submit on a built-in benchmark needs --team (the board is per team)")
    try:
        response = client.post(f"/leaderboards/{remote.id}/entries/",
                               json={"team": team_id, "model_name": model_name, "result": result})
    except httpx.HTTPError as exc:
        raise RemoteError(f"could not reach the server to submit: {exc}") from None
    return _json(response, f"submitting to the board of {remote.label!r}")
