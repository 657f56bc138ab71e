"""InfoNCE between two views of the same rows, the contrastive term of LGMRec, SMORE and SimGCL, and SimGCL's
noise-perturbed view (:func:`sign_aligned_noise`).

With â, p̂, ĉ the L2-normalised anchor, positive and candidate rows and τ the temperature, the loss of row n is

    ℓ_n = log Σ_c exp(⟨â_n, ĉ⟩ / τ) − ⟨â_n, p̂_n⟩ / τ

(candidates = all rows of a table, as LGMRec's released code, or the batch's positives, as SMORE's), summed or
averaged over the rows. The log-sum-exp over a (batch × candidates) score matrix is one fused autograd step:
the forward pass keeps the matrix of exp(score − row max) (computed in place) and the backward pass scales it
into the softmax, so the matrix is exponentiated once (``torch.logsumexp`` exponentiates it again in backward
and builds more temporaries of its size). Same value and gradient; about half the time of the
unfused form on CPU when the candidates are whole tables (LGMRec: 2048 × 9,308 scores per batch on TikTok).
"""
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

REDUCTIONS = ("sum", "mean")


class _LogSumExpScores(torch.autograd.Function):
    """log Σ_c exp(⟨a_n, c⟩ / τ) per row n of ``a`` (n × d) against every row of ``c`` (k × d)."""

    @staticmethod
    def forward(ctx, a, c, tau):
        scores = torch.mm(a, c.T).div_(tau)
        row_max = scores.amax(dim=1, keepdim=True)
        shifted = scores.sub_(row_max).exp_()  # in place: exp(score − row max)
        total = shifted.sum(dim=1, keepdim=True)
        ctx.save_for_backward(a, c)
        ctx.shifted, ctx.total, ctx.tau = shifted, total, tau
        return (total.log() + row_max).squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, c = ctx.saved_tensors
        # d lse_n / d score_nc = softmax_nc; score = ⟨a, c⟩ / τ
        weights = ctx.shifted * (grad.unsqueeze(1) / (ctx.total * ctx.tau))  # not in place: retain_graph works
        grad_a = torch.mm(weights, c) if ctx.needs_input_grad[0] else None
        grad_c = torch.mm(weights.T, a) if ctx.needs_input_grad[1] else None
        return grad_a, grad_c, None


def info_nce(anchor, positive, candidates=None, *, tau, reduction="sum"):
    """InfoNCE of ``anchor`` rows against their ``positive`` rows (module docstring); ``candidates``: the rows
    every anchor is scored against (default: the positives, i.e. in-batch negatives); ``tau``: the temperature
    (each model passes its own: no default)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    a, p = F.normalize(anchor, dim=1), F.normalize(positive, dim=1)
    c = p if candidates is None else F.normalize(candidates, dim=1)
    losses = _LogSumExpScores.apply(a, c, tau) - (a * p).sum(1) / tau
    return losses.sum() if reduction == "sum" else losses.mean()


def sign_aligned_noise(x, eps, uniform=None):
    """SimGCL's perturbation (Yu et al., SIGIR 2022, eq. 7): x + eps · sign(x) ⊙ normalize_rows(U), U ~ Uniform[0, 1)
    of x's shape (``uniform``: U given). Each row moves by exactly ``eps`` (where x has no zero entry), inside
    the hyperoctant of x, so a view stays near its row; two draws give two views."""
    u = torch.rand_like(x) if uniform is None else uniform
    return x + eps * torch.sign(x) * F.normalize(u, dim=-1)
