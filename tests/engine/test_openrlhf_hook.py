"""The setup hook and the metrics/sample forwarding, in this process (the Ray-worker run is in
tests/worker/test_ray_launcher.py). OpenRLHF's real loss.py sits under test stand-ins for the
package files that need a GPU stack (see ``standin_site``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from fipo_engine.algorithms import PolicyLossConfig, policy_loss
from fipo_engine.integrations.openrlhf import forwarding, hook
from fipo_engine.metrics_catalog import is_known
from tests.engine.test_openrlhf_wheel import (  # noqa: F401
    load_samples_generator,
    openrlhf_experience,
    openrlhf_root,
    standin_site,
)


@pytest.fixture
def standin(openrlhf_root: Path, tmp_path: Path):  # noqa: F811
    """The stand-in OpenRLHF importable for one test, then gone (modules, path entry and finder)."""
    site = standin_site(openrlhf_root, tmp_path / "site")
    before = set(sys.modules)
    sys.path.insert(0, str(site))
    meta_before = list(sys.meta_path)
    yield site
    sys.path.remove(str(site))
    sys.meta_path[:] = meta_before
    for name in set(sys.modules) - before:
        if name.split(".")[0] in {"openrlhf", "deepspeed"}:
            del sys.modules[name]


def test_without_the_hook_openrlhf_keeps_its_own_loss(standin) -> None:
    models = importlib.import_module("openrlhf.models")
    assert models.PolicyLoss.__name__ == "PolicyLoss"


def test_hook_swaps_policy_loss_on_import_and_adds_metrics(standin) -> None:
    hook.setup()
    hook.setup()  # idempotent: one finder
    assert sum(isinstance(f, hook.PatchingFinder) for f in sys.meta_path) == 1
    models = importlib.import_module("openrlhf.models")
    loss_module = importlib.import_module("openrlhf.models.loss")
    ppo_actor = importlib.import_module("openrlhf.trainer.ray.ppo_actor")
    assert models.PolicyLoss is loss_module.PolicyLoss is ppo_actor.PolicyLoss
    assert models.PolicyLoss.__name__ == "FipoPolicyLoss"
    assert models.PolicyLoss.__mro__[1].__module__ == "openrlhf.models.loss"  # subclass of OpenRLHF's class

    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 16, generator=g) * 2
    new = old + 0.5 * torch.randn(4, 16, generator=g)
    adv = torch.randn(4, 1, generator=g).expand(4, 16)
    mask = torch.ones(4, 16, dtype=torch.bool)
    trainer = ppo_actor.ActorPPOTrainer()
    status = trainer.training_step((new, old, adv, mask), 0.0, 0)
    ours = policy_loss("fipo", new, old, adv, mask, PolicyLossConfig())
    assert torch.equal(status["metrics"]["policy_loss"], ours.loss)
    for name, value in ours.metrics.items():
        key = forwarding.LOSS_METRIC_PREFIX + name
        assert status["weights"][key] == "token"
        assert status["metrics"][key].item() == pytest.approx(0.0 if value is None else value)


def test_hook_patches_modules_imported_before_it_ran(standin) -> None:
    ppo_actor = importlib.import_module("openrlhf.trainer.ray.ppo_actor")
    assert ppo_actor.PolicyLoss.__name__ == "PolicyLoss"
    hook.setup()
    assert ppo_actor.PolicyLoss.__name__ == "FipoPolicyLoss"
    assert sys.modules["openrlhf.models"].PolicyLoss is ppo_actor.PolicyLoss


def test_openrlhf_status_maps_to_catalog_names() -> None:
    status = {"reward": torch.tensor(0.1), "rollout/reward_mean": 0.25, "rollout/reward_std": 0.5,
              "accuracy": 0.625, "response_length": 100.0, "rollout/truncated_rate": 0.0,
              "dynamic_filtering_pass_rate": 800.0, "policy_loss": -0.01, "ppo_clip_ratio": 0.3,
              "actor_grad_norm": 1.5, "actor_lr": 1e-6, "timing/generation": 12.0, "generated_samples": ["x", 1],
              "fipo:actor/influence_weights_max": 1.2, "fipo:actor/pg_clipfrac": 0.05, "fipo:not/a_metric": 1.0,
              "kl": float("nan")}
    # 800 = 8,192 kept samples / 1,024 prompts consumed x 100 (OpenRLHF's samples_generator): half the
    # groups of 16 were kept
    values = forwarding.map_openrlhf_status(status, n=16)
    assert values == {"reward/mean": 0.25, "reward/std": 0.5, "accuracy/mean": 0.625, "response_length/mean": 100.0,
                      "response_length/clip_ratio": 0.0, "sampling/kept_group_fraction": 0.5,
                      "actor/pg_loss": -0.01, "actor/pg_clipfrac": 0.05, "actor/grad_norm": 1.5, "actor/lr": 1e-6,
                      "timing/generate_s": 12.0, "actor/influence_weights_max": 1.2}
    assert all(is_known(name) for name in values)
    assert all(is_known(name) for name in forwarding.OPENRLHF_METRICS)


def test_samples_carry_prompt_response_and_per_token_channels() -> None:
    g = torch.Generator().manual_seed(1)
    # two rows: left-padded prompt of 4 positions, response of 5 positions right-padded
    sequences = torch.tensor([[0, 0, 7, 8, 11, 12, 13, 2, 0], [0, 9, 9, 9, 21, 22, 0, 0, 0]])
    attention = (sequences != 0).long()
    action_mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    old = -torch.rand(2, 5, generator=g)
    new = old + 0.3 * torch.randn(2, 5, generator=g)
    adv = torch.tensor([[1.0] * 5, [-1.0] * 5])
    out = policy_loss("fipo", new, old, adv, action_mask, PolicyLossConfig())
    samples = forwarding.collect_samples(
        sequences=sequences, action_mask=action_mask, attention_mask=attention, output=out, log_probs=new,
        old_log_probs=old, advantages=adv, rewards=torch.tensor([1.0, -1.0]),
        decode=lambda ids: " ".join(map(str, ids)), tokens=lambda ids: [f"t{i}" for i in ids], k=4)
    assert len(samples) == 2
    first, second = samples
    assert (first["prompt"], first["response"], first["tokens"]) == ("7 8", "11 12 13 2", ["t11", "t12", "t13", "t2"])
    assert (second["prompt"], second["response"], second["correct"], second["reward"]) == ("9 9 9", "21 22", False, -1.0)
    for channel in forwarding.SAMPLE_CHANNELS:
        assert len(first[channel]) == 4 and len(second[channel]) == 2
    assert first["logprob"] == pytest.approx(new[0, :4].tolist(), abs=1e-5)
    assert first["influence"] == pytest.approx(out.influence_weights[0, :4].tolist(), abs=1e-5)
    assert forwarding.samples_to_keep({"FIPO_CONFIG_JSON": '{"trainer": {"log_samples": 2}}'}) == 2


def test_tracker_writes_metrics_then_that_steps_samples(tmp_path: Path) -> None:
    tracker = forwarding.FipoTracker(str(tmp_path), None, "7", None)
    tracker.add_samples([{"prompt": "p", "response": "r", "tokens": ["r"], "logprob": [-0.1]}])
    tracker.step(3, {"reward/mean": 0.5})
    tracker.step(4, {"reward/mean": 0.6})
    tracker.close()
    events = tracker.tracker.spool.events()
    assert [(e["seq"], e["type"], e.get("step")) for e in events] == [
        (1, "status", None), (2, "metric", 3), (3, "sample", 3), (4, "metric", 4)]
    assert events[0]["state"] == "running"
    assert events[2]["index"] == 0 and events[2]["logprob"] == [-0.1]


def test_kept_group_fraction_uses_the_run_configs_samples_per_prompt(monkeypatch) -> None:
    monkeypatch.setenv("FIPO_CONFIG_JSON", '{"rollout": {"n": 8}}')
    assert forwarding.map_openrlhf_status({"dynamic_filtering_pass_rate": 400.0}) == {
        "sampling/kept_group_fraction": 0.5}


def test_evaluation_forwards_accuracy_not_mean_reward() -> None:
    """OpenRLHF's compute_eval_metrics: pass1 = mean reward (2·acc − 1 with ±1), pass<k> = mean max reward."""
    logs = {"eval_aime_pass4": 0.5, "eval_aime_pass1": -0.5, "eval_aime_response_length_mean": 900.0,
            "eval_aime_truncated_rate": 0.25, "eval_response_length_mean": 900.0, "eval_num_samples": 120.0}
    metrics, events = forwarding.map_openrlhf_eval(logs, k=4)
    assert metrics == {"eval/pass_at_1": 0.25, "eval/pass_at_k": 0.75, "eval/response_length_mean": 900.0,
                       "eval/truncation_rate": 0.25}
    assert events == [{"benchmark": "aime", "k": 4, "pass_at_1": 0.25, "pass_at_k": 0.75,
                       "response_length_mean": 900.0, "truncation_rate": 0.25}]
    assert all(is_known(name) for name in metrics)
    # other reward scores: accuracy = (r - incorrect) / (correct - incorrect)
    metrics, _ = forwarding.map_openrlhf_eval({"eval_x_pass1": 0.3}, k=1, correct=1.0, incorrect=0.0)
    assert metrics == {"eval/pass_at_1": 0.3}


def test_sample_prompt_is_whole_with_openrlhfs_own_experience_layout(openrlhf_root: Path,  # noqa: F811
                                                                    openrlhf_experience) -> None:  # noqa: F811
    """Experiences built by OpenRLHF 0.11.2's own code: action_mask is S − 1 wide (mask[j] marks token
    j + 1), sequences right-padded by make_experience_batch. The prompt must decode whole."""
    generator = load_samples_generator(openrlhf_root)
    prompts, responses = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13, 2], [21, 22]]
    items = [generator.SamplesGenerator._process_response_into_experience(
        None, {"observation_tokens": p + r, "action_ranges": [(len(p), len(p) + len(r))], "reward": reward,
               "rollout_log_probs": None, "prompt": "p", "label": "l"}, max_len=64)
        for p, r, reward in zip(prompts, responses, (1.0, -1.0), strict=True)]
    exp = openrlhf_experience.make_experience_batch(
        [one for item in items for one in openrlhf_experience.split_experience_batch(item)])
    assert exp.action_mask.shape[1] == exp.sequences.shape[1] - 1
    width = exp.action_mask.shape[1]
    old = -torch.rand(2, width)
    adv = torch.tensor([[1.0] * width, [-1.0] * width])
    mask = exp.action_mask.bool()
    out = policy_loss("fipo", old + 0.1, old, adv, mask, PolicyLossConfig())
    samples = forwarding.collect_samples(
        sequences=exp.sequences, action_mask=exp.action_mask, attention_mask=exp.attention_mask, output=out,
        log_probs=old + 0.1, old_log_probs=old, advantages=adv, rewards=exp.info["reward"],
        decode=lambda ids: " ".join(map(str, ids)), tokens=lambda ids: [f"t{i}" for i in ids], k=4)
    assert [(s["prompt"], s["response"]) for s in samples] == [("5 6 7 8", "11 12 13 2"), ("9 10", "21 22")]
    assert [len(s["logprob"]) for s in samples] == [4, 2]


def test_tracker_reports_running_heartbeats_and_a_final_state(tmp_path: Path) -> None:
    """Against a real HTTP server: status running on creation, bare heartbeats ([]) while it lives,
    close(state) reports the state and flushes."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[list] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(events)
            top = max((e["seq"] for e in events), default=0)
            payload = json.dumps({"acked_seq": top, "rejected": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None: ...

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        tracker = forwarding.FipoTracker(str(tmp_path), url, "7", "tok", heartbeat_s=0.05)
        deadline = time.monotonic() + 10
        while tracker.heartbeats < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tracker.heartbeats >= 2 and [] in bodies
        tracker.step(1, {"reward/mean": 0.5}, wait_s=5)
        assert tracker.close("succeeded", "done")
    finally:
        server.shutdown()
    events = [e for body in bodies for e in body]
    kinds = [(e["type"], e.get("state")) for e in events]
    assert kinds[0] == ("status", "running") and kinds[-1] == ("status", "succeeded")
    assert ("metric", None) in kinds


def test_the_trainer_patch_targets_exist_where_ray_imports_them_by_reference(openrlhf_root: Path) -> None:  # noqa: F811
    """ppo_trainer.py cannot be imported on CPU; its source is read instead. The hook patches methods of
    ``BasePPOTrainer`` (a plain class, imported by reference in the actor) and the module global
    ``balance_experiences``; ``PPOTrainer`` itself is an ``@ray.remote`` class, pickled by value from
    the driver, so its own methods could not be patched."""
    import ast

    tree = ast.parse((openrlhf_root / "openrlhf" / "trainer" / "ppo_trainer.py").read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    base_methods = {f.name for f in classes["BasePPOTrainer"].body if isinstance(f, ast.FunctionDef)}
    assert {"__init__", "save_logs_and_checkpoints", "save_best_checkpoint", "train_step"} <= base_methods
    assert [ast.unparse(d) for d in classes["PPOTrainer"].decorator_list] == ["ray.remote"]
    own = {f.name for f in classes["PPOTrainer"].body if isinstance(f, ast.FunctionDef)}
    assert not own & {"save_logs_and_checkpoints", "save_best_checkpoint"}  # not overridden
    train_step = next(f for f in classes["BasePPOTrainer"].body if getattr(f, "name", "") == "train_step")
    calls = {ast.unparse(n.func) for n in ast.walk(train_step) if isinstance(n, ast.Call)}
    assert "balance_experiences" in calls  # a module global: rebinding it reaches this call
    fit = next(f for f in classes["PPOTrainer"].body if getattr(f, "name", "") == "fit")
    assert "self.save_best_checkpoint" in {ast.unparse(n.func) for n in ast.walk(fit) if isinstance(n, ast.Call)}
