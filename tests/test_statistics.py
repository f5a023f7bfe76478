import math

import numpy as np
import pytest
from scipy import stats

from cvcourse.statistics import clearly_different, difference_and_error, mean_and_spread


def test_mean_and_spread_match_numpy_with_one_degree_of_freedom_taken():
    scores = [0.71, 0.75, 0.69, 0.80]
    mean, spread = mean_and_spread(scores)
    assert mean == pytest.approx(np.mean(scores))
    assert spread == pytest.approx(np.std(scores, ddof=1))


def test_the_difference_over_its_error_is_welchs_t_statistic():
    a, b = [0.80, 0.82, 0.79], [0.70, 0.76, 0.71, 0.73]
    difference, error = difference_and_error(a, b)
    assert difference / error == pytest.approx(stats.ttest_ind(a, b, equal_var=False).statistic)


def test_clearly_different_needs_the_gap_to_exceed_the_spread():
    assert clearly_different([0.90, 0.91, 0.92], [0.70, 0.71, 0.72])
    assert not clearly_different([0.90, 0.70, 0.80], [0.82, 0.76, 0.85])  # overlapping seeds
    assert not clearly_different([0.5, 0.5], [0.5, 0.5])
    assert clearly_different([0.6, 0.6], [0.5, 0.5])  # no spread at all: any gap is clear
    difference, error = difference_and_error([0.9, 0.7, 0.8], [0.82, 0.76, 0.85])
    assert clearly_different([0.9, 0.7, 0.8], [0.82, 0.76, 0.85], factor=0.9 * abs(difference) / error)


@pytest.mark.parametrize("values", [[0.5], [], [0.5, math.nan]])
def test_one_seed_or_a_nan_is_refused(values):
    with pytest.raises(ValueError, match="at least two finite scores"):
        mean_and_spread(values)
