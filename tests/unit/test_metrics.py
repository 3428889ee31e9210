import numpy as np
import pytest

from driftstack.domain import metrics as M


def test_values_by_hand():
    y, p = np.array([10.0, 20.0, 30.0, 40.0]), np.array([12.0, 18.0, 33.0, 40.0])
    assert M.rmse(y, p) == pytest.approx(np.sqrt((4 + 4 + 9 + 0) / 4))
    assert M.mae(y, p) == pytest.approx(7 / 4)
    assert M.r2(y, p) == pytest.approx(1 - 17 / 500)
    assert M.mape(y, p) == pytest.approx((0.2 + 0.1 + 0.1 + 0) / 4 * 100)
    assert M.regression_metrics(y, y) == {"rmse": 0.0, "mae": 0.0, "r2": 1.0, "mape": 0.0, "n": 4}


def test_agrees_with_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.uniform(2.5, 200, 1000)
    p = y + rng.normal(0, 3, 1000)
    assert M.rmse(y, p) == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert M.mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert M.r2(y, p) == pytest.approx(skm.r2_score(y, p))
    assert M.mape(y, p) == pytest.approx(skm.mean_absolute_percentage_error(y, p) * 100)


def test_edge_cases():
    assert np.isnan(M.r2([5.0, 5.0], [5.0, 4.0]))
    assert M.mape([0.0, 10.0], [1.0, 11.0]) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="differ in length"):
        M.rmse([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no rows"):
        M.mae([], [])
