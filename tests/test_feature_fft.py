"""Feature-frequency filter and global-context attention blocks, on small inputs with exact answers."""
import math

import pytest
import torch

from recbole_spectral.layers.feature_fft import (
    ContextSpectralFilter,
    SpectralFilter,
    n_frequencies,
    spectral_filter,
)
from recbole_spectral.layers.multibehavior.fusion import GlobalContextAttention

D = 8  # d/2 + 1 = 5 frequencies


def test_all_ones_filter_is_the_identity():
    x = torch.randn(6, D)
    torch.testing.assert_close(spectral_filter(x, torch.ones(5, dtype=torch.cfloat)), x)
    torch.testing.assert_close(SpectralFilter(D)(x), x)  # a new filter starts at all-ones


def test_keeping_only_the_zero_frequency_gives_the_row_mean():
    x = torch.tensor([[1.0, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 8, 0, 0, 0, 0]])
    dc_only = torch.tensor([1, 0, 0, 0, 0], dtype=torch.cfloat)
    torch.testing.assert_close(spectral_filter(x, dc_only), torch.tensor([[4.5] * 8, [1.0] * 8]))


def test_a_linear_phase_filter_shifts_features_circularly_and_keeps_energy():
    x = torch.randn(3, D)
    k = torch.arange(5)
    shift_by_one = torch.exp(-2j * math.pi * k / D).to(torch.cfloat)
    y = spectral_filter(x, shift_by_one)
    torch.testing.assert_close(y, torch.roll(x, shifts=1, dims=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y.norm(), x.norm())  # orthonormal transform, unit-modulus filter


def test_per_row_filters_apply_row_by_row():
    x = torch.randn(2, D)
    w = torch.stack([torch.ones(5), torch.zeros(5)]).to(torch.cfloat)
    y = spectral_filter(x, w)
    torch.testing.assert_close(y[0], x[0])
    torch.testing.assert_close(y[1], torch.zeros(D))


def test_odd_dimension_is_refused():
    assert n_frequencies(64) == 33
    with pytest.raises(ValueError, match="even dimension, got 7"):
        SpectralFilter(7)


def test_context_filter_starts_static_and_then_differs_per_node():
    x, g = torch.randn(4, D), torch.randn(4, D)
    f = ContextSpectralFilter(D)
    with torch.no_grad():
        f.weight.copy_(torch.randn(5, 2))
    static = spectral_filter(x, f.complex_weight())
    torch.testing.assert_close(f(x, g), static)  # zero modulation: the static filter
    with torch.no_grad():
        f.modulation.weight.normal_()
    y = f(x, g)
    assert not torch.allclose(y, static)
    # node 0 alone gives the same row: the filter depends on that node's own context only
    torch.testing.assert_close(f(x[:1], g[:1]), y[:1])
    y.sum().backward()
    assert f.weight.grad.abs().sum() > 0 and f.modulation.weight.grad.abs().sum() > 0
    # no context: the static filter, whatever the modulation
    torch.testing.assert_close(f(x), static)
    torch.testing.assert_close(f(x, None), static)


def test_feature_attention_with_uniform_scores_is_the_mean_of_the_views():
    att = GlobalContextAttention(D, n_views=3, hidden_size=4, mode="feature")
    for score in att.score:
        torch.nn.init.zeros_(score.weight)  # equal scores -> softmax = 1/d per feature
    views = [torch.randn(5, D) for _ in range(3)]
    torch.testing.assert_close(att(torch.randn(5, D), views), torch.stack(views).mean(0))


def test_view_attention_weights_are_a_distribution_over_views_per_node():
    att = GlobalContextAttention(D, n_views=3, hidden_size=4, mode="view")
    query = torch.randn(5, D)
    w = att.weights(query)
    assert w.shape == (5, 3)
    torch.testing.assert_close(w.sum(1), torch.ones(5))
    views = [torch.full((5, D), float(v)) for v in range(3)]
    torch.testing.assert_close(att(query, views), (w * torch.arange(3.0)).sum(1, keepdim=True).expand(5, D))


def test_unknown_attention_mode_is_refused():
    with pytest.raises(ValueError, match="attention mode"):
        GlobalContextAttention(D, 2, 4, mode="both")
