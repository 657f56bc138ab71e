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


def test_exact_bands_of_a_given_basis_before_any_basis_call(graph_and_signal):
    """On the exact path the basis is x itself, so a caller may hand it in first: the same bands as bands(x)."""
    graph, x = graph_and_signal
    given = B.SpectralBands(graph, 3, 5, exact_max_nodes=10_000).bands(x, basis=[x])
    built = B.SpectralBands(graph, 3, 5, exact_max_nodes=10_000).bands(x)
    assert all(torch.equal(a, b) for a, b in zip(given, built))


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


# -- exact values on a tiny graph (4 users x 3 items, 7 nodes), checked against its eigendecomposition ---------------
@pytest.fixture(scope="module")
def tiny():
    r = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]], dtype=np.float32))
    graph = normalized_bipartite_graph(r)
    lap = B.shifted_laplacian(graph).to_dense().double()
    evals, evecs = torch.linalg.eigh(lap)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).float()
    return graph, evals, evecs, x


def spectral(evecs, values, x):
    """U diag(values) Uᵀ x (float64)."""
    return (evecs * values) @ evecs.T @ x.double()


def projections(evals, evecs, borders, x, prefilter=None):
    """The exact bands: x projected on the eigenvectors between consecutive borders (times g(λ) if prefiltered)."""
    edges = [-np.inf, *borders, np.inf]
    g = torch.ones_like(evals) if prefilter is None else torch.as_tensor(np.polynomial.chebyshev.chebval(evals.numpy(), prefilter))
    return [spectral(evecs, g * ((evals >= lo) & (evals < hi)), x) for lo, hi in zip(edges[:-1], edges[1:])]


def test_chebyshev_basis_is_T_k_of_the_laplacian_up_to_its_order(tiny):
    graph, evals, evecs, x = tiny
    lap = B.shifted_laplacian(graph)
    for order in (0, 1, 2, 4):
        basis = B.chebyshev_basis(lap, x, order)
        assert len(basis) == order + 1
        for k, term in enumerate(basis):
            torch.testing.assert_close(term.double(), spectral(evecs, torch.cos(k * torch.arccos(evals.clamp(-1, 1))), x),
                                       atol=1e-5, rtol=1e-5)


def test_jackson_damping_values():
    # K = 2 (N = 3 moments): g_k = ((N − k + 1) cos(πk/(N+1)) + sin(πk/(N+1)) cot(π/(N+1))) / (N+1) = 1, 1/√2, 1/4
    np.testing.assert_allclose(B.jackson_damping(2), [1.0, 2 ** -0.5, 0.25], atol=1e-12)


def test_indicator_coefficients_limit_the_interval_to_the_spectrum_and_damp_by_default():
    # (no "cli" in the name: tools/mutation.py deselects tests with -k "not cli")
    np.testing.assert_allclose(B.indicator_coefficients(-1.5, 1.5, 4, damping=False), [1, 0, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(B.indicator_coefficients(0, 1, 2), [0.5, 2 ** -0.5 * 2 / np.pi, 0.0], atol=1e-12)


def test_undamped_band_coefficients_are_the_plain_indicators_and_the_residual():
    got = B.band_coefficients([-0.3, 0.4], 5, damping=False)
    low, mid = B.indicator_coefficients(-1, -0.3, 5, damping=False), B.indicator_coefficients(-0.3, 0.4, 5, damping=False)
    np.testing.assert_allclose(got, [low, mid, np.eye(6)[0] - low - mid], atol=1e-12)


def test_cumulative_energy_is_the_kpm_series_and_flat_outside_the_spectrum():
    moments = np.array([2.0, 0.3, -0.4, 0.1, 0.25])
    x = np.array([-1.5, -1.0, -0.3, 0.2, 1.0, 1.5])
    theta = np.arccos(np.clip(x, -1, 1))
    for damping, g in ((True, B.jackson_damping(4)), (False, np.ones(5))):
        want = g[0] * moments[0] * (np.pi - theta) / np.pi - sum(
            2 * g[k] * moments[k] * np.sin(k * theta) / (k * np.pi) for k in range(1, 5))
        np.testing.assert_allclose(B.cumulative_energy(moments, x, damping), want, atol=1e-12)
    np.testing.assert_allclose(B.cumulative_energy(moments, [-1.0, 1.0]), [0.0, 2.0], atol=1e-12)  # F(−1) = 0, F(1) = μ_0


def test_energy_quantiles_sit_where_the_estimated_cdf_crosses_equal_shares_at_any_scale(graph_and_signal):
    graph, x = graph_and_signal
    moments = B.gram_matrix(B.chebyshev_basis(B.shifted_laplacian(graph), x, 5))[0]
    borders = B.energy_quantiles(moments, 4)
    grid = np.linspace(-1, 1, 400_001)
    cdf = np.maximum.accumulate(np.maximum(B.cumulative_energy(moments, grid), 0.0))
    np.testing.assert_allclose(borders, np.interp(cdf[-1] * np.arange(1, 4) / 4, cdf, grid), atol=1e-5)
    for scale in (2.0 ** -40, 2.0 ** 40):
        np.testing.assert_allclose(B.energy_quantiles(moments * scale, 4), borders, atol=1e-12)


def coordinate_search(gram, start, order, damping=True, sweeps=12, grid_size=201):
    """Reference of balance_borders' docstring: each border in turn tries every point of a grid of grid_size
    between its neighbours and keeps one that lowers the spread Σ_b (S_b/S̄ − 1)² of the shares."""
    def spread(borders):
        shares = B.band_shares(gram, B.band_coefficients(borders, order, damping))
        return float(((shares / shares.mean() - 1) ** 2).sum())

    borders, best = np.array(start, dtype=float), spread(start)
    for _ in range(sweeps):
        moved = False
        for i in range(len(borders)):
            lo, hi = ([-1.0, *borders, 1.0][i], [-1.0, *borders, 1.0][i + 2])
            for value in np.linspace(lo, hi, grid_size)[1:-1]:
                candidate = borders.copy()
                candidate[i] = value
                if spread(candidate) < best - 1e-12:
                    borders, best, moved = candidate, spread(candidate), True
        if not moved:
            break
    return borders


@pytest.mark.parametrize("n_bands, damping", [(3, True), (4, False), (5, False)])
def test_balance_borders_is_the_coordinate_search_at_any_signal_scale(graph_and_signal, n_bands, damping):
    """Damped bands: the density quantiles already balance the shares (nothing moves); undamped: the search moves
    (five undamped bands are still moving after the 12 sweeps: the search stops there)."""
    graph, x = graph_and_signal
    gram = B.gram_matrix(B.chebyshev_basis(B.shifted_laplacian(graph), x, 3))
    start = B.energy_quantiles(gram[0], n_bands)
    want = coordinate_search(gram, start, 3, damping)
    assert np.allclose(want, start) == damping
    kwargs = {} if damping else {"damping": False}
    np.testing.assert_array_equal(B.balance_borders(gram, start, 3, **kwargs), want)
    np.testing.assert_array_equal(B.balance_borders(gram * 2.0 ** -30, start, 3, **kwargs), want)  # scale-free
    np.testing.assert_array_equal(B.balance_borders(gram * 0.0, start, 3, **kwargs), start)        # no signal: no move


@pytest.mark.parametrize("x0", [-0.99, 0.99])
def test_balance_borders_reaches_the_grid_points_next_to_the_ends_of_the_spectrum(x0):
    """One eigenvector at x0 = ±0.99 (G = t tᵀ, t_k = T_k(x0)), two undamped bands at K = 5: the border goes as close
    to x0 as the grid allows, to the grid point next to the end of the spectrum (the grid of 201 points on [−1, 1])."""
    t = np.cos(np.arange(6) * np.arccos(x0))
    gram = np.outer(t, t)
    got = B.balance_borders(gram, [0.0], 5, damping=False)
    np.testing.assert_allclose(got, [x0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got, coordinate_search(gram, [0.0], 5, damping=False))


def test_strictly_increasing_borders_inside_the_open_spectrum():
    np.testing.assert_allclose(B._strictly_increasing([-1.5, -1.2, 0.2, 0.2, 0.9995, 1.5]),
                               [-0.999, -0.998, 0.2, 0.201, 0.999, 1.0], atol=1e-12)


def test_exact_bands_cut_where_the_cumulative_energy_crosses_each_share():
    """Eigenvalues −1, −0.75, ..., 1 with the unit vectors as eigenvectors; energies 5, 1, 1, ... (13 in all): the
    cumulative energy crosses 1/3 at the first eigenvalue and 2/3 at the fifth; borders at the midpoints."""
    evals, evecs = torch.linspace(-1, 1, 9, dtype=torch.float64), torch.eye(9, dtype=torch.float64)
    signal = torch.tensor([5 ** 0.5] + [1.0] * 8, dtype=torch.float64)[:, None]
    for scale in (1.0, 1e-9):
        bands, borders, (_, _, cuts) = B.exact_decomposition_from_eigen(evals, evecs, signal * scale, 3)
        assert cuts.tolist() == [0, 1, 5, 9]
        np.testing.assert_allclose(borders, [-0.875, 0.125], atol=1e-12)
        middle = ((torch.arange(9) >= 1) & (torch.arange(9) < 5)).double()  # the second band: eigenvalues 2 to 5
        torch.testing.assert_close(bands[1][:, 0], signal[:, 0] * scale * middle)
    top = torch.zeros(9, 1, dtype=torch.float64)
    top[8] = 1.0  # all energy at the top eigenvalue: both borders just above it
    _, borders, (_, _, cuts) = B.exact_decomposition_from_eigen(evals, evecs, top, 3)
    assert cuts.tolist() == [0, 9, 9, 9]
    np.testing.assert_allclose(borders, [1 + 1e-6, 1 + 1e-6], atol=1e-12)


def test_exact_cuts_never_split_a_repeated_eigenvalue():
    """Eigenvalues −1, 0 (four-fold), 1; energies 2, 1, 1, 1, 1, 1 (7 in all). Half the energy is crossed inside the
    four-fold 0, where a cut would depend on which basis of that eigenspace eigh returned: the cut moves to the
    cluster's nearer end in energy (2/7 below it against 6/7), and the bands are the same in any rotated basis."""
    evals = torch.tensor([-1.0, 0.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    signal = torch.tensor([2 ** 0.5, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)[:, None]
    bands, borders, (_, _, cuts) = B.exact_decomposition_from_eigen(evals, torch.eye(6, dtype=torch.float64), signal, 2)
    assert cuts.tolist() == [0, 1, 6]
    np.testing.assert_allclose(borders, [-0.5])
    rotated = torch.eye(6, dtype=torch.float64)
    rotated[1:5, 1:5] = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    again, _, (_, _, same_cuts) = B.exact_decomposition_from_eigen(evals, rotated, signal, 2)
    assert same_cuts.tolist() == [0, 1, 6]
    for got, want in zip(again, bands):
        torch.testing.assert_close(got, want)


@pytest.mark.filterwarnings("error")  # e.g. NumPy's DeprecationWarning for an inexact searchsorted side
@pytest.mark.parametrize("evals, energies, n_bands, cuts, borders", [
    # the share 1/2 is crossed inside the four-fold 0.25 (at its third eigenvalue); the upper end is nearer (0.7 vs 0.1)
    ([-1, 0.25, 0.25, 0.25, 0.25, 1], [1, 1, 1, 3, 1, 3], 2, [0, 5, 6], [0.625]),
    # crossed at the four-fold 0.25's first eigenvalue: the upper end is nearer again (0.7 vs 0.1)
    ([-1, 0.25, 0.25, 0.25, 0.25, 1], [1, 6, 0, 0, 0, 3], 2, [0, 5, 6], [0.625]),
    # crossed at the top eigenvalue, between two distinct eigenvalues: the cut stays
    ([-1, 0.25, 0.25, 0.25, 0.25, 1], [1, 1, 1, 1, 2, 4], 2, [0, 5, 6], [0.625]),
    # a tie (1/4 below the double 0, 3/4 above it): the cut moves down
    ([-1, 0, 0, 1], [1, 1, 1, 1], 2, [0, 1, 4], [-0.5]),
    # the lowest eigenvalue triple (spread by eigh-like rounding, 2e-10): 1/3 is crossed inside it, nearer its lower end
    # (0 vs 0.9), so the first band is empty and its border sits 1e-6 below the spectrum; 2/3 moves the second cut up
    ([-0.5, -0.5 + 2e-10, -0.5 + 4e-10, 0.5], [5, 3, 1, 1], 3, [0, 0, 3, 4], [-0.5 - 1e-6, 2e-10]),
], ids=["upper_end_nearer", "crossed_at_the_first_of_four", "between_distinct_eigenvalues", "tie_moves_down",
        "lowest_eigenvalue_repeated"])
def test_exact_cuts_move_to_the_nearer_end_of_a_repeated_eigenvalue_in_energy(evals, energies, n_bands, cuts, borders):
    """Unit eigenvectors with the given energies: a cut that would split a repeated eigenvalue moves to whichever end
    of it has the cumulative energy nearer the share b/M (the lower end on a tie)."""
    evals = torch.tensor(evals, dtype=torch.float64)
    signal = torch.tensor(energies, dtype=torch.float64).sqrt()[:, None]
    _, got, (_, _, got_cuts) = B.exact_decomposition_from_eigen(evals, torch.eye(len(evals), dtype=torch.float64), signal,
                                                                n_bands)
    assert got_cuts.tolist() == cuts
    np.testing.assert_allclose(got, borders, rtol=0, atol=1e-12)


def test_exact_bands_of_equal_energies_take_equally_many_eigenvalues():
    """Six eigenvalues with the same energy in three bands: the cumulative energy reaches 1/3 and 2/3 exactly at the
    second and fourth eigenvalues, which close the first two bands."""
    evals = torch.linspace(-1, 1, 6, dtype=torch.float64)
    _, borders, (_, _, cuts) = B.exact_decomposition_from_eigen(evals, torch.eye(6, dtype=torch.float64),
                                                                torch.ones(6, 1, dtype=torch.float64), 3)
    assert cuts.tolist() == [0, 2, 4, 6]
    np.testing.assert_allclose(borders, [-0.4, 0.4], atol=1e-12)


def test_exact_path_projects_on_eigenvectors_before_and_after_calibration_and_after_set_borders(tiny):
    graph, evals, evecs, x = tiny
    bands = B.SpectralBands(graph, 3, 5, exact_max_nodes=7)  # 7 nodes: exact
    assert bands.exact and not B.SpectralBands(graph, 3, 5, exact_max_nodes=6).exact
    np.testing.assert_allclose(bands.borders, [-1 / 3, 1 / 3])  # equal widths in x before calibration
    rows = torch.tensor([6, 0, 3])
    for got, want in zip(bands.bands(x), projections(evals, evecs, [-1 / 3, 1 / 3], x)):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    for got, want in zip(bands.bands(x, rows), projections(evals, evecs, [-1 / 3, 1 / 3], x)):
        torch.testing.assert_close(got.double(), want[rows], atol=1e-5, rtol=1e-5)
    restored = B.SpectralBands(graph, 3, 5, exact_max_nodes=7)
    restored.set_borders([-0.6, 0.2])  # from a checkpoint, before any calibration
    for got, want in zip(restored.bands(x), projections(evals, evecs, [-0.6, 0.2], x)):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    shares = bands.calibrate(x)
    exact, borders, _ = B.exact_decomposition_from_eigen(evals, evecs, x, 3)
    np.testing.assert_allclose(bands.borders, borders)
    for got, want in zip(bands.bands(x), exact):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(shares, [float((b.double() ** 2).sum() / (x.double() ** 2).sum()) for b in exact], atol=1e-6)
    bands.set_borders([-0.6, 0.2])  # after calibration: the eigendecomposition is reused, the cuts follow
    for got, want in zip(bands.bands(x), projections(evals, evecs, [-0.6, 0.2], x)):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_exact_prefiltered_bands_are_the_filtered_projections(tiny):
    graph, evals, evecs, x = tiny
    prefilter = B.power_to_chebyshev_in_laplacian([0.5, 0.3, 0.2])
    bands = B.SpectralBands(graph, 3, 5, exact_max_nodes=7, prefilter=prefilter)
    bands.set_borders([-0.6, 0.2])
    assert len(bands.bands(x)) == 3
    for got, want in zip(bands.bands(x), projections(evals, evecs, [-0.6, 0.2], x, prefilter)):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    bands.calibrate(x)  # after calibration too (the operators are rebuilt with the prefilter)
    for got, want in zip(bands.bands(x), projections(evals, evecs, bands.borders, x, prefilter)):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("exact_max_nodes", [0, 7])
def test_a_basis_computed_before_the_borders_move_stays_valid(tiny, exact_max_nodes):
    """The basis depends on the graph and the signal only: one computed before calibration or set_borders gives the
    bands of the new borders (exact path: projections on the eigenvectors between them)."""
    graph, evals, evecs, x = tiny
    decomposition = B.SpectralBands(graph, 3, 5, exact_max_nodes=exact_max_nodes)
    basis = decomposition.basis(x)
    for move in (lambda: decomposition.calibrate(x), lambda: decomposition.set_borders([-0.6, 0.2])):
        move()
        got = decomposition.bands(x, basis=basis)
        for a, b in zip(got, decomposition.bands(x)):
            torch.testing.assert_close(a, b)
        if decomposition.exact:
            for a, b in zip(got, projections(evals, evecs, decomposition.borders, x)):
                torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-5)


def test_scalable_bands_of_rows_a_given_basis_and_list_coefficients(graph_and_signal):
    graph, x = graph_and_signal
    decomposition = B.SpectralBands(graph, 3, 3, prefilter=B.power_to_chebyshev_in_laplacian([0.5, 0.5]))
    full = decomposition.bands(x)
    assert len(full) == 3 and all(b.shape == x.shape for b in full)
    rows = torch.tensor([5, 0, 499])
    for got, want in zip(decomposition.bands(x, rows), full):
        assert got.shape == (3, 16)
        torch.testing.assert_close(got, want[rows])
    other = B.shifted_laplacian(graph) * 0.5
    basis = B.chebyshev_basis(other, x, decomposition.degree)
    for got, want in zip(decomposition.bands(x, basis=basis), B.combine(basis, decomposition.filter_coefficients)):
        torch.testing.assert_close(got, want)


def test_one_band_is_the_signal_and_zero_bands_are_refused(graph_and_signal):
    graph, x = graph_and_signal
    one = B.SpectralBands(graph, 1, 3)
    assert len(one.bands(x)) == 1
    torch.testing.assert_close(one.bands(x)[0], x)
    with pytest.raises(ValueError, match="n_bands must be >= 1, got 0"):
        B.SpectralBands(graph, 0, 3)


def test_undamped_bands_use_undamped_coefficients(graph_and_signal):
    graph, x = graph_and_signal
    decomposition = B.SpectralBands(graph, 3, 5, damping=False)
    decomposition.calibrate(x)
    np.testing.assert_allclose(decomposition.coefficients, B.band_coefficients(decomposition.borders, 5, damping=False))
    np.testing.assert_allclose(B.SpectralBands(graph, 4, 5).borders, [-0.5, 0.0, 0.5])


def test_released_filters_for_one_two_and_three_bands_at_low_orders():
    np.testing.assert_allclose(B.released_band_coefficients(1, 3), [[1.0]])
    np.testing.assert_allclose(B.released_band_coefficients(2, 3), [[1, -0.5], [0, 0.5]], atol=1e-12)
    np.testing.assert_allclose(B.released_band_coefficients(3, 1), [[1, -0.5], [0, 0], [0, 0.5]], atol=1e-12)
    np.testing.assert_allclose(B.released_band_coefficients(3, 3),
                               [[1, -0.5, 0, 0], [0, 0, 0.8, 0.3], [0, 0.5, -0.8, -0.3]], atol=1e-12)
