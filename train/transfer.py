"""TiC-CLIP's transfer metrics from an eval matrix E[i][j]: the model after step i on the eval set of step j.

- in_domain: mean of the diagonal, E[i][i] (each model on the data of its own step);
- backward: mean below the diagonal, E[i][j] for j < i (how much of the past a model keeps);
- forward: mean above the diagonal, E[i][j] for j > i (how well it does on data still to come);
- final_average: mean of the last row (the final model on every step's data), the number to put
  beside compute when comparing methods, Oracle (which has only a final model) included.
Missing cells (None: a method without a checkpoint at that step) are left out of every mean; a
mean over no cells is None.

With one column per calendar year instead of per step (ml-tic-clip's eval sets), column c belongs to
the step holding its year, `column_step[c]`: in-domain is then E[i][c] over the columns of step i,
backward those of earlier steps, forward those of later ones.
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


def transfer_metrics_by_column(E: list[list[float | None]], column_step: list[int]) -> dict:
    """The same metrics for a matrix whose columns are finer than its steps (see the docstring)."""
    if any(len(row) != len(column_step) for row in E):
        raise ValueError("every row of the eval matrix needs one cell per column")
    cells = [(i, column_step[c], v) for i, row in enumerate(E) for c, v in enumerate(row)]
    return {
        "in_domain": _mean([v for i, s, v in cells if s == i]),
        "backward": _mean([v for i, s, v in cells if s < i]),
        "forward": _mean([v for i, s, v in cells if s > i]),
        "final_average": _mean(list(E[-1])) if E else None,
    }


def in_domain_by_step(E: list[list[float | None]], column_step: list[int] | None = None) -> list[float | None]:
    """Each step's in-domain score: E[i][i], or the mean over step i's columns."""
    if column_step is None:
        return [row[i] for i, row in enumerate(E)]
    return [_mean([v for c, v in enumerate(row) if column_step[c] == i]) for i, row in enumerate(E)]
