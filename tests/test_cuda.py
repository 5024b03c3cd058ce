"""The CUDA path (`device=cuda`): every algorithm trains with its networks, rollout storage and
replay on the GPU, a GPU checkpoint evaluates on the CPU with the same returns, and deterministic
runs on the GPU resume bit for bit. Skipped where CUDA is not available."""

import math

import pytest
import torch
from test_resume_exact import FAMILIES, assert_resumed_exactly

from rlrun.envs.factory import make_vec_env
from rlrun.export.rebuild import load_policy
from rlrun.run.checkpoint_files import load_checkpoint
from rlrun.run.eval_episodes import evaluate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")

CUDA = ["device=cuda", "torch_threads=1", "eval.episodes=2", "eval.num_envs=2"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_algorithm_trains_on_cuda(train_run, tmp_path, family):
    torch.cuda.reset_peak_memory_stats()
    result = train_run([*FAMILIES[family], *CUDA], tmp_path)
    assert torch.cuda.max_memory_allocated() > 0, "nothing was put on the GPU"
    assert math.isfinite(result.final_eval_return)
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")  # mapped to the CPU
    assert state["global_step"] == result.global_step
    for name, value in _tensors(state["modules"]):
        assert value.device.type == "cpu", name
        assert not value.is_floating_point() or torch.isfinite(value).all(), name


def _tensors(tree, path="modules"):
    if isinstance(tree, torch.Tensor):
        yield path, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{path}.{key}")
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            yield from _tensors(value, f"{path}[{index}]")


def _eval_returns(checkpoint, device: str):
    loaded = load_policy(checkpoint, torch.device(device))
    envs = make_vec_env(loaded.train_cfg.env, 2, training=False)
    envs.obs_normalizer = loaded.obs_normalizer(envs.single_observation_space)
    try:
        return evaluate(loaded.policy, envs, 4, 123, torch.device(device), True).returns
    finally:
        envs.close()


@pytest.mark.parametrize("family", ["ppo", "sac", "dqn"])
def test_cuda_checkpoint_evaluates_on_cpu_with_the_same_returns(train_run, tmp_path, family):
    train_run([*FAMILIES[family], *CUDA], tmp_path)
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    on_gpu, on_cpu = _eval_returns(checkpoint, "cuda"), _eval_returns(checkpoint, "cpu")
    assert on_cpu.tolist() == pytest.approx(on_gpu.tolist(), rel=1e-3)


@pytest.mark.parametrize("family", ["ppo", "sac", "dqn", "cem", "sarsa", "ppo_lm"])
def test_deterministic_cuda_run_resumes_bit_for_bit(tmp_path, family):
    assert_resumed_exactly([*FAMILIES[family], "device=cuda"], tmp_path)
