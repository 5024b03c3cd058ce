"""The synthetic language task env=lm, made in-process (no files, no downloads).

A seeded source over `vocab_size` content tokens plays the text corpus of book ch. 15.1:
- `markov`: a random sparse bigram chain; each token has `branching` likely successors;
- `arith`: x_{t+1} = (x_t + s) mod V with a step s in {1, 2, 3} drawn per sequence;
in both, each token is uniform instead with probability `noise`. One extra token, the
separator SEP = vocab_size, closes every prompt, so the model vocabulary has vocab_size + 1
tokens. With n = prompt_length and m = response_length:
- pretraining text (stage 1): source sequences of n + m tokens, no SEP;
- demonstrations (stage 2, SFT): n - 1 source tokens, SEP, then the m tokens that continue the
  source: supervised fine-tuning teaches the prompt -> response format;
- prompts x (stages 3-4): n - 1 source tokens and SEP; a response y has m tokens.
The synthetic annotator prefers the response with more of a checkable property (book 14.2,
15.2.2), `preference`:
- `target`: the fraction of response tokens equal to `target_token`;
- `sorted`: the fraction of neighbouring response tokens in non-decreasing order.
`true_reward(y)` is that property in [0, 1]; it labels the preference pairs and measures
the trained policies (eval/return_mean), while RL itself sees only the learnt reward model.

The parameters come from `env.kwargs` (conf/env/lm.yaml), read by `LMTaskConfig.from_kwargs`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from rlrun.config import ConfigError, check


@dataclass(frozen=True)
class LMTaskConfig:
    vocab_size: int = 8
    """Content tokens (count); the model vocabulary adds one separator token."""
    prompt_length: int = 8
    """Prompt tokens n, the closing separator included (count)."""
    response_length: int = 8
    """Response tokens m generated per prompt (count)."""
    corpus: str = "markov"
    """Source of text and prompts: markov (sparse random bigram chain) or arith (x + s mod V)."""
    preference: str = "target"
    """The annotator's property of a response: target (share of target_token) or sorted."""
    target_token: int = 0
    """The token that preference=target counts (token id < vocab_size)."""
    branching: int = 3
    """Likely successors of each token in the markov chain (count)."""
    noise: float = 0.05
    """Probability that a source token is uniform instead of following the source's rule."""
    seed: int = 0
    """Seed of the language itself (the chain) and of the held-out prompts, not of training."""

    def __post_init__(self) -> None:
        check(self.vocab_size >= 2, f"env.kwargs.vocab_size={self.vocab_size} must be >= 2")
        check(self.prompt_length >= 2, f"env.kwargs.prompt_length={self.prompt_length} must be >= 2")
        check(self.response_length >= 2, f"env.kwargs.response_length={self.response_length} must be >= 2")
        check(self.corpus in ("markov", "arith"), f"env.kwargs.corpus={self.corpus!r} must be markov or arith")
        check(
            self.preference in ("target", "sorted"),
            f"env.kwargs.preference={self.preference!r} must be target or sorted",
        )
        check(
            0 <= self.target_token < self.vocab_size,
            f"env.kwargs.target_token={self.target_token} must be in [0, vocab_size={self.vocab_size})",
        )
        check(
            1 <= self.branching <= self.vocab_size,
            f"env.kwargs.branching={self.branching} must be in [1, vocab_size={self.vocab_size}]",
        )
        check(0.0 <= self.noise <= 1.0, f"env.kwargs.noise={self.noise} must be in [0, 1]")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> LMTaskConfig:
        """The task of `env.kwargs`; unknown keys and wrong types are refused with ConfigError."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ConfigError(f"env.kwargs.{unknown[0]} is not a parameter of env=lm; known: {', '.join(known)}")
        values = {}
        for name, value in kwargs.items():
            kind = float if known[name] == "float" else int if known[name] == "int" else str
            if not isinstance(value, (int, float) if kind is float else kind) or isinstance(value, bool):
                noun = {int: "an integer", float: "a number", str: "a string"}[kind]
                raise ConfigError(f"env.kwargs.{name}={value!r} must be {noun}")
            values[name] = kind(value)
        return cls(**values)


class LMTask:
    """Text, demonstrations, prompts and the true preference of one synthetic language."""

    def __init__(self, cfg: LMTaskConfig) -> None:
        self.cfg = cfg
        self.sep = cfg.vocab_size
        self.vocab_size = cfg.vocab_size + 1
        self.prompt_length = cfg.prompt_length
        self.response_length = cfg.response_length
        self.context_length = cfg.prompt_length + cfg.response_length
        rng = np.random.default_rng(cfg.seed)
        chain = np.zeros((cfg.vocab_size, cfg.vocab_size))
        for token in range(cfg.vocab_size):
            successors = rng.choice(cfg.vocab_size, cfg.branching, replace=False)
            chain[token, successors] = rng.dirichlet(np.ones(cfg.branching))
        self.transitions = torch.tensor((1 - cfg.noise) * chain + cfg.noise / cfg.vocab_size, dtype=torch.float32)
        """Markov transition matrix P[w_t, w_{t+1}] (rows sum to 1)."""

    def text(self, batch: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Source sequences [batch, length] (CPU, int64)."""
        vocab = self.cfg.vocab_size
        tokens = torch.empty(batch, length, dtype=torch.long)
        tokens[:, 0] = torch.randint(vocab, (batch,), generator=generator)
        if self.cfg.corpus == "markov":
            for t in range(1, length):
                tokens[:, t] = torch.multinomial(self.transitions[tokens[:, t - 1]], 1, generator=generator)[:, 0]
            return tokens
        steps = torch.randint(1, 4, (batch, 1), generator=generator)
        tokens = (tokens[:, :1] + steps * torch.arange(length)) % vocab
        noisy = torch.rand(batch, length, generator=generator) < self.cfg.noise
        return torch.where(noisy, torch.randint(vocab, (batch, length), generator=generator), tokens)

    def demonstrations(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Prompt and demonstrated response [batch, n + m]: n - 1 source tokens, SEP, the continuation."""
        source = self.text(batch, self.context_length - 1, generator)
        n = self.prompt_length
        separator = torch.full((batch, 1), self.sep, dtype=torch.long)
        return torch.cat([source[:, : n - 1], separator, source[:, n - 1 :]], 1)

    def prompts(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Prompts x [batch, n]: n - 1 source tokens and SEP."""
        source = self.text(batch, self.prompt_length - 1, generator)
        return torch.cat([source, torch.full((batch, 1), self.sep, dtype=torch.long)], 1)

    def random_responses(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Responses [batch, m] of i.i.d. tokens from a random skewed unigram distribution per row.

        They spread the preference data over the whole range of the property (a trained
        model alone rarely shows its extremes).
        """
        logits = 2.0 * torch.randn(batch, self.cfg.vocab_size, generator=generator)
        return torch.multinomial(logits.softmax(-1), self.response_length, replacement=True, generator=generator)

    def true_reward(self, responses: torch.Tensor) -> torch.Tensor:
        """The annotator's property of each response [B, m] -> [B] in [0, 1]."""
        if self.cfg.preference == "target":
            return (responses == self.cfg.target_token).float().mean(1)
        return (responses[:, 1:] >= responses[:, :-1]).float().mean(1)

    def render(self, tokens: torch.Tensor) -> str:
        """One token sequence as text: letters a, b, ... for up to 26 content tokens, `|` for SEP."""
        letters = self.cfg.vocab_size <= 26
        words = ["|" if t == self.sep else chr(ord("a") + t) if letters else str(t) for t in tokens.tolist()]
        return ("" if letters else " ").join(words)
