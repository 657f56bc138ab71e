"""G-HSNO operator and band masking (recbole_spectral.layers.multimodal.hsno)."""
import torch

from recbole_spectral.layers.multimodal.hsno import GHSNO, band_keep_mask


def test_masking_never_drops_every_band():
    generator = torch.Generator().manual_seed(0)
    keep = band_keep_mask(20_000, 3, 0.9, generator=generator)
    assert bool((keep.sum(1) > 0).all())
    values = torch.unique(keep)
    assert torch.allclose(values, torch.tensor([0.0, 1 / (1 - 0.9)]))  # dropped, or kept and rescaled
    # with p = 0.9 and 3 bands, 0.9^3 = 72.9 % of rows would lose every band without the rescue
    assert float((keep > 0).sum(1).eq(1).float().mean()) > 0.7


def test_masking_keeps_everything_when_p_is_zero():
    assert torch.equal(band_keep_mask(5, 3, 0.0), torch.ones(5, 3))


def test_rank_changes_the_parameter_count_as_expected():
    def count(rank):
        return sum(p.numel() for p in GHSNO(3, 192, rank, 0.2).parameters())

    # 2·M·r (Q, K) + r·D (V) + D + M (gate)
    assert count(4) == 2 * 3 * 4 + 4 * 192 + 192 + 3
    assert count(4) - count(2) == 2 * (2 * 3 + 192)


def test_gradients_reach_kernel_gains_and_gate():
    torch.manual_seed(0)
    operator = GHSNO(3, 16, 4, 0.2)
    bands = torch.randn(32, 3, 16)
    fused, gate = operator(bands)
    (fused * torch.randn_like(fused)).sum().backward()
    for name in ("query", "key", "gains", "gate_vector", "gate_bias"):
        grad = getattr(operator, name).grad
        assert grad is not None and float(grad.abs().sum()) > 0, name


def test_output_preserves_the_norm_of_the_band_sum_and_gate_is_a_distribution():
    torch.manual_seed(1)
    operator = GHSNO(4, 8, 2, 0.5)
    bands = torch.randn(10, 4, 8)
    fused, gate = operator(bands)
    assert torch.allclose(fused.norm(dim=1), bands.sum(1).norm(dim=1), atol=1e-5)
    assert torch.allclose(gate.sum(1), torch.ones(10), atol=1e-6)
    assert torch.allclose(operator.kernel().sum(1), torch.ones(4), atol=1e-6)


def test_a_dropped_band_gets_no_gate_weight():
    operator = GHSNO(3, 8, 2, 0.2)
    keep = torch.tensor([[1.0, 0.0, 1.0]])
    _, gate = operator(torch.randn(1, 3, 8), keep)
    assert float(gate[0, 1]) == 0.0


def test_regularizer_is_zero_at_uniform_mixing_and_unit_gains():
    operator = GHSNO(3, 8, 2, 0.2)
    with torch.no_grad():
        operator.query.zero_()
        operator.gains.zero_()
    assert float(operator.regularizer()) == 0.0
    assert torch.allclose(operator.kernel(), torch.full((3, 3), 1 / 3))
