"""Real answers of every route against the OpenAPI schema, so the schema cannot drift from the code.

The schema is generated in-process by drf-spectacular (what ``/api/v1/schema/`` serves) and every
operation in it is a test case below: each calls the route through Django's test client (at least
one 2xx and one 4xx answer), and ``openapi-core`` checks the request (when it is a valid one) and the
answer against the schema. An operation without a scenario fails, so a new route must be described
and exercised; an answer whose status the schema does not list fails too.

Answers are checked against a stricter copy of the schema in which an object with listed
``properties`` admits no other keys (``additionalProperties: false`` unless it says otherwise): a key
the code sends but the schema does not describe is drift as much as a missing one. The served schema
stays lenient, so clients may ignore keys added later.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

AIME = "aime-2024"
PROBLEMS = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 5)]


# ------------------------------------------------------------------------------------- the schema
def _generated_schema() -> dict[str, Any]:
    """The schema as served (rendered to JSON and back: lazy strings and tuples become plain)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def _closed(schema: Any) -> Any:
    """A copy where every object schema with ``properties`` refuses unlisted keys."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


SCHEMA = _generated_schema()
OPERATIONS = sorted((method.upper(), path) for path, item in SCHEMA["paths"].items() for method in item
                    if method in {"get", "post", "put", "patch", "delete"})
REQUESTS = OpenAPI.from_dict(copy.deepcopy(SCHEMA))
ANSWERS = OpenAPI.from_dict({**SCHEMA, "components": _closed(SCHEMA["components"]), "paths": _closed(SCHEMA["paths"])})


class _SentRequest(DjangoOpenAPIRequest):
    """The request as the test sent it: Django's request, with the body bytes kept by the test
    (the view has consumed the stream, after which ``HttpRequest.body`` cannot be read)."""

    def __init__(self, request: HttpRequest, body: bytes) -> None:
        super().__init__(request)
        self._sent_body = body

    @property
    def body(self) -> bytes:
        return self._sent_body


@dataclass
class Checker:
    """Calls routes and checks each request/answer pair against the schema."""

    seen: set[tuple[str, str, int]] = field(default_factory=set)

    def call(self, client: APIClient, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             multipart: dict[str, Any] | None = None, valid_request: bool = True,
             headers: dict[str, str] | None = None) -> Any:
        """``valid_request=False`` for a request the test makes wrong on purpose (its answer is
        still checked)."""
        if multipart is not None:
            data, content_type = encode_multipart(BOUNDARY, multipart), MULTIPART_CONTENT
        else:
            data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
            content_type = "application/json"
        response = client.generic(method, path, data, content_type=content_type, headers=headers)
        request = _SentRequest(response.wsgi_request, data)
        # openapi-core reads every multipart field as text (it does not cast "1" to the integer the
        # schema says a form field holds), so only the answer of an upload is checked.
        if valid_request and multipart is None:
            REQUESTS.validate_request(request)
        ANSWERS.validate_response(request, DjangoOpenAPIResponse(response))
        self.seen.add((method, request.path_pattern or "", response.status_code))
        return response


# --------------------------------------------------------------------------------------- the world
class World:
    """What the scenarios need, made on first use (one database per test)."""

    def __init__(self, team: Any, other_team: Any, member: Any, owner: Any, viewer: Any, outsider: Any,
                 tmp_path: Path, settings: Any) -> None:
        self.team, self.other_team = team, other_team
        self.member, self.owner, self.viewer, self.outsider = member, owner, viewer, outsider
        self.tmp_path = tmp_path
        settings.FIPO_RUNS_DIR = tmp_path / "runs"

    @staticmethod
    def client(user: Any = None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_login(user)
        return client

    @cached_property
    def alice(self) -> APIClient:
        return self.client(self.member)

    @cached_property
    def olivia(self) -> APIClient:
        return self.client(self.owner)

    @cached_property
    def vera(self) -> APIClient:
        return self.client(self.viewer)

    @cached_property
    def oscar(self) -> APIClient:
        return self.client(self.outsider)

    @cached_property
    def anonymous(self) -> APIClient:
        return self.client()

    def draft(self, name: str = "demo") -> Any:
        from webapp.runs.services import run_create

        return run_create(user=self.member, team_id=self.team.pk, name=name, preset="cpu-demo")

    def checkpoint(self, run: Any, step: int) -> Any:
        from webapp.runs.models import Checkpoint
        from webapp.runs.services import run_paths

        directory = run_paths(run)[0] / "checkpoints" / f"step_{step:06d}"
        directory.mkdir(parents=True, exist_ok=True)
        return Checkpoint.objects.create(run=run, step=step, uri=f"file://{directory}")

    @cached_property
    def started(self) -> tuple[Any, str]:
        """A run that is running, with its token, a log, metrics, samples and a checkpoint."""
        import secrets

        from webapp.common.auth import token_hash
        from webapp.runs.models import Run, RunStatus
        from webapp.runs.services import run_paths, run_transition
        from webapp.tracking.services import events_ingest

        run = self.draft("trained")
        token = secrets.token_urlsafe(32)
        Run.objects.filter(pk=run.pk).update(token_hash=token_hash(token))
        run_transition(run_id=run.pk, to=RunStatus.QUEUED, reason="tests")
        run_transition(run_id=run.pk, to=RunStatus.STARTING, reason="tests")
        log = run_paths(run)[1]
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("step 0\nstep 1\n")
        directory = self.checkpoint(run, 2).uri
        events_ingest(run_id=run.pk, events=[
            *({"seq": i + 1, "type": "metric", "step": i, "values": {"reward/mean": i / 4, "actor/lr": 1e-6}}
              for i in range(4)),
            {"seq": 5, "type": "sample", "step": 3, "index": 0, "prompt": "2+2?", "response": "4", "reward": 1.0,
             "correct": True, "tokens": ["4", "<eos>"], "future_kl": [0.1, float("nan")], "influence": [1.0, 1.1],
             "minibatch": 1, "num_minibatches": 2},
            {"seq": 6, "type": "checkpoint", "step": 2, "uri": directory},
        ])
        run.refresh_from_db()
        return run, token

    @property
    def run(self) -> Any:
        return self.started[0]

    @cached_property
    def sample_id(self) -> int:
        from webapp.tracking.models import Sample

        return Sample.objects.get(run=self.run).pk

    def upload(self, client: APIClient, name: str = "tinybench", problems: list[dict[str, Any]] = PROBLEMS,
               filename: str = "bench.jsonl") -> dict[str, Any]:
        content = "".join(json.dumps(p) + "\n" for p in problems).encode()
        return {"file": SimpleUploadedFile(filename, content, "application/jsonl"), "name": name,
                "team": str(self.team.pk)}

    @cached_property
    def benchmark(self) -> dict[str, Any]:
        response = self.alice.post("/api/v1/benchmarks/", self.upload(self.alice), format="multipart")
        assert response.status_code == 201, response.content
        return response.json()

    def external(self, model: str, correct: list[int]) -> dict[str, Any]:
        rows = [{"id": p["id"], "n": 4, "correct": c} for p, c in zip(PROBLEMS, correct, strict=True)]
        body = {"team": self.team.pk, "model_name": model,
                "result": {"pass_at_1": sum(correct) / 16, "pass_at_1_ci": [0.1, 0.9], "k": 4, "n_problems": 4,
                           "problems": rows}}
        return body

    @cached_property
    def entries(self) -> tuple[int, int]:
        """Two external entries on the stored benchmark, with per-problem results (comparable)."""
        ids = []
        for model, correct in (("model-a", [4, 2, 0, 1]), ("model-b", [3, 4, 1, 1])):
            response = self.alice.post(f"/api/v1/leaderboards/{self.benchmark['name']}/entries/",
                                       self.external(model, correct), format="json")
            assert response.status_code == 201, response.content
            ids.append(response.json()["id"])
        return ids[0], ids[1]

    @cached_property
    def job(self) -> int:
        from webapp.leaderboards.jobs import eval_job_queue

        return eval_job_queue(user=self.member, body={"run": self.run.pk, "benchmark": self.benchmark["id"],
                                                      "k": 2}).pk


@pytest.fixture
def world(team: Any, other_team: Any, member: Any, owner: Any, viewer: Any, outsider: Any, tmp_path: Path,
          settings: Any) -> World:
    return World(team, other_team, member, owner, viewer, outsider, tmp_path, settings)


# --------------------------------------------------------------------------------------- scenarios
Scenario = Callable[[World, Checker], None]
SCENARIOS: dict[tuple[str, str], Scenario] = {}


def scenario(method: str, path: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[(method, "/api/v1" + path)] = fn
        return fn

    return register


# accounts
@scenario("GET", "/teams/")
def _teams(w: World, c: Checker) -> None:
    c.call(w.alice, "GET", "/api/v1/teams/")
    c.call(w.anonymous, "GET", "/api/v1/teams/", valid_request=False)


@scenario("GET", "/tokens/")
def _tokens(w: World, c: Checker) -> None:
    c.call(w.alice, "POST", "/api/v1/tokens/", {"name": "laptop"})
    assert len(c.call(w.alice, "GET", "/api/v1/tokens/").json()) == 1
    c.call(w.anonymous, "GET", "/api/v1/tokens/", valid_request=False)


@scenario("POST", "/tokens/")
def _token_create(w: World, c: Checker) -> None:
    assert c.call(w.alice, "POST", "/api/v1/tokens/", {"name": "laptop"}).status_code == 201
    assert c.call(w.alice, "POST", "/api/v1/tokens/", {"name": 5}, valid_request=False).status_code == 400


@scenario("DELETE", "/tokens/{token_id}/")
def _token_delete(w: World, c: Checker) -> None:
    token = c.call(w.alice, "POST", "/api/v1/tokens/", {"name": "old"}).json()
    assert c.call(w.alice, "DELETE", f"/api/v1/tokens/{token['id']}/").status_code == 204
    assert c.call(w.alice, "DELETE", f"/api/v1/tokens/{token['id']}/").status_code == 404


@scenario("POST", "/auth/token")
def _token_obtain(w: World, c: Checker) -> None:
    client = w.client()
    client.defaults["REMOTE_ADDR"] = f"test-{uuid.uuid4().hex}"  # the throttle's counters outlive a test
    assert c.call(client, "POST", "/api/v1/auth/token", {"username": "alice", "password": "pw"}).status_code == 201
    assert c.call(client, "POST", "/api/v1/auth/token", {"username": "alice", "password": "no"}).status_code == 401
    assert c.call(client, "POST", "/api/v1/auth/token", {"username": "alice"}, valid_request=False).status_code == 400


# runs
@scenario("GET", "/runs/")
def _runs(w: World, c: Checker) -> None:
    w.draft()
    assert c.call(w.alice, "GET", "/api/v1/runs/?q=demo").json()["count"] == 1
    assert c.call(w.alice, "GET", "/api/v1/runs/?status=bogus").status_code == 400


@scenario("POST", "/runs/")
def _run_create(w: World, c: Checker) -> None:
    body = {"name": "sweep", "team": w.team.pk, "preset": "cpu-demo", "overrides": {"trainer.lr": 1e-4}}
    assert c.call(w.alice, "POST", "/api/v1/runs/", body).status_code == 201
    partial = {"name": "partial", "team": w.team.pk, "config": {"trainer": {"total_steps": 3}}}
    assert c.call(w.alice, "POST", "/api/v1/runs/", partial).status_code == 201
    bad = {**body, "overrides": {"trainer.lr": -1}}
    assert c.call(w.alice, "POST", "/api/v1/runs/", bad, valid_request=False).status_code == 400
    assert c.call(w.vera, "POST", "/api/v1/runs/", body).status_code == 403


@scenario("GET", "/runs/{run_id}/")
def _run_detail(w: World, c: Checker) -> None:
    detail = c.call(w.olivia, "GET", f"/api/v1/runs/{w.run.pk}/").json()
    assert detail["checkpoints"] and detail["log_tail"]
    assert c.call(w.oscar, "GET", f"/api/v1/runs/{w.run.pk}/").status_code == 404


@scenario("DELETE", "/runs/{run_id}/")
def _run_delete(w: World, c: Checker) -> None:
    assert c.call(w.vera, "DELETE", f"/api/v1/runs/{w.draft().pk}/").status_code == 403
    assert c.call(w.alice, "DELETE", f"/api/v1/runs/{w.draft().pk}/").status_code == 204
    assert c.call(w.alice, "DELETE", f"/api/v1/runs/{w.run.pk}/").status_code == 409


@scenario("POST", "/runs/{run_id}/launch")
def _run_launch(w: World, c: Checker) -> None:
    run = w.draft()
    assert c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/launch").status_code == 202
    assert c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/launch").status_code == 409


@scenario("POST", "/runs/{run_id}/cancel")
def _run_cancel(w: World, c: Checker) -> None:
    run = w.draft()
    c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/launch")  # queued (the job is started after a commit: never here)
    assert c.call(w.vera, "POST", f"/api/v1/runs/{run.pk}/cancel").status_code == 403
    assert c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/cancel").status_code == 202
    assert c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/cancel").status_code == 409


@scenario("POST", "/runs/{run_id}/resume/")
def _run_resume(w: World, c: Checker) -> None:
    run = w.draft()
    assert c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/resume/").status_code == 409
    c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/launch")
    c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/cancel")
    w.checkpoint(run, 4)
    resumed = c.call(w.alice, "POST", f"/api/v1/runs/{run.pk}/resume/")
    assert resumed.status_code == 202 and resumed.json()["status"] == "queued"


@scenario("POST", "/runs/{run_id}/clone")
def _run_clone(w: World, c: Checker) -> None:
    assert c.call(w.alice, "POST", f"/api/v1/runs/{w.run.pk}/clone").status_code == 201
    assert c.call(w.oscar, "POST", f"/api/v1/runs/{w.run.pk}/clone").status_code == 404


@scenario("GET", "/runs/{run_id}/log")
def _run_log(w: World, c: Checker) -> None:
    assert c.call(w.alice, "GET", f"/api/v1/runs/{w.run.pk}/log?offset=2").json()["text"] == "ep 0\nstep 1\n"
    assert c.call(w.alice, "GET", f"/api/v1/runs/{w.run.pk}/log?offset=x", valid_request=False).status_code == 400
    assert c.call(w.oscar, "GET", f"/api/v1/runs/{w.run.pk}/log").status_code == 404


@scenario("GET", "/config/schema")
def _config_schema(w: World, c: Checker) -> None:
    assert c.call(w.alice, "GET", "/api/v1/config/schema").json()["title"] == "RunConfig"
    c.call(w.anonymous, "GET", "/api/v1/config/schema", valid_request=False)


@scenario("GET", "/config/presets")
def _config_presets(w: World, c: Checker) -> None:
    c.call(w.alice, "GET", "/api/v1/config/presets")
    c.call(w.anonymous, "GET", "/api/v1/config/presets", valid_request=False)


@scenario("GET", "/metrics/catalog")
def _metrics_catalog(w: World, c: Checker) -> None:
    c.call(w.alice, "GET", "/api/v1/metrics/catalog")
    c.call(w.anonymous, "GET", "/api/v1/metrics/catalog", valid_request=False)


# tracking
@scenario("POST", "/runs/{run_id}/events")
def _ingest(w: World, c: Checker) -> None:
    run, token = w.started
    bearer = {"Authorization": f"Bearer {token}"}
    events = [
        {"seq": 7, "type": "status", "state": "running", "message": ""},
        {"seq": 8, "type": "metric", "step": 4, "values": {"reward/mean": 0.5}},
        {"seq": 9, "type": "sample", "step": 4, "index": 0, "prompt": [{"role": "user", "content": "1+1?"}],
         "response": "2", "reward": 1.0, "correct": True, "tokens": ["2"], "future_kl": [0.0], "log_ratio": [None]},
        {"seq": 10, "type": "checkpoint", "step": 4, "uri": "file:///tmp/step_4"},
        {"seq": 11, "type": "eval", "benchmark": AIME, "step": 4, "pass_at_1": 0.25, "pass_at_1_ci": [0.1, 0.4],
         "k": 4, "n_problems": 30},
        {"seq": 12, "type": "log", "text": "hello"},
    ]
    answer = c.call(w.anonymous, "POST", f"/api/v1/runs/{run.pk}/events", events, headers=bearer).json()
    assert answer["acked_seq"] == 12 and not answer["rejected"], answer
    refused = [{"seq": 13, "type": "metric", "step": -1, "values": {}}]
    answer = c.call(w.anonymous, "POST", f"/api/v1/runs/{run.pk}/events", refused, headers=bearer,
                    valid_request=False).json()
    assert answer["rejected"][0]["seq"] == 13
    assert c.call(w.anonymous, "POST", f"/api/v1/runs/{run.pk}/events", raw=b"[{", headers=bearer,
                  valid_request=False).status_code == 400
    assert c.call(w.anonymous, "POST", f"/api/v1/runs/{run.pk}/events", [], valid_request=False).status_code == 401
    other = w.draft("other")
    assert c.call(w.anonymous, "POST", f"/api/v1/runs/{other.pk}/events", [], headers=bearer).status_code == 403


@scenario("GET", "/runs/{run_id}/metrics")
def _metrics(w: World, c: Checker) -> None:
    url = f"/api/v1/runs/{w.run.pk}/metrics"
    assert c.call(w.alice, "GET", url).json() == {"keys": ["actor/lr", "reward/mean"]}
    series = c.call(w.alice, "GET", f"{url}?keys=reward/mean,nope&max_points=2").json()["series"]
    assert series["reward/mean"]["downsampled"] and series["nope"]["total_points"] == 0
    assert c.call(w.alice, "GET", f"{url}?keys=a&max_points=1").status_code == 400
    assert c.call(w.oscar, "GET", url).status_code == 404


@scenario("GET", "/runs/{run_id}/samples/")
def _samples(w: World, c: Checker) -> None:
    url = f"/api/v1/runs/{w.run.pk}/samples/"
    listed = c.call(w.alice, "GET", f"{url}?order=-reward").json()
    assert listed["step"] == 3 and listed["results"] and listed["fipo"] is not None
    assert c.call(w.alice, "GET", f"{url}?step=99").json()["results"] == []
    assert c.call(w.alice, "GET", f"{url}?order=bogus", valid_request=False).status_code == 400
    assert c.call(w.oscar, "GET", url).status_code == 404


@scenario("GET", "/runs/{run_id}/samples/positions/")
def _positions(w: World, c: Checker) -> None:
    url = f"/api/v1/runs/{w.run.pk}/samples/positions/"
    assert set(c.call(w.alice, "GET", url).json()["channels"]) == {"future_kl", "influence"}
    empty = c.call(w.alice, "GET", f"/api/v1/runs/{w.draft().pk}/samples/positions/").json()
    assert empty == {"step": None, "samples": 0, "channels": {}}
    assert c.call(w.alice, "GET", f"{url}?step=-1", valid_request=False).status_code == 400
    assert c.call(w.oscar, "GET", url).status_code == 404


@scenario("GET", "/samples/{sample_id}/")
def _sample_detail(w: World, c: Checker) -> None:
    detail = c.call(w.alice, "GET", f"/api/v1/samples/{w.sample_id}/").json()
    assert detail["channels"]["future_kl"][1] is None
    assert c.call(w.oscar, "GET", f"/api/v1/samples/{w.sample_id}/").status_code == 404


@scenario("GET", "/tracking/schema.json")
def _tracking_schema(w: World, c: Checker) -> None:
    assert c.call(w.alice, "GET", "/api/v1/tracking/schema.json").json()["type"] == "array"
    c.call(w.anonymous, "GET", "/api/v1/tracking/schema.json", valid_request=False)


@scenario("GET", "/tracking/channels")
def _token_channels(w: World, c: Checker) -> None:
    names = [ch["name"] for ch in c.call(w.alice, "GET", "/api/v1/tracking/channels").json()["channels"]]
    assert "future_kl" in names
    c.call(w.anonymous, "GET", "/api/v1/tracking/channels", valid_request=False)


# leaderboards
@scenario("GET", "/leaderboards/")
def _boards(w: World, c: Checker) -> None:
    assert any(b["benchmark"] == AIME for b in c.call(w.alice, "GET", "/api/v1/leaderboards/").json())
    c.call(w.anonymous, "GET", "/api/v1/leaderboards/", valid_request=False)


@scenario("GET", "/leaderboards/{benchmark}/")
def _board(w: World, c: Checker) -> None:
    w.entries  # noqa: B018  (two comparable entries on the stored benchmark)
    board = c.call(w.alice, "GET", f"/api/v1/leaderboards/{w.benchmark['name']}/").json()
    assert board["benchmark_info"] and any(e["vs_leader"] for e in board["entries"])
    assert c.call(w.alice, "GET", f"/api/v1/leaderboards/{AIME}/?scope=global&all=true").json()["entries"]
    assert c.call(w.alice, "GET", f"/api/v1/leaderboards/{AIME}/?scope=mine", valid_request=False).status_code == 400
    assert c.call(w.alice, "GET", "/api/v1/leaderboards/999999/").status_code == 404


@scenario("POST", "/leaderboards/{benchmark}/entries/")
def _entry_create(w: World, c: Checker) -> None:
    url = f"/api/v1/leaderboards/{w.benchmark['name']}/entries/"
    assert c.call(w.alice, "POST", url, w.external("model-c", [1, 1, 1, 1])).status_code == 201
    assert c.call(w.alice, "POST", url, {**w.external("", [0, 0, 0, 0])}).status_code == 400
    assert c.call(w.vera, "POST", url, w.external("model-d", [1, 1, 1, 1])).status_code == 403
    foreign = {**w.external("model-e", [1, 1, 1, 1]), "team": w.other_team.pk}
    assert c.call(w.alice, "POST", url, foreign).status_code == 404


@scenario("POST", "/leaderboards/evaluate/")
def _evaluate(w: World, c: Checker) -> None:
    body = {"run": w.run.pk, "benchmark": w.benchmark["name"], "k": 2, "temperature": 0.7}
    assert c.call(w.alice, "POST", "/api/v1/leaderboards/evaluate/", body).status_code == 202
    assert c.call(w.alice, "POST", "/api/v1/leaderboards/evaluate/", {**body, "k": 0},
                  valid_request=False).status_code == 400
    assert c.call(w.vera, "POST", "/api/v1/leaderboards/evaluate/", body).status_code == 403
    assert c.call(w.oscar, "POST", "/api/v1/leaderboards/evaluate/", body).status_code == 404
    assert c.call(w.alice, "POST", "/api/v1/leaderboards/evaluate/", {**body, "step": 99}).status_code == 409


@scenario("GET", "/eval-jobs/")
def _jobs(w: World, c: Checker) -> None:
    w.job  # noqa: B018
    assert len(c.call(w.alice, "GET", f"/api/v1/eval-jobs/?run={w.run.pk}").json()["results"]) == 1
    assert c.call(w.alice, "GET", "/api/v1/eval-jobs/", valid_request=False).status_code == 400
    assert c.call(w.oscar, "GET", f"/api/v1/eval-jobs/?run={w.run.pk}").status_code == 404


@scenario("GET", "/eval-jobs/{job_id}/")
def _job(w: World, c: Checker) -> None:
    assert c.call(w.alice, "GET", f"/api/v1/eval-jobs/{w.job}/").json()["status"] == "queued"
    assert c.call(w.oscar, "GET", f"/api/v1/eval-jobs/{w.job}/").status_code == 404


@scenario("POST", "/eval-jobs/{job_id}/cancel")
def _job_cancel(w: World, c: Checker) -> None:
    assert c.call(w.vera, "POST", f"/api/v1/eval-jobs/{w.job}/cancel").status_code == 403
    assert c.call(w.alice, "POST", f"/api/v1/eval-jobs/{w.job}/cancel").json()["status"] == "cancelled"
    assert c.call(w.oscar, "POST", f"/api/v1/eval-jobs/{w.job}/cancel").status_code == 404


@scenario("GET", "/benchmarks/")
def _benchmarks(w: World, c: Checker) -> None:
    w.benchmark  # noqa: B018
    assert c.call(w.alice, "GET", "/api/v1/benchmarks/").json()
    c.call(w.anonymous, "GET", "/api/v1/benchmarks/", valid_request=False)


@scenario("POST", "/benchmarks/")
def _benchmark_upload(w: World, c: Checker) -> None:
    assert c.call(w.alice, "POST", "/api/v1/benchmarks/", multipart=w.upload(w.alice)).status_code == 201
    assert c.call(w.alice, "POST", "/api/v1/benchmarks/", multipart=w.upload(w.alice)).status_code == 200
    csv = {**w.upload(w.alice), "file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")}
    assert c.call(w.alice, "POST", "/api/v1/benchmarks/", multipart=csv).status_code == 400
    assert c.call(w.vera, "POST", "/api/v1/benchmarks/", multipart=w.upload(w.vera, "other")).status_code == 403
    assert c.call(w.alice, "POST", "/api/v1/benchmarks/", {"name": "x"}, valid_request=False).status_code == 415


@scenario("GET", "/benchmarks/{benchmark_id}/")
def _benchmark(w: World, c: Checker) -> None:
    detail = c.call(w.alice, "GET", f"/api/v1/benchmarks/{w.benchmark['id']}/").json()
    assert len(detail["problems"]) == len(PROBLEMS)
    assert c.call(w.oscar, "GET", f"/api/v1/benchmarks/{w.benchmark['id']}/").status_code == 404


@scenario("GET", "/leaderboards/entries/{entry_id}/")
def _entry(w: World, c: Checker) -> None:
    detail = c.call(w.alice, "GET", f"/api/v1/leaderboards/entries/{w.entries[0]}/").json()
    assert detail["problems"][0]["prompt"] == PROBLEMS[0]["problem"]
    assert c.call(w.oscar, "GET", f"/api/v1/leaderboards/entries/{w.entries[0]}/").status_code == 404


@scenario("GET", "/leaderboards/compare/")
def _compare(w: World, c: Checker) -> None:
    a, b = w.entries
    assert c.call(w.alice, "GET", f"/api/v1/leaderboards/compare/?a={a}&b={b}").json()["n_problems"] == 4
    assert c.call(w.alice, "GET", f"/api/v1/leaderboards/compare/?a={a}", valid_request=False).status_code == 400
    assert c.call(w.oscar, "GET", f"/api/v1/leaderboards/compare/?a={a}&b={b}").status_code == 404


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_answers_as_the_schema_says(operation: tuple[str, str], world: World) -> None:
    scenario_fn = SCENARIOS.get(operation)
    assert scenario_fn is not None, f"{operation}: no scenario in {__name__}; describe the route and add one"
    checker = Checker()
    scenario_fn(world, checker)
    statuses = {status for method, path, status in checker.seen if (method, path) == operation}
    assert any(200 <= s < 300 for s in statuses), f"{operation}: no successful answer exercised ({statuses})"
    assert any(400 <= s < 500 for s in statuses), f"{operation}: no 4xx answer exercised ({statuses})"


def test_every_scenario_is_a_route_of_the_schema() -> None:
    assert set(SCENARIOS) - set(OPERATIONS) == set()


def test_no_body_is_a_bare_object() -> None:
    """Every request and answer body names its fields (or is a component that does)."""
    def bare(schema: dict[str, Any]) -> bool:
        return schema.get("type") == "object" and not ({"properties", "additionalProperties", "$ref", "oneOf",
                                                         "description"} & set(schema))

    for (method, path) in OPERATIONS:
        operation = SCHEMA["paths"][path][method.lower()]
        bodies: Iterator[dict[str, Any]] = (
            media["schema"]
            for holder in [operation.get("requestBody", {}), *operation["responses"].values()]
            for media in holder.get("content", {}).values()
        )
        for schema in bodies:
            assert not bare(schema), f"{method} {path}: a bare object body"


def test_error_answers_reference_the_error_component() -> None:
    for (method, path) in OPERATIONS:
        for status, answer in SCHEMA["paths"][path][method.lower()]["responses"].items():
            if status.startswith("4"):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"
