"""How much of its data a training step really used: unique samples and epochs over each bucket.

Every step draws a fixed budget of samples (C; Oracle T x C) whatever its data's size, so a bucket
that shrank (link rot, a small replay share) is silently repeated more often. The step's draws are
epoch-wise permutations (tic_train.data): the j-th draw from bucket b takes sample
perm_{b,e}[j mod L_b], L_b = min(limit_b, size_b) the samples the step may use from it. Hence,
exactly, a step that drew n_b samples from bucket b used

    unique_b = min(n_b, L_b) distinct samples, over epochs_b = n_b / L_b passes.

Repeating data is not free, but it is cheap up to a point: Muennighoff et al. 2023, "Scaling
Data-Constrained Language Models", find up to about 4 epochs of repeated data nearly as good as
new data, and the value of more repeats decays fast. Hence the default threshold WARN_EPOCHS.
"""

from __future__ import annotations

WARN_EPOCHS = 4.0  # Muennighoff et al. 2023: up to ~4 epochs of repeats are nearly as good as new data


def available(sizes: list[int], limits: list[int | None]) -> list[int]:
    """L_b of every bucket: its limit (the replay share) capped by its size, else its size."""
    return [size if lim is None else min(lim, size) for size, lim in zip(sizes, limits)]


def data_use(step: str, names: list[str], avail: list[int], sizes: list[int], draws: list[int],
             warn_epochs: float = WARN_EPOCHS) -> dict:
    """The step's record: unique samples and epochs per bucket drawn from, and the warning when a
    bucket is repeated more than `warn_epochs` times (None otherwise)."""
    buckets = {}
    for name, L, size, n in zip(names, avail, sizes, draws):
        n = int(n)
        if n <= 0:
            continue
        if L <= 0:
            raise ValueError(f"bucket {name}: {n} draws from no available sample")
        buckets[name] = {"draws": n, "available": int(L), "size": int(size), "unique": min(n, int(L)),
                         "epochs": round(n / L, 4)}
    max_epochs = max((b["epochs"] for b in buckets.values()), default=0.0)
    rec = {"unique": sum(b["unique"] for b in buckets.values()), "draws": sum(b["draws"] for b in buckets.values()),
           "buckets": buckets, "max_epochs": max_epochs, "warn_epochs": float(warn_epochs), "warning": None}
    rec["warning"] = warning(step, rec)
    return rec


def warning(step: str, rec: dict) -> str | None:
    """One line naming the step, its most repeated bucket, the epochs and what to do; None when no
    bucket is repeated more than the record's threshold."""
    limit = rec["warn_epochs"]
    over = sorted((b for b in rec["buckets"].items() if b[1]["epochs"] > limit), key=lambda b: -b[1]["epochs"])
    if not over:
        return None
    name, b = over[0]
    share = f", its replay share of {b['size']:,}" if b["available"] < b["size"] else ""
    more = f"; {len(over) - 1} more bucket(s) above it" if len(over) > 1 else ""
    return (f"step {step}: bucket {name} is repeated {b['epochs']:.1f} epochs ({b['draws']:,} draws over "
            f"{b['available']:,} available samples{share}), above warn_epochs {limit:g}{more}; lower --samples-per-step, "
            "add data, or raise --warn-epochs")


def format_data_use(rec: dict) -> str:
    """One line for the log: unique samples of the draws, and the most repeated bucket."""
    if not rec["buckets"]:
        return "no draws"
    name, b = max(rec["buckets"].items(), key=lambda kv: kv[1]["epochs"])
    return (f"{rec['unique']:,} unique samples in {rec['draws']:,} draws; max {rec['max_epochs']:.2f} epochs "
            f"(bucket {name}: {b['draws']:,} draws over {b['available']:,} available)")
