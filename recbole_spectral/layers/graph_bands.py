"""Energy-balanced spectral band decomposition of graph signals (SSR Stage 1, arXiv 2512.01372).

Notation. Â is the symmetric-normalised adjacency of a graph, L = I − Â its normalised Laplacian
(spectrum in [0, 2]) and L̃ = L − I = −Â its shifted Laplacian (spectrum in [−1, 1]). A signal
X (N × D) splits into M bands X = Σ_b B_b, band b carrying the part of X whose graph frequencies λ
(eigenvalues of L) lie in [λ_{b−1}, λ_b). Borders are chosen so that every band carries about 1/M of
the signal energy ‖X‖²_F (energy-balanced), not at hand-set frequencies.

Two realisations:

* exact (small graphs): L̃ = U diag(x) Uᵀ; the spectral energy of X at eigenvalue x_i is
  e_i = ‖u_iᵀ X‖²; borders sit where the cumulative energy Σ_{x_i ≤ x} e_i crosses b/M of the total;
  B_b = U_b U_bᵀ X (orthogonal projectors, bands sum to X and their energies add up).

* scalable (any graph; K sparse products, no eigendecomposition, no dense N × N matrix):
  the basis T_k(L̃) X, k = 0..K, is built with the Chebyshev recurrence
  T_0 = X, T_1 = L̃X, T_{k+1} = 2 L̃ T_k − T_{k−1}. The signal's spectral energy density is
  estimated from the moments μ_k = tr(Xᵀ T_k(L̃) X) (kernel polynomial method with Jackson damping g_k):
      F(x) = Σ_{x_i ≤ x} e_i ≈ g_0 μ_0 (π − θ)/π − Σ_{k≥1} 2 g_k μ_k sin(kθ)/(kπ),  θ = arccos x,
  and the borders start at its equal-energy quantiles. Band b (b < M) is the damped Chebyshev series of
  the indicator of [x_{b−1}, x_b]:
      1_[a,c](x) ≈ Σ_k g_k c_k T_k(x),  c_0 = (θ_a − θ_c)/π,  c_k = 2 (sin kθ_a − sin kθ_c)/(kπ),
  and the last band is the residual B_M = X − Σ_{b<M} B_b, so the bands sum to X exactly.
  Every band is Σ_k a_{bk} T_k(L̃) X, so its energy is the quadratic form a_bᵀ G a_b in the Gram
  matrix G_{jk} = ⟨T_j X, T_k X⟩; the borders are then refined on G alone (no further sparse
  products) until the realised polynomial bands carry equal energy.

Low-order polynomials cannot make sharp cut-offs: at K = 5 the scalable bands are smooth versions of
the exact ones (see tests/test_graph_bands.py for the
measured gap, which shrinks as K grows).

A fixed, hand-set split (borders given in λ, the same on every graph; ``fixed``) is an option for comparison.
``energy_or_fixed_chebyshev`` is the released SSR code's rule: the exact equal-energy split on graphs with at
most ``exact_max_nodes`` nodes, its fixed Chebyshev filters (:func:`released_band_coefficients`, no borders)
on larger graphs.

``prefilter``: bands of g(L̃) X for a known polynomial g (e.g. LightGCN's propagation, a polynomial in
Â = −L̃) are the polynomials f_b·g applied to X; their Chebyshev coefficients are products of series,
so a propagated signal is split with one basis of degree K + deg g built on the unpropagated input.
"""
import math

import numpy as np
import torch
from numpy.polynomial import chebyshev as npcheb

from recbole_spectral.layers.graph import symmetric_spmm

BAND_METHODS = ("energy", "fixed", "energy_or_fixed_chebyshev")


# ----------------------------------------------------------------------------------------------
# Chebyshev machinery
# ----------------------------------------------------------------------------------------------
def shifted_laplacian(norm_adj):
    """L̃ = L − I = −Â for a symmetric-normalised adjacency Â (torch sparse COO in, CSR out)."""
    return (-1.0 * norm_adj.coalesce()).to_sparse_csr()


def chebyshev_basis(laplacian, x, order):
    """[T_0(L̃)x, ..., T_order(L̃)x] by the three-term recurrence (``order`` sparse products)."""
    basis = [x]
    if order >= 1:
        basis.append(symmetric_spmm(laplacian, x))
    for _ in range(2, order + 1):
        basis.append(2.0 * symmetric_spmm(laplacian, basis[-1]) - basis[-2])
    return basis


def jackson_damping(order):
    """Jackson kernel g_k, k = 0..order (suppresses Gibbs oscillations of truncated series)."""
    n = order + 1
    k = np.arange(n)
    return ((n - k + 1) * np.cos(np.pi * k / (n + 1)) + np.sin(np.pi * k / (n + 1)) / np.tan(np.pi / (n + 1))) / (n + 1)


def indicator_coefficients(lo, hi, order, damping=True):
    """Chebyshev coefficients (length order+1) of the indicator of [lo, hi] ⊂ [−1, 1]."""
    lo, hi = max(-1.0, float(lo)), min(1.0, float(hi))
    theta_lo, theta_hi = math.acos(lo), math.acos(hi)
    k = np.arange(1, order + 1)
    coeffs = np.empty(order + 1)
    coeffs[0] = (theta_lo - theta_hi) / math.pi
    coeffs[1:] = 2.0 * (np.sin(k * theta_lo) - np.sin(k * theta_hi)) / (k * math.pi)
    if damping:
        coeffs *= jackson_damping(order)
    return coeffs


def band_coefficients(borders, order, damping=True):
    """(M, order+1) Chebyshev coefficients of the M bands cut at interior ``borders`` (x-scale,
    increasing, M−1 values); the last band is the residual e_0 − Σ_{b<M} a_b (bands sum to identity)."""
    edges = [-1.0] + [float(b) for b in borders]
    coeffs = [indicator_coefficients(edges[i], edges[i + 1], order, damping) for i in range(len(borders))]
    identity = np.zeros(order + 1)
    identity[0] = 1.0
    coeffs.append(identity - np.sum(coeffs, axis=0) if coeffs else identity)
    return np.stack(coeffs)


def released_band_coefficients(n_bands, order):
    """(M, deg+1) Chebyshev coefficients in L̃ of the released SSR code's fixed band filters (an MMRec-based
    library, src/models/ssr.py, ``SpectralGraphSignalProcessor._cheb_mband_with_transformation``, the path
    it takes on graphs with more than 5,000 nodes), trailing zero orders trimmed:

    * M = 3: low = T_0 − 0.5 T_1, mid = 0.8 T_2 + 0.3 T_3 (orders above ``order`` dropped), high = residual;
    * other M ≥ 2: low as above; the M − 2 middle bands share the orders 2..K round-robin
      (band j gets orders 2+j, 2+j+(M−2), ...) with weights 0.8 · 0.375^i; last band the residual;
    * M = 1: the identity.

    These are not interval indicators: on λ ∈ [0, 2] (x = λ − 1) low(x) = 1 − x/2 goes from 1.5 to 0.5,
    mid(0) = −0.8, and the residual high band is −1 at λ = 0; the three always sum to the identity."""
    coeffs = np.zeros((n_bands, order + 1))
    coeffs[0, 0] = 1.0
    if n_bands == 1:
        return coeffs[:, :1]
    if order >= 1:
        coeffs[0, 1] = -0.5
    if n_bands == 3:
        if order >= 2:
            coeffs[1, 2] = 0.8
        if order >= 3:
            coeffs[1, 3] = 0.3
    elif n_bands > 3:
        n_mid = n_bands - 2
        orders = list(range(2, order + 1))
        for j in range(n_mid):
            for i, k in enumerate(orders[j::n_mid]):
                coeffs[1 + j, k] = 0.8 * 0.375 ** i
    coeffs[-1] = -coeffs[:-1].sum(0)
    coeffs[-1, 0] += 1.0
    used = np.flatnonzero(np.abs(coeffs).sum(0) > 0)
    return coeffs[:, : int(used.max()) + 1]


def power_to_chebyshev_in_laplacian(adjacency_poly):
    """Chebyshev coefficients in x = L̃ of g(Â) = Σ_l p_l Â^l, using Â = −L̃."""
    p = np.asarray(adjacency_poly, dtype=float)
    in_x = p * (-1.0) ** np.arange(len(p))
    return npcheb.poly2cheb(in_x)


def compose(coefficients, prefilter):
    """Chebyshev coefficients of f_b·g for every row f_b of ``coefficients`` (product of series)."""
    if prefilter is None:
        return np.asarray(coefficients)
    coefficients = np.asarray(coefficients)
    length = coefficients.shape[1] + len(prefilter) - 1
    out = np.zeros((coefficients.shape[0], length))
    for b, row in enumerate(coefficients):
        product = npcheb.chebmul(row, prefilter)  # numpy trims trailing zeros
        out[b, : len(product)] = product
    return out


def combine(basis, coefficients, rows=None):
    """Σ_k a_{bk} T_k for every band b: list of M tensors (optionally only ``rows``)."""
    terms = [t if rows is None else t[rows] for t in basis[: coefficients.shape[1]]]  # gather first
    coef = coefficients.tolist() if isinstance(coefficients, np.ndarray) else coefficients
    bands = []
    for row in coef:
        band = terms[0] * float(row[0])
        for a, term in zip(row[1:], terms[1:]):
            band = band + float(a) * term
        bands.append(band)
    return bands


# ----------------------------------------------------------------------------------------------
# Spectral energy and border placement
# ----------------------------------------------------------------------------------------------
def gram_matrix(basis):
    """G_{jk} = ⟨T_j X, T_k X⟩ (float64 numpy)."""
    flat = torch.stack([t.reshape(-1) for t in basis], 0).double()
    return (flat @ flat.T).cpu().numpy()


def cumulative_energy(moments, x, damping=True):
    """KPM estimate of F(x) = energy of the signal at frequencies ≤ x from μ_k = tr(Xᵀ T_k X)."""
    moments = np.asarray(moments, dtype=float)
    order = len(moments) - 1
    g = jackson_damping(order) if damping else np.ones(order + 1)
    theta = np.arccos(np.clip(np.asarray(x, dtype=float), -1.0, 1.0))
    value = g[0] * moments[0] * (math.pi - theta) / math.pi
    for k in range(1, order + 1):
        value = value - 2.0 * g[k] * moments[k] * np.sin(k * theta) / (k * math.pi)
    return value


def energy_quantiles(moments, n_bands, grid_size=2001):
    """Interior borders x_1 < ... < x_{M−1} at the equal-energy quantiles of the estimated density."""
    grid = np.linspace(-1.0, 1.0, grid_size)
    cdf = cumulative_energy(moments, grid)
    cdf = np.maximum.accumulate(np.maximum(cdf, 0.0))  # a density estimate can dip below zero
    total = cdf[-1] if cdf[-1] > 0 else 1.0
    targets = total * np.arange(1, n_bands) / n_bands
    borders = np.interp(targets, cdf, grid)
    return _strictly_increasing(borders)


def band_shares(gram, coefficients):
    """Energy carried by every band, ⟨X, B_b⟩ = Σ_k a_bk μ_k = ∫ f_b(x) dF(x).

    The shares sum to ‖X‖² exactly (the bands sum to X); for exact projector bands ⟨X, B_b⟩ = ‖B_b‖².
    Polynomial bands overlap in frequency, so their squared norms do not add up to ‖X‖²; the share is
    the band's part of the signal energy."""
    c = np.asarray(coefficients)
    return c @ gram[0, : c.shape[1]]


def energy_imbalance(energies):
    """Worst relative deviation of band energies from their mean."""
    energies = np.asarray(energies, dtype=float)
    mean = energies.mean()
    return float(np.max(np.abs(energies - mean)) / mean) if mean > 0 else 0.0


def balance_borders(gram, borders, order, damping=True, sweeps=12, grid_size=201):
    """Refine interior borders so the realised polynomial bands carry equal shares of the energy.

    Coordinate search: each border in turn moves on a grid between its neighbours to minimise the
    spread Σ_b (S_b/S̄ − 1)² of the shares S_b = ⟨X, B_b⟩ (from the Gram matrix's first row, no sparse
    products); the density quantiles are the start, the search corrects the polynomial smoothing.
    """
    borders = np.array(borders, dtype=float)

    def spread(candidate):
        energies = band_shares(gram, band_coefficients(candidate, order, damping))
        mean = energies.mean()
        return np.sum((energies / mean - 1.0) ** 2) if mean > 0 else 0.0

    best = spread(borders)
    for _ in range(sweeps):
        improved = False
        for i in range(len(borders)):
            lo = borders[i - 1] if i > 0 else -1.0
            hi = borders[i + 1] if i + 1 < len(borders) else 1.0
            for value in np.linspace(lo, hi, grid_size)[1:-1]:
                candidate = borders.copy()
                candidate[i] = value
                score = spread(candidate)
                if score < best - 1e-12:
                    best, borders, improved = score, candidate, True
        if not improved:
            break
    return borders


def _strictly_increasing(borders, gap=1e-3):
    borders = np.clip(np.asarray(borders, dtype=float), -1.0 + gap, 1.0 - gap)
    for i in range(1, len(borders)):
        borders[i] = max(borders[i], borders[i - 1] + gap)
    return borders


def lambda_to_x(borders):
    """Borders on the Laplacian scale λ ∈ [0, 2] to the shifted scale x = λ − 1 ∈ [−1, 1]."""
    return _strictly_increasing(np.asarray(borders, dtype=float) - 1.0)


# ----------------------------------------------------------------------------------------------
# Exact path
# ----------------------------------------------------------------------------------------------
def exact_decomposition(laplacian_dense, signal, n_bands):
    """Exact equal-energy eigen-bands: (bands list, borders on the x-scale, eigen data).

    ``laplacian_dense``: L̃ as a dense (N × N) tensor. Band b projects onto the eigenvectors whose
    eigenvalues fall between the points where the cumulative spectral energy crosses (b−1)/M and b/M.
    """
    evals, evecs = torch.linalg.eigh(laplacian_dense.double())
    return exact_decomposition_from_eigen(evals, evecs, signal, n_bands)


def exact_projectors(evals, evecs, cuts, prefilter=None, dtype=torch.float32):
    """Dense band operators U_b diag(g(x)) U_bᵀ (prefilter g as Chebyshev coefficients in x)."""
    weights = torch.ones_like(evals)
    if prefilter is not None:
        weights = torch.as_tensor(npcheb.chebval(evals.cpu().numpy(), prefilter), dtype=evals.dtype)
    ops = []
    for b in range(len(cuts) - 1):
        idx = slice(int(cuts[b]), int(cuts[b + 1]))
        u = evecs[:, idx]
        ops.append(((u * weights[idx]) @ u.T).to(dtype))
    return ops


# ----------------------------------------------------------------------------------------------
# The decomposition a model holds
# ----------------------------------------------------------------------------------------------
class SpectralBands:
    """Band decomposition over one graph, calibrated on a signal and applied to many.

    Args:
        norm_adj: symmetric-normalised adjacency Â (torch sparse, N × N).
        n_bands: M.
        order: Chebyshev order K of the scalable path.
        method: ``energy`` (energy-balanced borders), ``fixed`` (``fixed_borders`` given in λ) or
            ``energy_or_fixed_chebyshev`` (the released code's rule: exact equal-energy bands on graphs with at most
            ``exact_max_nodes`` nodes, else its fixed Chebyshev filters, :func:`released_band_coefficients`,
            polynomial, no borders).
        exact_max_nodes: graphs with at most this many nodes use the exact eigendecomposition.
        prefilter: Chebyshev coefficients (in L̃) of a polynomial g applied before banding, or None.
    """

    def __init__(self, norm_adj, n_bands, order, method="energy", exact_max_nodes=0,
                 fixed_borders=None, prefilter=None, damping=True):
        if method not in BAND_METHODS:
            raise ValueError(f"band method must be one of {BAND_METHODS}, got {method!r}")
        if n_bands < 1:
            raise ValueError(f"n_bands must be >= 1, got {n_bands}")
        self.laplacian = shifted_laplacian(norm_adj)
        self.n_nodes = norm_adj.shape[0]
        self.n_bands, self.order, self.method, self.damping = n_bands, order, method, damping
        self.exact = self.n_nodes <= exact_max_nodes
        self.prefilter = None if prefilter is None else np.asarray(prefilter, dtype=float)
        if method == "fixed":
            if fixed_borders is None or len(fixed_borders) != n_bands - 1:
                raise ValueError(f"fixed split needs {n_bands - 1} borders, got {fixed_borders}")
            self.borders = lambda_to_x(fixed_borders)
        else:
            self.borders = np.linspace(-1.0, 1.0, n_bands + 1)[1:-1]
        self._eigen = None
        self._operators = None
        self.coefficients = None
        self.shares = None  # ⟨X, B_b⟩ / ‖X‖² of the calibration signal (they sum to 1)
        self._refresh()

    # -- calibration -------------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, signal):
        """Place the borders so that each band of ``signal`` (already prefiltered) carries ~1/M of
        its energy; returns the band shares ⟨X, B_b⟩ as fractions of ‖X‖² (they sum to 1)."""
        if self.exact:
            if self._eigen is None:
                dense = self.laplacian.to_dense()  # small graphs only
                evals, evecs = torch.linalg.eigh(dense.double())
                self._eigen = (evals, evecs)
            evals, evecs = self._eigen
            if self.method != "fixed":  # energy, or the released rule's small-graph path
                _, borders, (_, _, cuts) = exact_decomposition_from_eigen(evals, evecs, signal, self.n_bands)
                self.borders = borders
                self._cuts = cuts
            else:
                self._cuts = cuts_from_borders(evals, self.borders)
            self._refresh()
            coeff = evecs.T @ signal.double()
            energy = (coeff ** 2).sum(1)
            fractions = [float(energy[int(self._cuts[b]):int(self._cuts[b + 1])].sum() / energy.sum().clamp_min(1e-30))
                         for b in range(self.n_bands)]
            self.shares = np.array(fractions)
            return self.shares
        basis = chebyshev_basis(self.laplacian, signal, max(self.order, self.coefficients.shape[1] - 1))
        gram = gram_matrix(basis)
        if self.method == "energy":
            start = energy_quantiles(gram[0], self.n_bands)  # μ_k = ⟨X, T_k X⟩ = G_{0k}
            self.borders = balance_borders(gram, start, self.order, self.damping)
        self._refresh()
        coefficients = self.coefficients
        self.shares = band_shares(gram, coefficients) / max(gram[0, 0], 1e-30)
        return self.shares

    def _refresh(self):
        if self.method == "energy_or_fixed_chebyshev" and not self.exact:
            self.coefficients = released_band_coefficients(self.n_bands, self.order)
        else:
            self.coefficients = band_coefficients(self.borders, self.order, self.damping)
        self.filter_coefficients = compose(self.coefficients, self.prefilter)
        self._operators = None
        if self.exact and self._eigen is not None:
            if not hasattr(self, "_cuts"):
                self._cuts = cuts_from_borders(self._eigen[0], self.borders)
            self._operators = exact_projectors(*self._eigen, self._cuts, self.prefilter)

    def set_borders(self, borders):
        """Borders on the x-scale (e.g. restored from a checkpoint)."""
        self.borders = np.asarray(borders, dtype=float)
        if self.exact and self._eigen is not None:
            self._cuts = cuts_from_borders(self._eigen[0], self.borders)
        self._refresh()

    @property
    def adaptive(self):
        """Whether calibration moves the borders (an equal-energy split), so recalibrating can change the bands."""
        return self.method == "energy" or (self.method == "energy_or_fixed_chebyshev" and self.exact)

    # -- application -------------------------------------------------------------------------
    @property
    def degree(self):
        """Sparse products needed per application (basis degree)."""
        return self.filter_coefficients.shape[1] - 1

    def basis(self, x, laplacian=None):
        """What :meth:`bands` combines: the Chebyshev basis (scalable) or x itself (exact). ``laplacian``:
        another shifted Laplacian on the same nodes (e.g. of a pruned training graph) for the scalable
        path; the exact path always uses its own eigen-projectors."""
        if self.exact:
            return [x]
        return chebyshev_basis(self.laplacian if laplacian is None else laplacian, x, self.degree)

    def bands(self, x, rows=None, basis=None, laplacian=None):
        """The M bands of g(L̃)x (only ``rows`` if given); they sum to g(L̃)x exactly."""
        basis = self.basis(x, laplacian) if basis is None else basis
        if self.exact:
            if self._eigen is None:  # first use: the eigen-decomposition and projectors (calibrate and set_borders keep them)
                self._ensure_exact()
            ops = self._operators
            return [(op if rows is None else op[rows]) @ basis[0] for op in ops]
        return combine(basis, self.filter_coefficients, rows)

    def stacked_bands(self, x, rows=None, laplacian=None):
        """The bands as one (n, M, D) tensor (rows of ``rows`` if given): the gathered basis terms times
        the (M × (K+1)) coefficient matrix in one product (the same values as :meth:`bands`)."""
        basis = self.basis(x, laplacian)
        if self.exact:
            return torch.stack(self.bands(x, rows, basis), 1)
        k = self.filter_coefficients.shape[1]
        terms = torch.stack([t if rows is None else t[rows] for t in basis[:k]], 1)  # (n, K+1, D)
        coefficients = torch.as_tensor(self.filter_coefficients, dtype=terms.dtype, device=terms.device)
        return torch.matmul(coefficients, terms)  # (M, K+1) @ (n, K+1, D) -> (n, M, D)

    def _ensure_exact(self):
        if self._eigen is None:
            evals, evecs = torch.linalg.eigh(self.laplacian.to_dense().double())
            self._eigen = (evals, evecs)
        self._cuts = cuts_from_borders(self._eigen[0], self.borders)
        self._operators = exact_projectors(*self._eigen, self._cuts, self.prefilter)

    def borders_lambda(self):
        return np.asarray(self.borders) + 1.0


def cuts_from_borders(evals, borders):
    values = evals.cpu().numpy()
    inner = [int(np.searchsorted(values, b)) for b in borders]
    return np.array([0] + inner + [len(values)])


_REPEATED = 1e-9  # eigenvalues closer than this (on [0, 2]) are one repeated eigenvalue: eigh's rounding is ~1e-13


def _off_repeated_eigenvalue(evals, cumulative, cut, share):
    """``cut`` (bands take evals[:cut] and evals[cut:]) moved to the nearer end, in cumulative energy, of the
    repeated eigenvalue it would split: a cut inside an eigenspace would depend on the basis eigh returned."""
    values = evals.cpu().numpy()
    if cut <= 0 or cut >= len(values) or values[cut] - values[cut - 1] > _REPEATED:
        return cut
    lo = int(np.searchsorted(values, values[cut] - _REPEATED, side="left"))
    hi = int(np.searchsorted(values, values[cut - 1] + _REPEATED, side="right"))
    energy_at = lambda c: 0.0 if c == 0 else float(cumulative[c - 1])
    return lo if abs(energy_at(lo) - share) <= abs(energy_at(hi) - share) else hi


def exact_decomposition_from_eigen(evals, evecs, signal, n_bands):
    coeff = evecs.T @ signal.double()
    energy = (coeff ** 2).sum(1)
    cumulative = torch.cumsum(energy, 0) / energy.sum().clamp_min(1e-30)
    cuts = [0]
    for b in range(1, n_bands):
        cut = int(torch.searchsorted(cumulative, torch.tensor(b / n_bands, dtype=cumulative.dtype)).item()) + 1
        cuts.append(_off_repeated_eigenvalue(evals, cumulative, min(cut, len(evals)), b / n_bands))
    cuts.append(len(evals))
    cuts = np.maximum.accumulate(np.minimum(cuts, len(evals)))
    borders = []
    for b in range(1, n_bands):
        i = int(cuts[b])
        if i <= 0:
            borders.append(float(evals[0]) - 1e-6)
        elif i >= len(evals):
            borders.append(float(evals[-1]) + 1e-6)
        else:
            borders.append(float((evals[i - 1] + evals[i]) / 2))
    bands = []
    for b in range(n_bands):
        idx = slice(int(cuts[b]), int(cuts[b + 1]))
        bands.append((evecs[:, idx] @ coeff[idx]).to(signal.dtype))
    return bands, np.array(borders), (evals, evecs, cuts)
