"""What each continual method trains on at step t: per-bucket sampling weights and sample limits.

Buckets are the benchmark's steps in order, D_1..D_T, with |D_i| training samples each (from the
training shards' sizes.json). A step's data is a mixture: every sample it draws comes from bucket i
with probability `weights[i]`, and from bucket i only the first `limits[i]` samples of that
bucket's seeded order are ever used (the replay buffer's share; None = all of it). Each step draws
exactly its budget of samples, C (Oracle: T x C), whatever the data's size: small data repeats,
large data is subsampled.

At step t (1-based), with new data D_t and a replay buffer of B samples (default B = 2 x |D_t|, the
old data the paper's arithmetic implies; `buffer_factor` 1 gives |D_t|):

- sequential       warm start; D_t only.
- cumulative-all   warm start; uniform over the samples of D_1..D_t (weight of i is |D_i| / sum).
- cumulative-exp   warm start; D_t plus a buffer of B samples in which D_{t-1} holds half, D_{t-2}
                   a quarter, and so on, the oldest step taking what is left (so the shares of
                   t-1 old steps are 1/2, 1/4, ..., 1/2^(t-2), 1/2^(t-2)); uniform over D_t + buffer.
- cumulative-equal warm start; D_t plus a buffer of B samples split equally over D_1..D_{t-1}.
- restart          random init; uniform over D_1..D_t (cumulative-all's data, trained from scratch).
- oracle           random init, once, after the last step; uniform over D_1..D_T, budget T x C.
- lwf              warm start; cumulative-all's data (or sequential's, `lwf_data`) plus a
                   distillation loss to the previous step's model (see tic_train.losses).
- patching         warm start from the previous patched model; D_t only; then the weights are
                   interpolated with the previous patched model (see tic_train.loop).

A buffer share larger than its bucket is capped at the bucket's size and the rest is given to the
other old buckets in proportion to their shares (so the buffer keeps B samples while the old data
allows). Step 1 of every method is D_1 alone (there is nothing to replay).
"""

from __future__ import annotations

from dataclasses import dataclass

from tic_train.methods import METHODS, method as method_rules

__all__ = ["METHODS", "Mixture", "budget_of", "mixture"]


@dataclass(frozen=True)
class Mixture:
    """Sampling weights over buckets (sum to 1) and how many samples of each bucket may be used."""

    weights: tuple[float, ...]
    limits: tuple[int | None, ...]

    def expected_counts(self, budget: int) -> list[float]:
        return [w * budget for w in self.weights]


def _exp_shares(n_old: int) -> list[float]:
    """Buffer shares of old steps t-1, t-2, ..., 1 (newest first): 1/2, 1/4, ..., oldest gets the rest."""
    if n_old == 0:
        return []
    shares = [0.5**k for k in range(1, n_old)]
    shares.append(1.0 - sum(shares))
    return shares


def _fill_buffer(shares: list[float], sizes: list[int], buffer: int) -> list[int]:
    """Integer samples per old bucket for a buffer of `buffer` samples, shares capped by size."""
    alloc = [0.0] * len(shares)
    open_ = [i for i in range(len(shares)) if shares[i] > 0]
    remaining = float(min(buffer, sum(sizes)))
    while open_ and remaining > 1e-9:
        total = sum(shares[i] for i in open_)
        capped = []
        for i in open_:
            give = remaining * shares[i] / total
            if alloc[i] + give >= sizes[i]:
                capped.append(i)
        if not capped:
            for i in open_:
                alloc[i] += remaining * shares[i] / total
            remaining = 0.0
            break
        for i in capped:
            remaining -= sizes[i] - alloc[i]
            alloc[i] = float(sizes[i])
        open_ = [i for i in open_ if i not in capped]
    # integers that sum to round(sum(alloc)): largest remainders
    floors = [int(a) for a in alloc]
    short = round(sum(alloc)) - sum(floors)
    for i in sorted(range(len(alloc)), key=lambda i: (-(alloc[i] - floors[i]), i))[:short]:
        floors[i] += 1
    return floors


def mixture(method: str, step: int, sizes: list[int], buffer: int | None = None, lwf_data: str = "sequential",
            buffer_factor: float = 2.0) -> Mixture:
    """The data of `method` at `step` (0-based index into the buckets) given each bucket's size; the
    replay buffer of -exp/-equal holds `buffer` samples, by default buffer_factor x |D_t|."""
    rules = method_rules(method)
    if not 0 <= step < len(sizes):
        raise ValueError(f"step {step} outside the {len(sizes)} buckets")
    T = len(sizes)
    zero = [0.0] * T
    rule = rules.data_rule(lwf_data)
    if rules.once_at_end:
        step = T - 1
    if rule == "sequential" or step == 0:
        w = list(zero)
        w[step] = 1.0
        return Mixture(tuple(w), tuple([None] * T))
    if rule == "cumulative-all":
        total = sum(sizes[: step + 1])
        w = [sizes[i] / total if i <= step else 0.0 for i in range(T)]
        return Mixture(tuple(w), tuple([None] * T))
    B = round(buffer_factor * sizes[step]) if buffer is None else buffer
    old = list(range(step))
    if rule == "cumulative-exp":
        newest_first = _exp_shares(step)
        shares = [newest_first[step - 1 - i] for i in old]
    elif rule == "cumulative-equal":
        shares = [1.0 / step] * step
    else:
        raise ValueError(f"no mixture for {rule!r}")
    counts = _fill_buffer(shares, [sizes[i] for i in old], B)
    pool = sizes[step] + sum(counts)
    w = list(zero)
    w[step] = sizes[step] / pool
    limits: list[int | None] = [None] * T
    for i, n in zip(old, counts):
        w[i] = n / pool
        limits[i] = n
    return Mixture(tuple(w), tuple(limits))


def budget_of(method: str, samples_per_step: int, steps: int) -> int:
    """Samples seen by one training run of the method at a step: C, or T x C for Oracle."""
    return method_rules(method).budget(samples_per_step, steps)
