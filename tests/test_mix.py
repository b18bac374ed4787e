"""The one splitmix64: its scalar form equals the vectorised one, and both equal the reference
values of the published algorithm (Steele, Lea and Flood; the sequence from seed 0)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from ticdata.mix import GOLDEN, MASK64, splitmix64, splitmix64_int


def test_the_reference_sequence():
    # splitmix64's generator from state 0 returns mix(0 + k * GOLDEN) for k = 1, 2, 3: these three
    # outputs are the algorithm's known first values.
    states = np.array([(k * GOLDEN - GOLDEN) & MASK64 for k in (1, 2, 3)], dtype=np.uint64)
    assert [int(v) for v in splitmix64(states)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@given(st.lists(st.integers(min_value=0, max_value=MASK64), min_size=1, max_size=50))
def test_scalar_and_vector_forms_agree(values):
    vec = splitmix64(np.array(values, dtype=np.uint64))
    assert [splitmix64_int(v) for v in values] == [int(x) for x in vec]
