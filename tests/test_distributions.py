import torch
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Normal, kl_divergence

from rlrun.ops.distributions import Categorical, DiagGaussian


def test_categorical_matches_torch():
    logits = torch.randn(5, 3)
    actions = torch.tensor([0, 2, 1, 1, 0])
    ours, ref = Categorical(logits), TorchCategorical(logits=logits)
    torch.testing.assert_close(ours.log_prob(actions), ref.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    other = torch.randn(5, 3)
    torch.testing.assert_close(ours.kl(Categorical(other)), kl_divergence(ref, TorchCategorical(logits=other)))
    assert torch.equal(ours.mode(), logits.argmax(-1))


def test_categorical_samples_follow_probabilities():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.6, 0.3])
    samples = Categorical(probs.log().expand(20000, 3)).sample()
    freq = torch.bincount(samples, minlength=3).float() / 20000
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_gaussian_matches_torch():
    mean, log_std = torch.randn(4, 2), torch.randn(1, 2)
    actions = torch.randn(4, 2)
    ours = DiagGaussian(mean, log_std)
    ref = Normal(mean, log_std.exp().expand_as(mean))
    torch.testing.assert_close(ours.log_prob(actions), ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(ours.entropy(), ref.entropy().sum(-1))
    other_mean, other_log_std = torch.randn(4, 2), torch.randn(1, 2)
    other = Normal(other_mean, other_log_std.exp().expand_as(other_mean))
    torch.testing.assert_close(
        ours.kl(DiagGaussian(other_mean, other_log_std)), kl_divergence(ref, other).sum(-1)
    )


def test_sample_and_log_prob_agree_with_log_prob():
    for dist in (Categorical(torch.randn(6, 4)), DiagGaussian(torch.randn(6, 3), torch.randn(1, 3))):
        actions, logprobs = dist.sample_and_log_prob()
        torch.testing.assert_close(logprobs, dist.log_prob(actions))
