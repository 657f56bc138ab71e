"""G-HSNO operator and band masking (recbole_spectral.layers.multimodal.hsno); the released operator's defaults
and initialisation (its equations: tests/test_reference_blocks.py)."""
import numpy as np
import pytest
import torch

from recbole_spectral.layers.multimodal.hsno import GHSNO, ReleasedHSNO, band_keep_mask
from tests import reference as ref


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


def test_masking_one_band_or_p_zero_keeps_everything_and_draws_nothing():
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert torch.equal(band_keep_mask(4, 1, 0.5, generator=generator), torch.ones(4, 1))
    assert torch.equal(band_keep_mask(4, 3, 0.0, generator=generator), torch.ones(4, 3))
    assert torch.equal(generator.get_state(), state)
    assert bool((band_keep_mask(1000, 2, 0.5, generator=generator) == 0).any())  # two bands are masked


def test_masking_draws_from_the_given_generator_only():
    torch.manual_seed(1)
    global_state = torch.get_rng_state()
    first = band_keep_mask(2000, 3, 0.9, generator=torch.Generator().manual_seed(5))  # ~73 % of rows rescued
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(band_keep_mask(2000, 3, 0.9, generator=torch.Generator().manual_seed(5)), first)


def test_a_row_that_lost_every_band_keeps_one_chosen_uniformly():
    keep = band_keep_mask(3000, 3, 0.999999, generator=torch.Generator().manual_seed(2)) > 0
    assert bool(keep.sum(1).eq(1).all())
    counts = keep.sum(0)
    assert bool((counts > 850).all()), counts  # each band about 1,000 times


def test_ghsno_rank_one_works_and_rank_zero_is_refused():
    assert GHSNO(3, 8, 1, 0.2)(torch.randn(2, 3, 8))[0].shape == (2, 8)
    with pytest.raises(ValueError, match="G-HSNO rank must be >= 1, got 0"):
        GHSNO(3, 8, 0, 0.2)


def test_ghsno_starts_near_uniform_mixing_unit_gains_and_a_unit_scale_gate():
    torch.manual_seed(0)
    operator = GHSNO(64, 256, 64, 0.2)
    for factor in (operator.query, operator.key):  # N(0, 0.1²): Q Kᵀ small, the kernel near uniform
        assert 0.09 < float(factor.std()) < 0.11
    assert float(operator.gains.abs().max()) == 0.0 and float(operator.gate_bias.abs().max()) == 0.0
    assert 0.85 < float(operator.gate_vector.std()) * 256 ** 0.5 < 1.15  # N(0, 1/D)


def test_released_operator_defaults_are_the_released_codes():
    operator = ReleasedHSNO(3, 8)
    assert operator.rank == 4 and operator.log_gain.shape == (4, 8)  # one gain vector per rank
    assert float(operator.weight_range) == pytest.approx(0.1)       # γ learned from 0.1
    assert operator.scale_mlp[0].out_features == operator.weight_mlp[0].out_features == 2  # D/4
    assert ReleasedHSNO(3, 4).scale_mlp[0].out_features == 1                                  # at least 1


def test_released_band_weights_start_within_a_thousandth_of_one():
    torch.manual_seed(0)
    _, weights = ReleasedHSNO(3, 16, rank=2)(torch.randn(50, 3, 16))
    assert float((weights - 1).abs().max()) < 1e-3  # last layer N(0, 1e-3²), bias 0


def test_released_operator_keeps_the_eps_of_its_norm_ratio_on_tiny_signals():
    op = ReleasedHSNO(n_bands=3, dim=8, rank=2)
    ref.randomise(op, std=0.4, seed=3)
    bands = torch.randn(6, 3, 8, generator=torch.Generator().manual_seed(2)) * 1e-7  # norms comparable to eps = 1e-6
    p = {f"op.{k}": v for k, v in ref.weights(op).items()}
    with torch.no_grad():
        fused, _ = op(bands)
    want = ref.released_hsno(p, "op", bands.double().numpy(), None)
    np.testing.assert_allclose(fused.double().numpy(), want, rtol=1e-4, atol=0)
