"""TiC-CLIP's transfer metrics from an eval matrix E[i][j]: the model after step i on the eval set of step j.

- in_domain: mean of the diagonal, E[i][i] (each model on the data of its own step);
- backward: mean below the diagonal, E[i][j] for j < i (how much of the past a model keeps);
- forward: mean above the diagonal, E[i][j] for j > i (how well it does on data still to come);
- final_average: mean of the last row (the final model on every step's data), the number to put
  beside compute when comparing methods, Oracle (which has only a final model) included.
Missing cells (None: a method without a checkpoint at that step) are left out of every mean; a
mean over no cells is None.
"""

from __future__ import annotations


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def transfer_metrics(E: list[list[float | None]]) -> dict:
    n = len(E)
    if any(len(row) != n for row in E):
        raise ValueError("the eval matrix must be square: one row per step, one column per step")
    return {
        "in_domain": _mean([E[i][i] for i in range(n)]),
        "backward": _mean([E[i][j] for i in range(n) for j in range(i)]),
        "forward": _mean([E[i][j] for i in range(n) for j in range(i + 1, n)]),
        "final_average": _mean(list(E[-1])) if n else None,
    }
