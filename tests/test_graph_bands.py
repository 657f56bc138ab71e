"""Spectral bands (recbole_spectral.layers.graph_bands): exactness of the split, energy balance, agreement
with the exact eigen-bands, and the polynomial algebra behind precomputing fixed signals.

Measured on the graph below (300 users × 200 items, 6 items per user, 16-column Gaussian signal,
M = 3): the scalable bands' energy shares are equal to 1e-6; their squared norms differ by ~24 % at
K = 5 (polynomial bands overlap); relative error of each band vs the exact equal-energy eigen-bands
0.61 / 0.78 / 0.61 at K = 2, 0.56 / 0.76 / 0.56 at K = 3 (SSR's default order), 0.52 / 0.74 / 0.52 at K = 4,
0.48 / 0.71 / 0.48 at K = 5, 0.36 / 0.56 / 0.37 at K = 10, 0.25 / 0.38 / 0.27 at K = 20 (0.18 / 0.27 / 0.20
at K = 40). Low-order polynomials cannot make sharp cut-offs, so only the decrease with K is asserted.
The released SSR code's fixed filters (``released``) are not band-pass: 1.29 / 1.98 / 0.88 against the same
exact bands, energy shares 1.00 / −0.58 / 0.59.
"""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recbole_spectral.layers import graph_bands as B
from recbole_spectral.layers.graph import normalized_bipartite_graph, propagate


@pytest.fixture(scope="module")
def graph_and_signal():
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 200
    rows = np.repeat(np.arange(n_users), 6)
    cols = rng.integers(0, n_items, len(rows))
    r = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    torch.manual_seed(0)
    return normalized_bipartite_graph(r), torch.randn(n_users + n_items, 16, dtype=torch.float64).float()


def relative_errors(bands, reference):
    return [float((b - r).norm() / r.norm()) for b, r in zip(bands, reference)]


def test_indicator_coefficients_exact_values():
    # the indicator of the whole interval [-1, 1] is the constant 1: c = (1, 0, 0, ...)
    np.testing.assert_allclose(B.indicator_coefficients(-1, 1, 6, damping=False), [1, 0, 0, 0, 0, 0, 0], atol=1e-12)
    # [0, 1]: c_0 = 1/2, c_1 = 2 sin(π/2)/π = 2/π, c_2 = 0
    np.testing.assert_allclose(B.indicator_coefficients(0, 1, 2, damping=False), [0.5, 2 / np.pi, 0.0], atol=1e-12)
    assert B.jackson_damping(5)[0] == pytest.approx(1.0)


def test_band_coefficients_sum_to_identity():
    coefficients = B.band_coefficients([-0.3, 0.4], 5)
    np.testing.assert_allclose(coefficients.sum(0), [1, 0, 0, 0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("exact_max_nodes", [0, 10_000])
def test_bands_sum_to_the_signal(graph_and_signal, exact_max_nodes):
    graph, x = graph_and_signal
    decomposition = B.SpectralBands(graph, 3, 5, exact_max_nodes=exact_max_nodes)
    decomposition.calibrate(x)
    bands = decomposition.bands(x)
    assert len(bands) == 3
    assert torch.allclose(sum(bands), x, atol=1e-5)


def test_scalable_energy_shares_are_balanced(graph_and_signal):
    graph, x = graph_and_signal
    decomposition = B.SpectralBands(graph, 3, 5)
    shares = decomposition.calibrate(x)
    assert shares.sum() == pytest.approx(1.0, abs=1e-6)  # shares ⟨X, B_b⟩ add up to ‖X‖²
    assert np.all(np.abs(shares * 3 - 1) < 0.10)
    # the realised bands, not only the estimate: ⟨X, B_b⟩ from the tensors themselves
    measured = np.array([float((x * b).sum() / (x * x).sum()) for b in decomposition.bands(x)])
    assert np.all(np.abs(measured * 3 - 1) < 0.10)


def test_density_quantiles_alone_are_roughly_balanced(graph_and_signal):
    graph, x = graph_and_signal
    basis = B.chebyshev_basis(B.shifted_laplacian(graph), x, 5)
    gram = B.gram_matrix(basis)
    start = B.energy_quantiles(gram[0], 3)
    shares = B.band_shares(gram, B.band_coefficients(start, 5)) / gram[0, 0]
    assert np.all(np.abs(shares * 3 - 1) < 0.25)  # the KPM estimate at K = 5 before refinement


def test_exact_bands_are_orthogonal_equal_energy(graph_and_signal):
    graph, x = graph_and_signal
    dense = B.shifted_laplacian(graph).to_dense()
    bands, borders, _ = B.exact_decomposition(dense, x, 3)
    energies = np.array([float((b * b).sum() / (x * x).sum()) for b in bands])
    assert energies.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.abs(energies * 3 - 1) < 0.10)
    assert float((bands[0] * bands[1]).sum()) == pytest.approx(0.0, abs=1e-3)
    assert np.all(np.diff(borders) > 0)


def test_scalable_bands_approach_exact_bands_as_order_grows(graph_and_signal):
    graph, x = graph_and_signal
    exact, exact_borders, _ = B.exact_decomposition(B.shifted_laplacian(graph).to_dense(), x, 3)
    errors, border_gaps = {}, {}
    for order in (3, 5, 10, 20):
        decomposition = B.SpectralBands(graph, 3, order)
        decomposition.calibrate(x)
        errors[order] = relative_errors(decomposition.bands(x), exact)
        border_gaps[order] = np.abs(decomposition.borders - exact_borders).max()
    assert np.mean(errors[3]) > np.mean(errors[5]) > np.mean(errors[10]) > np.mean(errors[20])
    assert max(errors[3]) < 0.8  # measured 0.56 / 0.76 / 0.56 at SSR's default order
    assert max(errors[20]) < 0.45
    assert border_gaps[20] < border_gaps[5]


def test_prefilter_composes_with_propagation(graph_and_signal):
    """Bands of g(Â)Z from one basis on Z equal bands of the propagated signal (same borders)."""
    graph, z = graph_and_signal
    n_layers = 2
    propagated = propagate(graph, z, n_layers, aggregation="mean")
    plain = B.SpectralBands(graph, 3, 5)
    plain.calibrate(propagated)
    prefilter = B.power_to_chebyshev_in_laplacian([1.0 / (n_layers + 1)] * (n_layers + 1))
    composed = B.SpectralBands(graph, 3, 5, prefilter=prefilter)
    composed.set_borders(plain.borders)
    assert composed.degree == 5 + n_layers
    rows = torch.tensor([0, 5, 299, 300, 499])
    for a, b in zip(plain.bands(propagated, rows), composed.bands(z, rows)):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(sum(composed.bands(z)), propagated, atol=1e-5)


def test_fixed_split_uses_the_given_borders(graph_and_signal):
    graph, x = graph_and_signal
    decomposition = B.SpectralBands(graph, 3, 5, method="fixed", fixed_borders=[0.5, 1.5])
    decomposition.calibrate(x)
    np.testing.assert_allclose(decomposition.borders_lambda(), [0.5, 1.5])
    assert torch.allclose(sum(decomposition.bands(x)), x, atol=1e-5)


def test_bad_settings_are_refused(graph_and_signal):
    graph, _ = graph_and_signal
    with pytest.raises(ValueError, match="band method"):
        B.SpectralBands(graph, 3, 5, method="median")
    with pytest.raises(ValueError, match="2 borders"):
        B.SpectralBands(graph, 3, 5, method="fixed", fixed_borders=[1.0])


def test_released_filters_match_the_released_code():
    """low = T0 − 0.5 T1, mid = 0.8 T2 + 0.3 T3, high = the residual; unused orders trimmed."""
    np.testing.assert_allclose(B.released_band_coefficients(3, 5),
                               [[1, -0.5, 0, 0], [0, 0, 0.8, 0.3], [0, 0.5, -0.8, -0.3]], atol=1e-12)
    np.testing.assert_allclose(B.released_band_coefficients(3, 2), [[1, -0.5, 0], [0, 0, 0.8], [0, 0.5, -0.8]])
    four = B.released_band_coefficients(4, 5)  # middle bands share orders 2..5 round-robin, 0.8 · 0.375^i
    np.testing.assert_allclose(four[1], [0, 0, 0.8, 0, 0.3, 0], atol=1e-12)
    np.testing.assert_allclose(four[2], [0, 0, 0, 0.8, 0, 0.3], atol=1e-12)
    np.testing.assert_allclose(four.sum(0), [1, 0, 0, 0, 0, 0], atol=1e-12)


def test_released_rule_on_a_large_graph_is_polynomial_and_sums_to_the_signal(graph_and_signal):
    """energy_or_fixed_chebyshev above exact_max_nodes: the released fixed filters (degree 3 at order 5)."""
    graph, x = graph_and_signal
    decomposition = B.SpectralBands(graph, 3, 5, method="energy_or_fixed_chebyshev", exact_max_nodes=graph.shape[0] - 1)
    assert not decomposition.exact and decomposition.degree == 3 and not decomposition.adaptive
    shares = decomposition.calibrate(x)
    assert shares.sum() == pytest.approx(1.0, abs=1e-6)
    bands = decomposition.bands(x)
    assert torch.allclose(sum(bands), x, atol=1e-5)
    lap = B.shifted_laplacian(graph)
    assert torch.allclose(bands[0], x - 0.5 * (lap @ x), atol=1e-5)


def test_released_rule_on_a_small_graph_is_the_exact_equal_energy_split(graph_and_signal):
    """energy_or_fixed_chebyshev at most exact_max_nodes: the same bands as ``energy`` on the exact path (the
    released code's eigendecomposition cut at equal energy)."""
    graph, x = graph_and_signal
    released = B.SpectralBands(graph, 3, 5, method="energy_or_fixed_chebyshev", exact_max_nodes=graph.shape[0])
    energy = B.SpectralBands(graph, 3, 5, method="energy", exact_max_nodes=graph.shape[0])
    assert released.exact and released.adaptive
    np.testing.assert_allclose(released.calibrate(x), energy.calibrate(x), atol=1e-12)
    for a, b in zip(released.bands(x), energy.bands(x)):
        assert torch.allclose(a, b, atol=1e-6)


def test_bands_on_another_laplacian(graph_and_signal):
    """``laplacian=`` applies the same filters on another graph of the same nodes (a pruned training graph)."""
    graph, x = graph_and_signal
    decomposition = B.SpectralBands(graph, 3, 3)
    decomposition.calibrate(x)
    other = B.shifted_laplacian(graph) * 0.5
    coefficients = decomposition.filter_coefficients
    basis = B.chebyshev_basis(other, x, 3)
    expected = B.combine(basis, coefficients)
    for a, b in zip(decomposition.bands(x, laplacian=other), expected):
        assert torch.allclose(a, b, atol=1e-6)
