"""The thread governor (`torch_threads=auto`) on a simulated clock, and its config and run wiring."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import read_metrics

from rlrun.config import ConfigError
from rlrun.run.threads import FixedThreads, ThreadGovernor, thread_control


class SimulatedTraining:
    """Drives a governor: each iteration is `steps` env steps taking `cost(threads)` seconds per step."""

    def __init__(self, cost, steps_per_iteration: int = 10) -> None:
        self.now = 0.0
        self.step = 0
        self.cost = cost
        self.steps_per_iteration = steps_per_iteration
        self.set_calls: list[int] = []
        self.governor = ThreadGovernor(
            2, window_s=1.0, clock=lambda: self.now, set_threads=self.set_calls.append
        )

    def iterate(self, n: int) -> list[int]:
        """Run n iterations; returns the thread count used in each."""
        used = []
        for _ in range(n):
            threads = self.governor.threads
            used.append(threads)
            self.now += self.steps_per_iteration * self.cost(threads)
            self.step += self.steps_per_iteration
            self.governor.observe(self.step)
        return used


def test_switches_to_more_threads_when_they_are_faster_and_keeps_them():
    sim = SimulatedTraining(lambda threads: 0.010 if threads == 1 else 0.007)
    used = sim.iterate(2000)
    assert sim.governor.chosen == 2
    assert used[-1000:].count(2) > 0.95 * 1000  # re-comparisons cost a little one-thread time
    assert sim.set_calls[0] == 1  # starts on one thread


def test_stays_on_one_thread_when_more_do_not_help_and_compares_less_often():
    sim = SimulatedTraining(lambda threads: 0.010 if threads == 1 else 0.0099)  # within the margin
    sim.iterate(500)
    early = sim.governor.comparisons
    used = sim.iterate(5000)
    assert sim.governor.chosen == 1
    assert used.count(1) > 0.97 * len(used)
    # the hold doubles after each confirmation: far fewer comparisons later than a fixed hold would give
    windows = 5000 * 10 * 0.010 / sim.governor.window_s
    assert sim.governor.comparisons - early < windows / sim.governor.min_hold / 4


def test_updates_starting_after_a_cheap_warm_up_get_the_faster_count_soon():
    sim = SimulatedTraining(lambda threads: 0.0005)  # random warm-up steps: no torch work
    sim.iterate(2000)  # 10 s of warm-up, in which comparisons find no difference
    assert sim.governor.chosen == 1
    sim.cost = lambda threads: 0.010 if threads == 1 else 0.007  # updates begin
    used = sim.iterate(1000)  # 100 iterations of 0.1 s at one thread
    assert sim.governor.chosen == 2
    assert used[:150].count(2) > 0  # within 15 windows of the change, not after a doubled hold


def test_contention_sends_it_back_to_one_thread_at_once():
    busy = {"other_process": False}

    def cost(threads):
        if threads == 1:
            return 0.010
        return 0.040 if busy["other_process"] else 0.007

    sim = SimulatedTraining(cost)
    sim.iterate(1000)
    assert sim.governor.chosen == 2
    while sim.governor.threads != 2:  # a re-comparison may be timing one thread just now
        sim.iterate(1)
    busy["other_process"] = True
    used = sim.iterate(60)  # 60 iterations at 2 threads would be 24 s; one window is 1 s
    assert sim.governor.threads == 1
    assert used.count(2) <= 4  # the slowed window and nothing more
    more = sim.iterate(3000)
    assert more.count(2) < 0.02 * len(more)  # aborted comparisons: one short window each


@pytest.mark.parametrize("slowdown", [1.3, 5.0])
def test_a_comparison_with_a_slower_other_count_stops_after_one_window(slowdown):
    sim = SimulatedTraining(lambda threads: 0.010 if threads == 1 else 0.010 * slowdown)
    used = sim.iterate(40)  # windows of 100 one-thread steps: 2 windows, then one comparison window
    assert sim.governor.comparisons == 1
    assert sim.governor.threads == 1 and sim.governor.chosen == 1
    assert used.count(2) == math.ceil(1.0 / (10 * 0.010 * slowdown))  # iterations filling one window


def test_excluded_time_does_not_count():
    sim = SimulatedTraining(lambda threads: 0.010 if threads == 1 else 0.007)
    governor = sim.governor
    governor.observe(0)
    sim.now += 0.5
    with governor.excluded():
        sim.now += 100.0  # an evaluation
    governor.observe(50)
    assert governor.comparisons == 0 and governor._window_step == 0  # the window is still open
    sim.now += 0.6
    governor.observe(110)
    assert governor._window_step == 110


def test_thread_control_fixed_and_auto(monkeypatch):
    before = torch.get_num_threads()
    try:
        fixed = thread_control(3)
        assert isinstance(fixed, FixedThreads) and fixed.threads == 3 and torch.get_num_threads() == 3
        monkeypatch.setattr("rlrun.run.threads.usable_cores", lambda: 1)
        assert isinstance(thread_control("auto"), FixedThreads)
        monkeypatch.setattr("rlrun.run.threads.usable_cores", lambda: 64)
        governor = thread_control("auto")
        assert isinstance(governor, ThreadGovernor) and governor.counts == (1, 4)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_bad_torch_threads_is_refused(compose_cfg, value):
    with pytest.raises(ConfigError, match="torch_threads"):
        compose_cfg([f"torch_threads={value}"])


def test_auto_with_deterministic_is_refused(compose_cfg):
    with pytest.raises(ConfigError, match="deterministic=true needs a fixed thread count"):
        compose_cfg(["torch_threads=auto", "deterministic=true"])


def test_auto_run_logs_its_thread_count(train_run, tmp_path, monkeypatch):
    monkeypatch.setattr("rlrun.run.threads.usable_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        train_run(["algo=sac", "env=Pendulum-v1", "total_timesteps=600", "algo.learning_starts=200",
                   "algo.batch_size=32", "network.hidden_sizes=[32,32]", "torch_threads=auto",
                   "eval.every_steps=0", "eval.episodes=1", "algo.log_every=100"], tmp_path)
    finally:
        torch.set_num_threads(before)
    records = read_metrics(tmp_path)
    threads = {r["time/torch_threads"] for r in records if "time/torch_threads" in r}
    assert threads and threads <= {1.0, 2.0}
