"""The continual methods and their rules, in one table: how a step starts, what it trains on, what
it does besides plain CLIP training. The trainer (tic_train.loop) asks this table; the data of each
rule is tic_train.mixture's.

| method           | init at step t > 1 | steps run            | data (tic_train.mixture)  | extra                     |
|------------------|--------------------|----------------------|---------------------------|---------------------------|
| sequential       | warm start         | every step           | sequential (D_t)          |                           |
| cumulative-all   | warm start         | every step           | cumulative-all            |                           |
| cumulative-exp   | warm start         | every step           | cumulative-exp            |                           |
| cumulative-equal | warm start         | every step           | cumulative-equal          |                           |
| restart          | random init        | every step           | cumulative-all            |                           |
| oracle           | random init        | once, after the last | cumulative-all, T x C     |                           |
| lwf              | warm start         | every step           | sequential (lwf_data)     | distillation to step t-1  |
| patching         | warm start         | every step           | sequential (D_t)          | interpolate with step t-1 |

A warm start loads the previous step's weights only (fresh optimizer, new cosine schedule, warmup_later).
"""

from __future__ import annotations

from dataclasses import dataclass

# the mixtures tic_train.mixture knows how to build
DATA_RULES = ("sequential", "cumulative-all", "cumulative-exp", "cumulative-equal")


@dataclass(frozen=True)
class Method:
    name: str
    data: str  # the data rule (DATA_RULES); LwF's is the config's lwf_data
    warm_start: bool = True  # step t > 1 starts from step t-1's checkpoint; else random init every step
    once_at_end: bool = False  # Oracle: one run, after the last step, on all data with budget T x C
    teacher: bool = False  # LwF: a distillation loss to step t-1's model
    patching: bool = False  # Patching: after training, interpolate the weights with step t-1's

    @property
    def restart(self) -> bool:
        """Random init at every step it trains."""
        return not self.warm_start

    def data_rule(self, lwf_data: str) -> str:
        return lwf_data if self.teacher else self.data

    def budget(self, samples_per_step: int, steps: int) -> int:
        """Samples one training run draws: C, or T x C for a run once after the last step."""
        return samples_per_step * steps if self.once_at_end else samples_per_step

    def steps_to_train(self, steps: int) -> list[int]:
        """The step indexes (0-based) at which the method trains a model."""
        return [steps - 1] if self.once_at_end else list(range(steps))


_TABLE = (
    Method("sequential", "sequential"),
    Method("cumulative-all", "cumulative-all"),
    Method("cumulative-exp", "cumulative-exp"),
    Method("cumulative-equal", "cumulative-equal"),
    Method("restart", "cumulative-all", warm_start=False),
    Method("oracle", "cumulative-all", warm_start=False, once_at_end=True),
    Method("lwf", "cumulative-all", teacher=True),
    Method("patching", "sequential", patching=True),
)
METHODS = tuple(m.name for m in _TABLE)
_BY_NAME = {m.name: m for m in _TABLE}


def method(name: str) -> Method:
    """The rules of a method; ValueError naming the choices for an unknown one."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
