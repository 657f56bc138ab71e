"""InfoNCE (LGMRec's and SMORE's contrastive term): the fused log-sum-exp gives the textbook value and gradient."""
import math

import pytest
import torch
import torch.nn.functional as F

from recbole_spectral.layers.contrastive import info_nce


def reference(anchor, positive, candidates, tau, reduction):
    a, p = F.normalize(anchor, dim=1), F.normalize(positive, dim=1)
    c = p if candidates is None else F.normalize(candidates, dim=1)
    losses = torch.logsumexp(a @ c.T / tau, dim=1) - (a * p).sum(1) / tau
    return losses.sum() if reduction == "sum" else losses.mean()


def test_two_orthogonal_rows_have_the_closed_form_value():
    # â0 = p̂0 = e0, â1 = p̂1 = e1: ℓ_n = log(e^{1/τ} + e^0) − 1/τ for both rows
    x = torch.eye(2, dtype=torch.float64)
    tau = 0.5
    expected = 2 * (math.log(math.exp(2.0) + 1.0) - 2.0)
    assert info_nce(x, x, tau=tau).item() == pytest.approx(expected, rel=1e-12)
    assert info_nce(x, x, tau=tau, reduction="mean").item() == pytest.approx(expected / 2, rel=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("with_candidates", [True, False])
def test_value_and_gradients_match_the_unfused_formula(reduction, with_candidates):
    g = torch.Generator().manual_seed(0)
    anchor, positive = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    candidates = torch.randn(9, 4, generator=g) * 3 if with_candidates else None
    inputs = [t.double().requires_grad_() for t in (anchor, positive) + ((candidates,) if with_candidates else ())]
    fused = info_nce(*inputs[:2], inputs[2] if with_candidates else None, tau=0.2, reduction=reduction)
    grads = torch.autograd.grad(fused, inputs)
    ref = reference(*inputs[:2], inputs[2] if with_candidates else None, 0.2, reduction)
    ref_grads = torch.autograd.grad(ref, inputs)
    torch.testing.assert_close(fused, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_gradcheck_and_large_scores_stay_finite():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, x.flip(0), y, tau=0.3), (a, c))
    # τ = 1e-3: scores up to 1000, exp would overflow without the row max
    assert torch.isfinite(info_nce(a.float(), a.float(), c.float(), tau=1e-3))


def test_unknown_reduction_is_refused():
    x = torch.eye(2)
    with pytest.raises(ValueError, match="reduction"):
        info_nce(x, x, tau=0.2, reduction="none")
