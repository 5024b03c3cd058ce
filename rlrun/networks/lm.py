"""Causal language models for the language task env=lm (book ch. 15).

A causal torso maps tokens [B, T] to hidden states [B, T, W]; two heads sit on it:
- `TokenPolicy`: the LM head, next-token logits at every position. As an RL policy
  (book eq. 15.1) the state s_t is the prompt plus the tokens emitted so far and the action
  is the next token; sampling divides the logits by a temperature (book 15.2.9).
- `TokenScorer`: a scalar per position. On the last position of prompt + response it is the
  reward model r̂(x, y) (eqs. 15.2-15.3, 15.2.3); on every response position it is the value
  function V(s_t) (eq. 15.6 of 15.2.4).

Torsos: `TransformerTorso` (network=lm: token and position embeddings, pre-norm blocks with
causal self-attention through `scaled_dot_product_attention`, a final LayerNorm) or a local
Hugging Face causal LM (network=hf_lm, `network.path`; loaded with local_files_only, so
nothing downloads). Neither uses dropout (book 15.2.9).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rlrun.config import ConfigError, HFNetworkConfig, LMNetworkConfig
from rlrun.extras import missing


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)) (4x wide, GELU)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, T, head width]
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.mlp_norm(x))


class TransformerTorso(nn.Module):
    """Tokens [B, T] -> hidden states [B, T, width] of a small GPT-style causal transformer."""

    def __init__(self, vocab_size: int, context_length: int, layers: int, width: int, heads: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Embedding(context_length, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        for module in self.modules():  # GPT-2 init: N(0, 0.02) weights, zero biases
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class HFTorso(nn.Module):
    """The base model (no LM head) of a Hugging Face causal LM: tokens -> last hidden states."""

    def __init__(self, model: nn.Module, vocab_size: int, context_length: int, width: int) -> None:
        super().__init__()
        self.model = model
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.width = width

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=tokens, use_cache=False).last_hidden_state


class TokenPolicy(nn.Module):
    """π(w_t | w_<t) over the task's `vocab_size` tokens: a causal torso and an LM head.

    A pretrained head with a larger vocabulary is cut to the task's tokens. `act` samples at
    `temperature`.
    """

    def __init__(self, torso: nn.Module, head: nn.Module, vocab_size: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.torso = torso
        self.head = head
        self.vocab_size = vocab_size
        self.temperature = temperature

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits [B, T, vocab_size] at every position (not temperature-scaled)."""
        return self.head(self.torso(tokens))[..., : self.vocab_size]

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """The next token [B] after each token sequence in `obs` [B, T]: argmax or a tempered sample."""
        logits = self(obs)[:, -1]
        if deterministic:
            return logits.argmax(-1)
        return torch.multinomial(F.softmax(logits / self.temperature, -1), 1).squeeze(-1)


class TokenScorer(nn.Module):
    """A causal torso and a scalar head: V(s_t) per position, r̂(x, y) on the last one."""

    def __init__(self, torso: nn.Module) -> None:
        super().__init__()
        self.torso = torso
        self.head = nn.Linear(torso.width, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """One scalar per position, [B, T]."""
        return self.head(self.torso(tokens)).squeeze(-1)

    def score(self, tokens: torch.Tensor) -> torch.Tensor:
        """The scalar of the last position, [B]: the reward model's r̂(x, y) of eq. 15.3."""
        return self.head(self.torso(tokens)[:, -1]).squeeze(-1)


def _load_hf(cfg: HFNetworkConfig, vocab_size: int, context_length: int) -> tuple[HFTorso, nn.Module]:
    """Torso and LM head of the local causal LM at `cfg.path` (no download, no dropout)."""
    try:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise missing("transformers", "network=hf_lm") from None
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg.path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"network.path={cfg.path} is not a local Hugging Face causal LM directory "
            f"({str(error).splitlines()[0]}); write one with save_pretrained"
        ) from None
    config = model.config
    if config.vocab_size < vocab_size:
        raise ConfigError(
            f"network.path={cfg.path} has a vocabulary of {config.vocab_size} tokens, the task needs "
            f"{vocab_size}; lower env.kwargs.vocab_size"
        )
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions is not None and positions < context_length:
        raise ConfigError(
            f"network.path={cfg.path} takes {positions} positions, the task needs {context_length} "
            "(prompt_length + response_length); shorten them in env.kwargs"
        )
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    torso = HFTorso(model.base_model, config.vocab_size, context_length, config.hidden_size)
    return torso, model.get_output_embeddings()


def make_token_policy(
    cfg: LMNetworkConfig | HFNetworkConfig, vocab_size: int, context_length: int, temperature: float = 1.0
) -> TokenPolicy:
    """The policy network chosen by `network` (lm or hf_lm) for this vocabulary and context."""
    if cfg.name == "hf_lm":
        torso, head = _load_hf(cfg, vocab_size, context_length)
        return TokenPolicy(torso, head, vocab_size, temperature)
    torso = TransformerTorso(vocab_size, context_length, cfg.layers, cfg.width, cfg.heads)
    head = nn.Linear(cfg.width, vocab_size, bias=False)
    nn.init.normal_(head.weight, std=0.02)
    return TokenPolicy(torso, head, vocab_size, temperature)


def make_token_scorer(cfg: LMNetworkConfig | HFNetworkConfig, vocab_size: int, context_length: int) -> TokenScorer:
    """A reward model or value network with the torso chosen by `network` (lm or hf_lm)."""
    if cfg.name == "hf_lm":
        return TokenScorer(_load_hf(cfg, vocab_size, context_length)[0])
    return TokenScorer(TransformerTorso(vocab_size, context_length, cfg.layers, cfg.width, cfg.heads))


@torch.no_grad()
def generate(
    policy: TokenPolicy,
    prompts: torch.Tensor,
    length: int,
    temperature: float,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Responses [B, length] continuing `prompts` [B, n]: argmax tokens, or samples of softmax(logits / T).

    Recomputes the whole prefix at each step (no key/value cache): contexts here are tens of tokens.
    """
    tokens = prompts
    for _ in range(length):
        logits = policy(tokens)[:, -1]
        if greedy:
            next_tokens = logits.argmax(-1, keepdim=True)
        else:
            next_tokens = torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator)
        tokens = torch.cat([tokens, next_tokens], 1)
    return tokens[:, prompts.shape[1] :]


def response_logits(policy: TokenPolicy, tokens: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """Logits [B, m, vocab] of the m response tokens of `tokens` [B, n + m], each given its prefix."""
    return policy(tokens[:, :-1])[:, prompt_length - 1 :]
