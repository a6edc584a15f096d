"""The parallel part of ``bench.search_at_scale``: the gap lost and its bootstrap interval over seeds."""

from __future__ import annotations

import numpy as np

from bench.search_at_scale import gap_lost, gap_lost_interval


def test_gap_lost_is_the_share_of_the_gap_between_the_medians() -> None:
    sequential, random = np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0, 7.0])
    assert gap_lost(sequential, sequential, random) == 0.0
    assert gap_lost(random, sequential, random) == 1.0
    assert gap_lost(np.array([2.5, 3.0, 9.0]), sequential, random) == 0.25  # median 3 of the gap 2 .. 6
    assert gap_lost(random, random, random) == 0.0  # no gap to lose


def test_interval_brackets_the_gap_lost_and_widens_with_noise() -> None:
    rng = np.random.default_rng(1)
    sequential, random = rng.normal(0.0, 1.0, 20), rng.normal(4.0, 1.0, 20)
    parallel = rng.normal(0.4, 1.0, 20)
    low, high = gap_lost_interval(parallel, sequential, random)
    assert low < gap_lost(parallel, sequential, random) < high
    quiet = gap_lost_interval(sequential / 10, sequential / 10, random)
    assert high - low > 2 * (quiet[1] - quiet[0])
    constant = np.ones(20)
    assert gap_lost_interval(constant, constant, constant + 1) == (0.0, 0.0)
