"""Behavioral cloning: supervised learning of an expert's actions (book ch. 13.1 and 13.3).

The policy π_θ(a|s) is the actor of `ActorCritic` (same torso and categorical/Gaussian head,
no critic), trained by minibatch gradient descent on the expert's (state, action) pairs:
- discrete actions: cross-entropy, -mean log π_θ(a|s), whose gradient is eq. 13.1;
- continuous actions: the Gaussian negative log-likelihood -mean log π_θ(a|s) with the learned
  state-independent std (`algo.loss=nll`), or the squared error of the mean,
  mean ||μ_θ(s) - a||² (`algo.loss=mse`, the regression loss of eq. 13.5).
A share `val_fraction` of the transitions is held out (train/val_loss, and for discrete actions
train/val_accuracy); observations are standardised with the dataset's mean and std inside the
policy (`algo.normalize_obs`), so the envs must not normalise them.

Data: `algo.expert_episodes` episodes of the expert (`algo.expert`, any rlrun checkpoint,
acting deterministically with its own observation normalisation) are recorded into the run
dir (`rlrun.data.demos`: Minari format when installed, else demos.npz), or an existing
dataset is read (`algo.dataset`: a .npz file, a Minari dataset dir, or the id of a dataset in
Minari's local storage, such as one `rlrun-eval ... eval.dataset=<id>` recorded).

global_step counts supervised samples: each gradient step adds its minibatch size, so an epoch
adds the size of the training split. Training runs `algo.epochs` epochs, or stops earlier once
`total_timesteps` samples were consumed. The policy, loss and epoch loop live in
`rlrun.algos._imitation`, which `rlrun.algos.dagger` shares.
"""

from __future__ import annotations

from rlrun.algos._imitation import (
    check_spaces,
    initial_demos,
    make_policy,
    setup,
    train_epochs,
)
from rlrun.algos.configs import BCConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.run.facade import Run, TrainResult


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    envs, expert, actor, optimizer, demos, progress = setup(cfg, run, expert_required=False)
    run.describe_budget(f"algo.epochs={cfg.algo.epochs} epochs over the demonstrations (steps count "
                        f"training samples, at most total_timesteps={cfg.total_timesteps:,})")
    global_step = run.restore()
    if len(demos) == 0:
        demos.extend(initial_demos(cfg, run, envs, expert))
        actor.fit_normalization(demos.obs)
    global_step = train_epochs(actor, optimizer, demos, cfg, run, progress, global_step)
    if progress["epochs"] >= cfg.algo.epochs and global_step < cfg.total_timesteps:
        run.logger.message(
            f"Trained algo.epochs={cfg.algo.epochs} epochs ({global_step:,} samples, before "
            f"total_timesteps={cfg.total_timesteps:,}); raise algo.epochs to train longer")
    return run.finish(actor, global_step)


SPEC = AlgoSpec(name="bc", config=BCConfig, train=train, make_policy=make_policy, policy_key="actor",
                check_spaces=check_spaces)
