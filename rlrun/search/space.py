"""The search space: Hydra override syntax as Optuna distributions, as Hydra's Optuna sweeper
parses it, and a trial's parameters back as overrides.

- `choice(a, b, ...)` (and a shuffled range): categorical;
- `interval(a, b)`: uniform float (Hydra reads both ends as floats);
- `tag(log, interval(a, b))`: log-uniform float;
- `tag(int, interval(a, b))`, `tag(int, log, interval(a, b))`: the same over the ints from a to b
  (an addition of rlrun's: Hydra's Optuna sweeper has no integer interval);
- `range(a, b, step)`: ints (floats when any number is a float) from a to b, b included;
- a plain value: fixed for every trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
    ValueType,
)
from hydra.errors import OverrideParseException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from rlrun.config import ConfigError


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    """Searched keys and their distributions."""
    fixed: dict[str, str] = field(default_factory=dict)
    """Keys with one value for every trial -> their override line (`key=value`)."""

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's override lines: its parameters, then the fixed values, sorted by key."""
        lines = {key: f"{key}={value}" for key, value in params.items()}
        lines.update(self.fixed)
        return [lines[key] for key in sorted(lines)]


def _distribution(override: Override) -> BaseDistribution:
    if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
        raise ValueError("glob() picks config group options")
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if isinstance(value, RangeSweep):
        numbers = (value.start, value.stop, value.step)
        if any(isinstance(number, float) for number in numbers):
            return FloatDistribution(value.start, value.stop, step=value.step)
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step))
    assert isinstance(value, IntervalSweep)
    log = "log" in value.tags
    if "int" in value.tags:
        return IntDistribution(round(value.start), round(value.end), log=log)
    return FloatDistribution(value.start, value.end, log=log)


def parse_space(params: dict[str, str] | None, arguments: list[str]) -> SearchSpace:
    """The space of `hydra.sweeper.params` with the command line's `arguments` over it (a plain
    value fixes a key, a range replaces it).

    Raises:
        ConfigError: a value that is neither a plain value nor one of the forms above.
    """
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except OverrideParseException as error:
        raise ConfigError(f"a search range cannot be read: {error}") from None
    space = SearchSpace()
    for override in parsed:
        key = override.get_key_element()
        space.distributions.pop(key, None)
        space.fixed.pop(key, None)
        if not override.is_sweep_override():
            space.fixed[key] = f"{key}={override.get_value_element_as_str()}"
            continue
        try:
            space.distributions[key] = _distribution(override)
        except (AssertionError, ValueError) as error:
            raise ConfigError(
                f"{override.input_line}: not a search range ({error or 'unsupported sweep'}); use "
                "choice(a,b,...), interval(a,b), tag(log,interval(a,b)), tag(int,interval(a,b)) or "
                "range(a,b,step)"
            ) from None
    return space
