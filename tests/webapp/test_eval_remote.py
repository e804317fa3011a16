"""``fipo eval --server``: a stored benchmark by id or name from a live control plane, ``--submit`` to
its board (``fipo_engine/eval/remote.py``). The real command entry point against a real server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.engine import fixtures as fx
from webapp.accounts.models import Membership, Role, Team, User
from webapp.accounts.services import api_token_create
from webapp.leaderboards.models import LeaderboardEntry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROBLEMS = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 4)]


def _member(name: str, team: Team, role: str = Role.MEMBER) -> tuple[User, str]:
    user = User.objects.create(username=name)
    Membership.objects.create(user=user, team=team, role=role)
    return user, api_token_create(user=user)[1]


def _fipo_eval(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, token: str | None,
               *args: str) -> tuple[int, str, str]:
    from fipo_engine.cli import main

    monkeypatch.setattr(sys, "argv", sys.argv[:])
    if token is None:
        monkeypatch.delenv("FIPO_API_TOKEN", raising=False)
    else:
        monkeypatch.setenv("FIPO_API_TOKEN", token)
    code = main(["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_a_stored_benchmark_by_name_or_id_and_submit(live_server: Any, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    team = Team.objects.create(name="alpha")
    alice, alice_key = _member("alice", team)
    _, vera_key = _member("vera", team, Role.VIEWER)
    client = APIClient()
    client.force_authenticate(alice)
    rows = "".join(json.dumps(r) + "\n" for r in PROBLEMS).encode()
    bench = client.post("/api/v1/benchmarks/", {"file": SimpleUploadedFile("b.jsonl", rows), "name": "tinybench",
                                                "team": team.pk}, format="multipart").json()
    answers = fx.responses_jsonl(tmp_path / "resp.jsonl", {"p1": [r"\boxed{2}", r"\boxed{3}"],
                                                           "p2": [r"\boxed{4}", r"\boxed{4}"],
                                                           "p3": ["no idea", r"\boxed{6}"]})
    server = live_server.url

    code, out, err = _fipo_eval(capsys, monkeypatch, alice_key, "--responses", str(answers), "--benchmark",
                                "tinybench", "--server", server, "--json", "--submit", "my external model")
    assert code == 0, err
    result = json.loads(out)
    assert (result["benchmark"], result["n_problems"], result["pass_at_1"]) == ("tinybench", 3, pytest.approx(2 / 3))
    entry = LeaderboardEntry.objects.get(model_name="my external model")
    assert (entry.team_id, entry.benchmark_sha256, entry.benchmark_ref_id) == (team.pk, bench["sha256"], bench["id"])
    assert f"submitted as entry {entry.pk}" in err and f"/leaderboards/entries/{entry.pk}/" in err

    code, out, err = _fipo_eval(capsys, monkeypatch, alice_key, "--responses", str(answers), "--benchmark",
                                str(bench["id"]), "--server", server, "--json")
    assert code == 0 and json.loads(out)["pass_at_1"] == pytest.approx(2 / 3), err  # by id, no submit

    # a viewer reads the benchmark but cannot put an entry on the board
    code, out, err = _fipo_eval(capsys, monkeypatch, vera_key, "--responses", str(answers), "--benchmark",
                                "tinybench", "--server", server, "--json", "--submit", "vera's model")
    assert code == 1 and json.loads(out)["n_problems"] == 3 and "refused" in err and "HTTP 403" in err
    assert not LeaderboardEntry.objects.filter(model_name="vera's model").exists()

    for token, ref, expected in ((None, "tinybench", "needs an API token in $FIPO_API_TOKEN"),
                                 ("not-a-key", "tinybench", "refused the benchmark list (HTTP 401)"),
                                 (alice_key, "nosuch", "no benchmark of that name"),
                                 (alice_key, "99999", "not found on the server")):
        code, _, err = _fipo_eval(capsys, monkeypatch, token, "--responses", str(answers), "--benchmark", ref,
                                  "--server", server)
        assert code == 2 and expected in err, (ref, err)
    code, _, err = _fipo_eval(capsys, monkeypatch, alice_key, "--responses", str(answers), "--benchmark",
                              "tinybench", "--submit", "x")
    assert code == 2 and "--submit needs --server" in err


def test_a_built_in_is_generated_locally_and_checked_against_the_servers_hash(
        live_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from fipo_engine.eval.benchmarks import load_benchmark

    team = Team.objects.create(name="alpha")
    _, key = _member("alice", team)
    problems = load_benchmark("chain-sum").problems[:2]
    answers = fx.responses_jsonl(tmp_path / "resp.jsonl", {p.id: [p.answer] for p in problems})
    code, out, err = _fipo_eval(capsys, monkeypatch, key, "--responses", str(answers), "--benchmark", "chain-sum",
                                "--server", live_server.url, "--json", "--partial", "--submit", "oracle",
                                "--team", str(team.pk))
    assert code == 0, err
    assert json.loads(out)["pass_at_1"] == 1.0
    assert LeaderboardEntry.objects.get(model_name="oracle").benchmark == "chain-sum"
