"""The data each continual method trains on: its mixture over buckets, drawn in the proportions it
defines, exactly the budget per step, and resumable at any draw."""

from __future__ import annotations

import numpy as np
import pytest

from tic_train.mixture import METHODS, budget_of, mixture
from tic_train.sampling import bucket_choices

SIZES = [4000, 1000, 2500, 3000, 2000]


def _drawn(m, step, budget, seed=0):
    ch = bucket_choices(m.weights, seed, step, 0, budget)
    return np.bincount(ch, minlength=len(SIZES))


def test_definitions_by_hand():
    t = 3  # the fourth bucket
    assert mixture("sequential", t, SIZES).weights == (0, 0, 0, 1, 0)
    assert mixture("patching", t, SIZES).weights == (0, 0, 0, 1, 0)
    ca = mixture("cumulative-all", t, SIZES)
    assert np.allclose(ca.weights, [4000 / 10500, 1000 / 10500, 2500 / 10500, 3000 / 10500, 0])
    assert mixture("restart", t, SIZES) == ca and mixture("lwf", t, SIZES, lwf_data="cumulative-all") == ca
    assert mixture("lwf", t, SIZES).weights == (0, 0, 0, 1, 0)  # the paper's LwF: the new data only (default)
    assert np.allclose(mixture("oracle", 0, SIZES).weights, np.array(SIZES) / sum(SIZES))
    # exp with the 1x buffer (a flag): |D_t| = 3000: t-1 half (1500, but bucket 2 has 2500 -> fine), t-2 a quarter, t-3 the rest
    ex = mixture("cumulative-exp", t, SIZES, buffer_factor=1)
    assert ex.limits[:3] == (750, 750, 1500) and ex.limits[3] is None
    assert np.allclose(ex.weights, [750 / 6000, 750 / 6000, 1500 / 6000, 3000 / 6000, 0])
    # equal: 1000 each from three old buckets
    eq = mixture("cumulative-equal", t, SIZES, buffer_factor=1)
    assert eq.limits[:3] == (1000, 1000, 1000)
    assert np.allclose(eq.weights, [1 / 6, 1 / 6, 1 / 6, 1 / 2, 0])
    # a share larger than its bucket is capped and the rest goes to the others: buffer 6000, equal
    capped = mixture("cumulative-equal", t, SIZES, buffer=6000)
    assert capped.limits[:3] == (2500, 1000, 2500) and sum(capped.limits[:3]) == 6000
    # step 1 is D_1 alone for every method
    for m in METHODS:
        if m != "oracle":
            assert mixture(m, 0, SIZES).weights == (1, 0, 0, 0, 0)


def test_replay_buffers_at_step_7_by_hand():
    """TiC-DataComp's last step (t = 7, six old steps) with the default buffer of 2 x |D_7| old samples."""
    sizes = [5000, 3000, 4000, 5000, 6000, 8000, 4000]
    ex = mixture("cumulative-exp", 6, sizes)  # B = 8000: newest-first halves 4000, 2000, 1000, 500, then 250 and 250
    assert ex.limits == (250, 250, 500, 1000, 2000, 4000, None)
    assert np.allclose(ex.weights, np.array([250, 250, 500, 1000, 2000, 4000, 4000]) / 12000)
    one = mixture("cumulative-exp", 6, sizes, buffer_factor=1)  # the 1x buffer: half of each
    assert one.limits == (125, 125, 250, 500, 1000, 2000, None)
    assert np.allclose(one.weights, np.array([125, 125, 250, 500, 1000, 2000, 4000]) / 8000)
    sizes[6] = 3000
    eq = mixture("cumulative-equal", 6, sizes)  # B = 6000 split equally over six old steps
    assert eq.limits == (1000,) * 6 + (None,)
    assert np.allclose(eq.weights, [1000 / 9000] * 6 + [3000 / 9000])


@pytest.mark.parametrize("method", METHODS)
def test_each_method_draws_its_proportions(method):
    budget = budget_of(method, 20_000, len(SIZES))
    for step in range(len(SIZES)):
        m = mixture(method, step, SIZES)
        got = _drawn(m, step, budget)
        assert got.sum() == budget  # exactly the budget, whatever the data size
        want = np.array(m.expected_counts(budget))
        sd = np.sqrt(budget * np.array(m.weights) * (1 - np.array(m.weights)))
        assert (np.abs(got - want) <= 4 * sd + 1e-9).all(), (method, step, got, want)  # 4 sigma
        assert (got[np.array(m.weights) == 0] == 0).all()


def test_draws_resume_at_any_point():
    w = mixture("cumulative-exp", 4, SIZES).weights
    whole = bucket_choices(w, 7, 4, 0, 10_000)
    parts = np.concatenate([bucket_choices(w, 7, 4, a, b - a) for a, b in ((0, 1234), (1234, 5000), (5000, 10_000))])
    assert (whole == parts).all()
    assert not (bucket_choices(w, 8, 4, 0, 10_000) == whole).all()


def test_the_method_table_holds_each_methods_rules():
    from tic_train.methods import method

    warm = {m for m in METHODS if method(m).warm_start}
    assert warm == {"sequential", "cumulative-all", "cumulative-exp", "cumulative-equal", "lwf", "patching"}
    assert {m for m in METHODS if method(m).restart} == {"restart", "oracle"}
    assert [m for m in METHODS if method(m).once_at_end] == ["oracle"]
    assert [m for m in METHODS if method(m).teacher] == ["lwf"] and [m for m in METHODS if method(m).patching] == ["patching"]
    assert method("oracle").steps_to_train(5) == [4] and method("restart").steps_to_train(3) == [0, 1, 2]
    assert [budget_of(m, 10, 5) for m in ("oracle", "restart", "lwf")] == [50, 10, 10]
    # LwF trains on the data its config names; Patching on D_t alone
    assert mixture("lwf", 2, [10, 10, 10], lwf_data="sequential").weights == (0.0, 0.0, 1.0)
    assert mixture("patching", 2, [10, 10, 10]).weights == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown method 'fancy'"):
        method("fancy")
