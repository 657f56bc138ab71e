"""G-HSNO: the gated hyper-spectral neural operator fusing M spectral bands (SSR Stage 3,
arXiv 2512.01372), plus SSR's band masking (Stage 2).

For one node with band representations H_1..H_M ∈ R^D (rows of the bands of the signal):

    A   = softmax_row(Q Kᵀ / (√r τ))                  band-mixing kernel, Q, K ∈ R^{M×r} (CP factors)
    G_b = 1 + Σ_ρ (Q_{bρ}/√r) V_ρ                     per-rank diagonal gain filters V ∈ R^{r×D}
    Y_b = G_b ⊙ Σ_{b'} A_{bb'} H_{b'}                 mixed, filtered band b
    γ   = softmax_b(⟨Y_b, u⟩ + β_b)                    node-dependent band gate (u ∈ R^D, β ∈ R^M)
    z   = ‖Σ_b H_b‖ · y / ‖y‖,  y = Σ_b γ_b Y_b        gated fusion, norm-preserving (‖z‖ = ‖Σ_b H_b‖)

Regulariser (kernel and gains): R = ‖Q Kᵀ‖²_F / M² + ‖V‖²_F / (r D), small when the kernel mixes
bands uniformly and the gains stay at one.

Parameters: 2·M·r (Q, K) + r·D (V) + D + M (gate) — the rank r changes the count by 2M + D per rank.
"""
import math

import torch
import torch.nn as nn


class GHSNO(nn.Module):
    """Gated hyper-spectral operator over M bands of width D with CP rank r and temperature τ."""

    def __init__(self, n_bands, dim, rank, temperature, eps=1e-12):
        super().__init__()
        if rank < 1:
            raise ValueError(f"G-HSNO rank must be >= 1, got {rank}")
        self.n_bands, self.dim, self.rank, self.temperature, self.eps = n_bands, dim, rank, temperature, eps
        self.query = nn.Parameter(torch.randn(n_bands, rank) * 0.1)
        self.key = nn.Parameter(torch.randn(n_bands, rank) * 0.1)
        self.gains = nn.Parameter(torch.zeros(rank, dim))
        self.gate_vector = nn.Parameter(torch.randn(dim) * (1.0 / math.sqrt(dim)))
        self.gate_bias = nn.Parameter(torch.zeros(n_bands))

    def kernel(self):
        """A = softmax(Q Kᵀ / (√r τ)), rows sum to one (M × M)."""
        return torch.softmax(self.query @ self.key.T / (math.sqrt(self.rank) * self.temperature), dim=1)

    def band_gains(self):
        """G = 1 + (Q/√r) V  (M × D)."""
        return 1.0 + (self.query / math.sqrt(self.rank)) @ self.gains

    def forward(self, bands, keep=None):
        """``bands``: (n, M, D). ``keep``: optional (n, M) multiplicative band mask (Stage 2).
        Returns (n, D) fused representations and the gate (n, M)."""
        if keep is not None:
            bands = bands * keep.unsqueeze(-1)
        n, m, d = bands.shape  # mixed[n, b] = Σ_c A[b, c] bands[n, c], as one GEMM
        mixed = (bands.transpose(1, 2).reshape(n * d, m) @ self.kernel().T).reshape(n, d, m).transpose(1, 2)
        mixed = mixed * self.band_gains()
        logits = mixed @ self.gate_vector + self.gate_bias
        if keep is not None:  # a dropped band cannot win the gate
            logits = logits.masked_fill(keep <= 0, float("-inf"))
        gate = torch.softmax(logits, dim=1)
        fused = (gate.unsqueeze(-1) * mixed).sum(1)
        target_norm = bands.sum(1).norm(dim=1, keepdim=True)
        fused = fused * target_norm / fused.norm(dim=1, keepdim=True).clamp_min(self.eps)
        return fused, gate

    def regularizer(self):
        m = self.n_bands
        return (self.query @ self.key.T).pow(2).sum() / (m * m) + self.gains.pow(2).sum() / (self.rank * self.dim)


def band_keep_mask(n_rows, n_bands, drop_prob, generator=None, device=None):
    """Stage 2 mask: each band of each row dropped with probability p, at least one band kept per row
    (a row that lost every band keeps one chosen uniformly), kept bands scaled by 1/(1−p)."""
    if drop_prob <= 0 or n_bands == 1:
        return torch.ones(n_rows, n_bands, device=device)
    keep = (torch.rand(n_rows, n_bands, generator=generator, device=device) >= drop_prob).float()
    empty = keep.sum(1) == 0
    if empty.any():
        rescue = torch.randint(0, n_bands, (int(empty.sum()),), generator=generator, device=device)
        keep[empty.nonzero(as_tuple=True)[0], rescue] = 1.0
    return keep / (1.0 - drop_prob)


class ReleasedHSNO(nn.Module):
    """The released SSR code's Stage-3 operator for one node type (an MMRec-based library,
    src/models/ssr.py: ``HyperSpectralOperator`` followed by ``GraphSpectWeightModule``; the released model
    holds one for users and one for items). For a node with bands H_1..H_M ∈ R^D and context c ∈ R^D (the
    node's un-banded signal Σ_b H_b, before masking):

        A      = softmax_column(Q Kᵀ / √r)                 mixing, Σ_m A_{mn} = 1 (τ = 1, softmax over dim 0)
        Y_m    = Σ_n A_{mn} H_n                              mixed bands
        G      = Σ_ρ softmax(w)_ρ exp(0.1 · tanh(V_ρ))       bounded diagonal gains ∈ [e^−0.1, e^0.1] (r × D)
        Y_m   ← sigmoid(MLP_s(c)) ⊙ G ⊙ Y_m                 context scale (D → D/4 → D, ReLU, sigmoid)
        β      = 1 + γ · tanh(MLP_w([c, mean_m Y_m]))        band weights, γ learned from 0.1 (±10 % at start)
        z      = (Σ_m β_m Y_m) · ‖Σ_m Y_m‖ / ‖Σ_m β_m Y_m‖   norm kept (the released "aggr" output)

    Regulariser: mean((Q Kᵀ/√r)²) + mean(V²). The released class also builds an encoder, a frequency
    gate, a rank router and an output projection that its forward never uses; they are left out here.

    ``context_scale=False`` (beyond the released code) drops the context scale, the one factor not bounded
    near 1 (each dimension of each node scaled by a learned value in (0, 1)): the operator then stays within
    the bounded gains and band weights of the identity.
    """

    def __init__(self, n_bands, dim, rank=4, gain_bound=0.1, weight_range=0.1, eps=1e-6, context_scale=True):
        super().__init__()
        self.n_bands, self.dim, self.rank, self.gain_bound, self.eps = n_bands, dim, rank, gain_bound, eps
        self.query = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_bands, rank)))
        self.key = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_bands, rank)))
        self.log_gain = nn.Parameter(torch.randn(rank, dim))
        self.rank_weight = nn.Parameter(torch.zeros(rank))
        hidden = max(dim // 4, 1)
        self.scale_mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim), nn.Sigmoid()) if context_scale else None
        self.weight_mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, n_bands))
        nn.init.normal_(self.weight_mlp[-1].weight, mean=0.0, std=1e-3)
        nn.init.zeros_(self.weight_mlp[-1].bias)
        self.weight_range = nn.Parameter(torch.tensor(float(weight_range)))

    def kernel_logits(self):
        return self.query @ self.key.T / math.sqrt(self.rank)

    def kernel(self):
        """A with columns summing to one (M × M)."""
        return torch.softmax(self.kernel_logits(), dim=0)

    def gains(self):
        """Σ_ρ softmax(w)_ρ exp(0.1 tanh V_ρ) (D)."""
        return torch.softmax(self.rank_weight, 0) @ torch.exp(self.gain_bound * torch.tanh(self.log_gain))

    def forward(self, bands, keep=None):
        """``bands``: (n, M, D); ``keep``: optional (n, M) mask. Returns (n, D) and the band weights (n, M)."""
        return self.forward_many(bands, [keep])[0]

    def forward_many(self, bands, keeps):
        """The operator on ``bands`` under each mask of ``keeps`` (None = unmasked), sharing the context
        scale (it depends on the unmasked signal only). Never materialises the (n, M, D) mixed bands: the
        columns of A sum to one and the gains and context scale s are the same for every band, so
        Σ_m Y_m = s ⊙ Σ_k keep_k H_k and Σ_m β_m Y_m = s ⊙ Σ_k ((βA)_k keep_k) H_k."""
        n, m, _ = bands.shape
        context = bands.sum(1)
        scale = self.gains() * self.scale_mlp(context) if self.scale_mlp is not None else self.gains()
        kernel = self.kernel()
        out = []
        for keep in keeps:
            if keep is None:
                summed = context
            else:
                summed = torch.bmm(keep.unsqueeze(1), bands).squeeze(1)
            pre = scale * summed  # Σ_m Y_m
            logits = self.weight_mlp(torch.cat([context, pre / m], -1))
            weights = 1.0 + self.weight_range * torch.tanh(logits)
            coefficients = weights @ kernel  # (βA)_k
            if keep is not None:
                coefficients = coefficients * keep
            weighted = scale * torch.bmm(coefficients.unsqueeze(1), bands).squeeze(1)
            ratio = (pre.norm(dim=1, keepdim=True) + self.eps) / (weighted.norm(dim=1, keepdim=True) + self.eps)
            out.append((weighted * ratio, weights))
        return out

    def regularizer(self):
        return self.kernel_logits().pow(2).mean() + self.log_gain.pow(2).mean()
