"""The services behind `Run`, each without a Run: checkpoints, evaluations, stop signals, and the
resume module's one read of a resumed start's checkpoint."""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest
import torch
from torch import nn

from rlrun.envs.final_info import FinalInfo
from rlrun.run.checkpoint_files import FORMAT, SideFile, load_checkpoint
from rlrun.run.checkpoints import Every, RunCheckpoints
from rlrun.run.eval_episodes import EvalResult, EvaluationInterrupted
from rlrun.run.evaluations import RunEvaluations
from rlrun.run.resume import Resumed, read_checkpoint
from rlrun.run.signals import STOP_SIGNALS, RunInterrupted, StopSignals
from rlrun.training.optim import NonFiniteError

ABOUT = {"algo": "x", "config": "", "global_step": 0}


class Counter:
    """A tracked object: a count as its state."""

    def __init__(self, count: int = 0) -> None:
        self.count = count

    def state_dict(self) -> dict[str, int]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.count = state["count"]


def checkpoints(tmp_path, lines: list[str], **options) -> RunCheckpoints:
    return RunCheckpoints(tmp_path / "checkpoints", options.pop("keep", 2),
                          options.pop("every", 100), lambda text: lines.append(f"console {text}"),
                          lambda text: lines.append(f"log {text}"), **options)


def test_every_is_due_at_each_multiple_after_the_step_it_passed():
    every = Every(100, 250)
    assert (every.next, every.due(299), every.due(300)) == (300, False, True)
    every.passed(420)
    assert every.next == 500
    assert Every(0, 0).next is None and not Every(0, 0).due(10**9)


def test_checkpoints_write_the_tracked_states_keep_the_newest_and_restore_them(tmp_path):
    lines: list[str] = []
    service = checkpoints(tmp_path, lines)
    net, counter, replay = nn.Linear(2, 1), Counter(3), Counter(7)
    service.track(net=net, counter=counter, replay=SideFile(replay))
    assert service.kept() == "no checkpoint had been written" and service.due(100)
    for step in (100, 200, 300):
        service.save(step, {**ABOUT, "global_step": step}, best=step == 200)
    assert (service.written, service.due(399), service.due(400)) == (300, False, True)
    numbered = sorted(p.name for p in service.directory.glob("step_*.pt"))
    assert numbered == ["step_000000000200.pt", "step_000000000300.pt"]  # keep=2
    assert load_checkpoint(service.directory / "best.pt")["global_step"] == 200
    state = load_checkpoint(service.directory / "last.pt")
    assert list(state) == ["format", "algo", "config", "global_step", "modules", "rng"]
    assert state["format"] == FORMAT and state["modules"]["counter"] == {"count": 3}
    assert state["modules"]["replay"] == {"side_file": "replay.pt", "global_step": 300}
    # the side file's line: on the console the first time, then in train.log only
    shown = [line.split(" replay ")[0] for line in lines]
    assert shown == ["console Wrote", "log Wrote", "log Wrote"]
    assert service.kept() == "the checkpoint of step 300 is kept"

    fresh = checkpoints(tmp_path / "other", [], written=300)
    fresh_net, fresh_counter, fresh_replay = nn.Linear(2, 1), Counter(), Counter()
    fresh.track(net=fresh_net, counter=fresh_counter, replay=SideFile(fresh_replay))
    fresh.restore(Resumed(service.directory / "last.pt", state, []))
    expected_draw = torch.rand(1)
    assert torch.equal(fresh_net.weight, net.weight)
    assert (fresh_counter.count, fresh_replay.count) == (3, 7)
    fresh.restore(Resumed(service.directory / "last.pt", state, []))  # the RNG states come back too
    assert torch.equal(torch.rand(1), expected_draw)


def test_checkpoints_refuse_a_non_finite_network_and_write_nothing(tmp_path):
    service = checkpoints(tmp_path, [])
    net = nn.Linear(2, 1)
    service.track(net=net)
    with torch.no_grad():
        net.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="non-finite parameter net.bias"):
        service.save(100, ABOUT)
    assert not service.directory.exists() and service.written is None


def test_checkpoints_tell_a_tracked_optimizer_its_name_and_count_its_skipped_updates(tmp_path):
    from rlrun.config import OptimizerConfig
    from rlrun.training.optim import FlatOptimizer

    net = nn.Linear(2, 1)
    optimizer = FlatOptimizer(net.parameters(), OptimizerConfig())
    service = checkpoints(tmp_path, [], skip_nonfinite=True)
    service.track(optimizer=optimizer)
    assert (optimizer.name, optimizer.skip_nonfinite) == ("optimizer", True)
    assert service.skipped_updates() == 0
    optimizer.skipped_steps = 2
    assert service.skipped_updates() == 2


class Trial:
    """A search trial that prunes at the steps in `prune_at` (when it may)."""

    def __init__(self, prune_at: set[int]) -> None:
        self.prune_at = prune_at
        self.reports: list[tuple[float, int, bool]] = []

    def report(self, value: float, step: int, may_prune: bool) -> bool:
        self.reports.append((value, step, may_prune))
        return may_prune and step in self.prune_at


def evaluations(compose_cfg, returns: list[float], extra=(), **options) -> RunEvaluations:
    """Evaluations whose evaluator gives these mean returns in turn."""
    cfg = compose_cfg(["eval.every_steps=100", *extra])
    service = RunEvaluations(cfg, torch.device("cpu"), FinalInfo([], print), lambda: False,
                             **options)
    values = iter(returns)
    service.use_evaluator(lambda policy: EvalResult(np.array([next(values)]), np.array([1])))
    return service


def test_evaluations_keep_the_best_return_and_reuse_the_final_step(compose_cfg):
    service = evaluations(compose_cfg, [1.0, 3.0, 2.0])
    assert [service.due(step) for step in (50, 100, 150, 230)] == [False, True, False, True]
    policy = nn.Linear(1, 1)
    first, second, third = (service.observe(policy, step) for step in (100, 200, 300))
    assert [e.improved for e in (first, second, third)] == [True, True, False]
    assert service.best_eval_return == 3.0 and policy.training  # back in training mode
    final = service.observe(policy, 300, final=True)  # the same step: not evaluated again
    assert final.repeated and final.result is third.result and service.final_eval_return == 2.0
    assert service.state_dict() == {"best_eval_return": 3.0, "final_eval_return": 2.0,
                                    "stop_reason": None, "stop": {"evals_without_best": 1}}


def test_evaluations_resume_their_best_return_and_stopping_count(compose_cfg):
    resumed = {"global_step": 250, "best_eval_return": 5.0, "stop": {"evals_without_best": 1}}
    service = evaluations(compose_cfg, [4.0], ["stop.patience=2"], resumed=resumed)
    assert not service.due(299) and service.due(300)
    evaluated = service.observe(nn.Linear(1, 1), 300)
    assert not evaluated.improved
    assert service.stop_reason.startswith(
        "stopped at step 300: eval return 4.00, no new best over 5.00")


def test_evaluations_report_to_the_trial_which_may_prune_only_before_the_last(compose_cfg):
    trial = Trial({100, 200})
    service = evaluations(compose_cfg, [1.0, 9.0, 9.0], ["stop.eval_return=5"], trial=trial)
    assert service.report(service.observe(None, 100), final=False)  # pruned here
    assert service.pruned == (100, 1.0)
    stopped = service.observe(None, 200)  # reaches stop.eval_return: the trial's value, no pruning
    assert service.stop_reason is not None and not service.report(stopped, final=False)
    final = service.observe(None, 200, final=True)
    assert not service.report(final, final=True)  # a repeated evaluation is not reported again
    assert trial.reports == [(1.0, 100, True), (9.0, 200, False)]


def test_an_interrupted_evaluation_gives_none(compose_cfg):
    service = evaluations(compose_cfg, [])

    def interrupted(policy):
        raise EvaluationInterrupted

    service.use_evaluator(interrupted)
    policy = nn.Linear(1, 1)
    assert service.observe(policy, 100) is None
    assert policy.training and service.best_eval_return is None


@pytest.fixture
def signals():
    kept = ["the checkpoint of step 64 is kept in here"]
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    service = StopSignals(lambda: kept[0])
    yield service
    service.restore()
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before


def test_a_first_signal_is_recorded_and_a_second_stops_at_once(signals, capsys):
    signals.stop_if_signalled("while setting up")  # nothing arrived: goes on
    signal.raise_signal(signal.SIGUSR1)
    assert signals.received and signals.signum == signal.SIGUSR1
    with pytest.raises(RunInterrupted, match="SIGUSR1 while setting up: no iteration") as raised:
        signals.stop_if_signalled("while setting up")
    assert raised.value.exit_code == 128 + signal.SIGUSR1
    assert str(signals.interrupted("at step 64")) == "SIGUSR1 at step 64"
    with pytest.raises(SystemExit) as stopped:
        signal.raise_signal(signal.SIGTERM)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert capsys.readouterr().err == (
        "rlrun: second SIGTERM: stopped at once; the checkpoint of step 64 is kept in here\n")


def test_signals_outside_the_main_thread_install_nothing():
    before = signal.getsignal(signal.SIGTERM)
    made = []
    thread = threading.Thread(target=lambda: made.append(StopSignals(lambda: "")))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before and not made[0].received
    made[0].restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_checkpoint_is_read_once_until_taken_or_rewritten(tmp_path, monkeypatch):
    from rlrun.run import resume
    from rlrun.run.checkpoint_files import save_atomic

    path = tmp_path / "last.pt"
    save_atomic({"format": FORMAT, "global_step": 1}, path)
    loads = []
    monkeypatch.setattr(resume, "load_checkpoint", lambda p: loads.append(p) or load_checkpoint(p))
    monkeypatch.setattr(resume, "_kept", None)
    first = read_checkpoint(path)
    assert read_checkpoint(path) is first and read_checkpoint(path, keep=False) is first
    assert len(loads) == 1
    assert read_checkpoint(path) is not first and len(loads) == 2  # taken: loaded anew
    save_atomic({"format": FORMAT, "global_step": 2}, path)
    assert read_checkpoint(path)["global_step"] == 2 and len(loads) == 3  # rewritten: loaded anew


def test_a_resumed_start_loads_its_checkpoint_once(train_run, compose_cfg, tmp_path, monkeypatch):
    from rlrun.run import resume
    from rlrun.run.facade import Run, finished_result

    args = ["algo.num_steps=32", "eval.episodes=1", "eval.every_steps=0", "total_timesteps=64"]
    train_run(args, tmp_path)
    loads = []
    monkeypatch.setattr(resume, "load_checkpoint", lambda p: loads.append(p) or load_checkpoint(p))
    cfg = compose_cfg([*args[:-1], "total_timesteps=128"])
    assert finished_result(cfg, tmp_path) is None
    run = Run(cfg, tmp_path)
    run.close()
    assert loads == [tmp_path / "checkpoints" / "last.pt"]
