"""Dense, independent references for the model tests (tests/test_reference_*.py).

Everything here is float64 numpy written from the papers' and authors' equations: a reference reads a
model's *parameters* (``weights(model)``) and the dataset's raw matrices, never a model method, so a
broken forward or loss cannot agree with it. The rFFT here is numpy's, not torch's.
"""
import numpy as np
import torch


def weights(model):
    """{name: float64 array} of every parameter and buffer of ``model``."""
    return {k: v.detach().double().cpu().numpy() for k, v in model.state_dict().items()}


def randomise(module, std=0.5, seed=7):
    """Add N(0, std²) noise to every parameter of ``module``: biases, gates and filters away from their init, so
    that no term of a reference hides behind a zero or an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


def binary(matrix):
    """A scipy matrix as a dense 0/1 float64 array (duplicates collapse to 1)."""
    return (np.asarray(matrix.toarray()) > 0).astype(np.float64)


def sym_norm(a):
    """D^{-1/2} A D^{-1/2} (isolated rows stay zero)."""
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    return inv[:, None] * a * inv[None, :]


def bipartite(r):
    """Â of the user-item graph of the dense binary r (users first)."""
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:] = r
    a[n_u:, :n_u] = r.T
    return sym_norm(a)


def layer_mean(a, x, n_layers):
    """(1/(L+1)) Σ_{l=0..L} A^l X."""
    out, cur = x.copy(), x
    for _ in range(n_layers):
        cur = a @ cur
        out = out + cur
    return out / (n_layers + 1)


def matrix_power_apply(a, x, n):
    for _ in range(n):
        x = a @ x
    return x


def row_mean(r):
    """D_u^{-1} R (rows of users without items stay zero)."""
    deg = r.sum(1, keepdims=True)
    return np.where(deg > 0, r / np.where(deg > 0, deg, 1.0), 0.0)


def normalize(x, eps=1e-12):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.logaddexp(0.0, x)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def linear(p, prefix, x):
    """nn.Linear with parameters ``prefix.weight`` (out × in) and, if present, ``prefix.bias``."""
    y = x @ p[f"{prefix}.weight"].T
    return y + p[f"{prefix}.bias"] if f"{prefix}.bias" in p else y


def complex_weight(w):
    """A (k, 2) real tensor of (real, imaginary) parts as a complex vector."""
    return w[..., 0] + 1j * w[..., 1]


def spectral(x, w):
    """irFFT(rFFT(x) ⊙ w) along the feature axis, orthonormal (numpy's FFT)."""
    d = x.shape[-1]
    return np.fft.irfft(np.fft.rfft(x, axis=-1, norm="ortho") * w, n=d, axis=-1, norm="ortho")


def bpr(pos, neg):
    """mean −log σ(pos − neg)."""
    return float(softplus(neg - pos).mean())


def info_nce(anchor, positive, candidates=None, tau=0.2, reduction="sum"):
    """ℓ_n = −log(exp(⟨â_n, p̂_n⟩/τ) / Σ_c exp(⟨â_n, ĉ⟩/τ)), summed or averaged."""
    a, p = normalize(anchor), normalize(positive)
    c = p if candidates is None else normalize(candidates)
    scores = a @ c.T / tau
    top = scores.max(1)
    lse = top + np.log(np.exp(scores - top[:, None]).sum(1))
    losses = lse - (a * p).sum(1) / tau
    return float(losses.sum() if reduction == "sum" else losses.mean())


def released_hsno(p, prefix, bands, keep, eps=1e-6):
    """The released Stage-3 operator (HyperSpectralOperator + GraphSpectWeightModule) per node, with the mixed
    bands materialised: A column-softmax, Y_m = Σ_n A_mn keep_n H_n, gains, context scale on c = Σ_b H_b, band
    weights β, z = Σ β_m Y_m · ‖Σ Y_m‖ / ‖Σ β_m Y_m‖."""
    q, k = p[f"{prefix}.query"], p[f"{prefix}.key"]
    rank = q.shape[1]
    a = softmax(q @ k.T / np.sqrt(rank), axis=0)
    context = bands.sum(1)
    masked = bands if keep is None else bands * keep[:, :, None]
    mixed = np.einsum("mn,vnd->vmd", a, masked)
    gains = softmax(p[f"{prefix}.rank_weight"], 0) @ np.exp(0.1 * np.tanh(p[f"{prefix}.log_gain"]))
    hidden = np.maximum(linear(p, f"{prefix}.scale_mlp.0", context), 0.0)
    scale = sigmoid(linear(p, f"{prefix}.scale_mlp.2", hidden))
    mixed = (scale * gains)[:, None, :] * mixed
    hidden = np.maximum(linear(p, f"{prefix}.weight_mlp.0", np.concatenate([context, mixed.mean(1)], 1)), 0.0)
    beta = 1.0 + p[f"{prefix}.weight_range"] * np.tanh(linear(p, f"{prefix}.weight_mlp.2", hidden))
    plain, weighted = mixed.sum(1), (beta[:, :, None] * mixed).sum(1)
    ratio = (np.linalg.norm(plain, axis=1, keepdims=True) + eps) / (np.linalg.norm(weighted, axis=1, keepdims=True) + eps)
    return weighted * ratio


def released_hsno_reg(p, prefix):
    q, k = p[f"{prefix}.query"], p[f"{prefix}.key"]
    return ((q @ k.T / np.sqrt(q.shape[1])) ** 2).mean() + (p[f"{prefix}.log_gain"] ** 2).mean()


def dense(graph):
    """A torch sparse (or FixedSparse) graph as a float64 array."""
    return graph.to_dense().double().numpy() if isinstance(graph, torch.Tensor) else graph.to_dense().double().numpy()


def assert_close(got, want, rtol=1e-5, atol=1e-6):
    got = got.detach().double().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
