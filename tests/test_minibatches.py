"""The minibatch epochs of the PPO family and the LM pipeline (`rlrun.training.minibatches`): the
order of the minibatches, the KL early stop, per-minibatch advantage standardisation, and the
older per-epoch-loss form kept for algorithms in other packages."""

from __future__ import annotations

import torch
from torch import nn

from rlrun.config import OptimizerConfig
from rlrun.data.batch import Batch
from rlrun.ops.returns import standardize
from rlrun.training.minibatches import MinibatchSteps, minibatch_steps, shuffled_minibatches
from rlrun.training.optim import make_optimizer


def _model_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    return model, make_optimizer(model.parameters(), OptimizerConfig(name="sgd", lr=0.1))


def _loss(model: nn.Module, rows: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return model(inputs[rows]).square().mean()


def test_each_epoch_is_a_fresh_order_cut_into_whole_minibatches():
    _model, optimizer = _model_and_optimizer()
    steps = MinibatchSteps([optimizer], num_epochs=2, num_minibatches=3, max_grad_norm=0.0,
                           target_kl=None)
    torch.manual_seed(1)
    seen = [(order, rows) for order in steps.orders(10, torch.device("cpu"))
            for rows in steps.slices(10)]
    torch.manual_seed(1)
    expected_orders = [torch.randperm(10), torch.randperm(10)]
    # 10 rows in minibatches of 10 // 3 = 3: the last row of each order is left out
    assert [rows for _, rows in seen] == [slice(0, 3), slice(3, 6), slice(6, 9)] * 2
    for (order, _), expected in zip(seen, [o for o in expected_orders for _ in range(3)], strict=True):
        assert torch.equal(order, expected)


def test_the_minibatch_past_target_kl_ends_the_update_unstepped_and_draws_no_more_orders():
    inputs = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    kls = iter([0.0, 0.05, 0.2, 0.0])  # the third minibatch (the last of the first epoch) stops
    model, optimizer = _model_and_optimizer()
    steps = MinibatchSteps([optimizer], num_epochs=3, num_minibatches=3, max_grad_norm=0.0,
                           target_kl=0.1)
    torch.manual_seed(2)
    before_stop = None
    for order in steps.orders(6, torch.device("cpu")):
        for rows in steps.slices(6):
            stats = {"approx_kl": torch.tensor(next(kls))}
            if stats["approx_kl"] > 0.1:
                before_stop = [p.detach().clone() for p in model.parameters()]
            steps.step(_loss(model, order[rows], inputs), stats)
    rng_after = torch.get_rng_state()
    assert steps.early_stop and steps.updates == 2 and len(steps.stats) == 3
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before_stop, strict=True))
    torch.manual_seed(2)
    torch.randperm(6)  # the one order drawn: none for the second epoch after the stop
    assert torch.equal(rng_after, torch.get_rng_state())


def test_shuffled_minibatches_are_rows_of_the_order_with_advantages_standardised_per_minibatch():
    rows = 8
    batch = Batch(obs=torch.arange(rows, dtype=torch.float32)[:, None], actions=torch.zeros(rows),
                  logprobs=torch.zeros(rows), values=torch.zeros(rows),
                  advantages=torch.tensor([1.0, 5.0, -2.0, 0.5, 3.0, 3.5, -1.0, 8.0]),
                  returns=torch.zeros(rows))
    _, optimizer = _model_and_optimizer()
    steps = MinibatchSteps([optimizer], num_epochs=2, num_minibatches=2, max_grad_norm=0.0,
                           target_kl=None)
    minibatches = list(shuffled_minibatches(batch, steps, norm_adv=True))
    assert len(minibatches) == 4
    for mb in minibatches:
        taken = mb.obs[:, 0].long()  # obs hold the row numbers
        assert len(set(taken.tolist())) == 4
        torch.testing.assert_close(mb.advantages, standardize(batch.advantages[taken]))
    raw = list(shuffled_minibatches(batch, steps, norm_adv=False))
    assert all(torch.equal(mb.advantages, batch.advantages[mb.obs[:, 0].long()]) for mb in raw)


def test_the_per_epoch_loss_form_steps_as_the_loop_and_adds_extra_loss_only_to_stepped_ones():
    inputs = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    settings = {"num_epochs": 2, "num_minibatches": 2, "max_grad_norm": 0.5, "target_kl": 0.1}
    kl_values = [0.0, 0.0, 0.0, 0.3]  # the fourth minibatch stops

    model, optimizer = _model_and_optimizer()
    steps = MinibatchSteps([optimizer], **settings)
    torch.manual_seed(3)
    kls = iter(kl_values)
    for order in steps.orders(8, torch.device("cpu")):
        for rows in steps.slices(8):
            stats = {"approx_kl": torch.tensor(next(kls))}
            loss = _loss(model, order[rows], inputs)
            if not steps.exceeds_target_kl(stats):
                loss = loss + 0.5 * model.weight.square().sum()
            steps.step(loss, stats)
    expected = [p.detach().clone() for p in model.parameters()]

    model, optimizer = _model_and_optimizer()
    algo = type("Settings", (), settings)
    kls, extra_calls = iter(kl_values), []

    def extra_loss(stats):
        extra_calls.append(stats)
        return 0.5 * model.weight.square().sum()

    torch.manual_seed(3)
    done = minibatch_steps([optimizer], 8, algo,
                           lambda order: lambda rows: (_loss(model, order[rows], inputs),
                                                       {"approx_kl": torch.tensor(next(kls))}),
                           torch.device("cpu"), extra_loss)
    assert done.early_stop and done.updates == 3 and len(extra_calls) == 3
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), expected, strict=True))
    assert not torch.equal(expected[0], _model_and_optimizer()[0].weight.detach())
