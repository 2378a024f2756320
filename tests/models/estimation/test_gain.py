import numpy as np

from models.estimation import SEModel, WLSEstimator
from models.estimation.gain import SelectedInverse, selected_inverse
from tests.models.estimation.conftest import reference_sensors, sensor_std, solved_net


def mv_case():
    net = solved_net("1-MV-urban--0-sw")
    model = SEModel.from_net(net)
    sensors = reference_sensors(net, model)
    truth = model.measure(net.res_bus.vm_pu.to_numpy(), net.res_bus.va_degree.to_numpy(), sensors)
    std = sensor_std(sensors, net.sn_mva)
    return model, sensors, truth + np.random.default_rng(4).normal(0, std), std


def test_batched_selected_inverse_equals_takahashi_column_by_column():
    model, sensors, values, std = mv_case()
    estimator = WLSEstimator(model, sensors, solver="sparse", max_removals=0)
    assert estimator.estimate(values, std).success
    lower, d, _ = estimator._gain._qdldl.factors()
    lower = lower.tocsc()
    inverse = SelectedInverse(lower)
    z = inverse.compute(lower, d)
    # Z only on the pattern (and two padding slots), not n x n
    assert len(z) == lower.nnz + len(d) + 2
    assert len(inverse._batches) < len(d) // 2  # one batch per elimination-tree depth
    reference = selected_inverse(lower, d)
    keys = inverse._keys
    r, c = keys // inverse.n, keys % inverse.n
    np.testing.assert_allclose(z[:-2], reference[r, c], rtol=1e-7, atol=0)


def test_sparse_and_dense_hgh_agree_on_a_medium_grid():
    model, sensors, values, std = mv_case()
    sparse = WLSEstimator(model, sensors, solver="sparse", max_removals=0)
    dense = WLSEstimator(model, sensors, solver="dense", max_removals=0)
    a, b = sparse.estimate(values, std), dense.estimate(values, std)
    hs, hd = sparse._gain.hgh_diagonal(), dense._gain.hgh_diagonal()
    # G is ill-conditioned (scaled inverse entries up to 1e9): both factorisations agree
    # to ~2e-6 (so did the column-by-column recurrence), the normalised residuals to 1e-7
    np.testing.assert_allclose(hs, hd, rtol=1e-5)
    np.testing.assert_allclose(a.rn, b.rn, rtol=0, atol=1e-6)
