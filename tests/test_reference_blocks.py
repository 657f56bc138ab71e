"""Building blocks against dense references (tests/reference.py) or closed forms: the G-HSNO operator and its
regulariser (layers/multimodal/hsno.py, SSR Stage 3 'ours'), the released SSR operator under a band mask, SSR's
per-band InfoNCE (Stage 4) on hand-made bands, and the global-context feature attention (SpectraMB fusion,
layers/multibehavior/fusion.py) with non-zero scores."""
import math

import numpy as np
import pytest
import torch

from recbole_spectral.layers.multibehavior.fusion import GlobalContextAttention
from recbole_spectral.layers.multimodal.hsno import GHSNO, ReleasedHSNO
from recbole_spectral.model.multimodal.ssr import SSR
from tests import reference as ref
from tests.helpers import TinyMultiModalDataset, model_config


def bands_and_mask(n=6, m=3, d=5):
    g = torch.Generator().manual_seed(1)
    bands = torch.randn(n, m, d, generator=g)
    keep = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]], dtype=torch.float32)[:n] / 0.8
    return bands, keep


def ghsno_reference(p, bands, keep, temperature, eps=1e-12):
    """A = softmax_row(Q Kᵀ/(√r τ)); G_b = 1 + Σ_ρ (Q_bρ/√r) V_ρ; Y_b = G_b ⊙ Σ_b' A_bb' H_b' (H masked);
    γ = softmax_b(⟨Y_b, u⟩ + β_b) (dropped bands excluded); z = ‖Σ_b H_b‖ y/‖y‖, y = Σ_b γ_b Y_b."""
    q, k = p["query"], p["key"]
    r = q.shape[1]
    if keep is not None:
        bands = bands * keep[:, :, None]
    a = ref.softmax(q @ k.T / (math.sqrt(r) * temperature), axis=1)
    gains = 1.0 + (q / math.sqrt(r)) @ p["gains"]
    mixed = gains[None] * np.einsum("bc,ncd->nbd", a, bands)
    logits = mixed @ p["gate_vector"] + p["gate_bias"]
    if keep is not None:
        logits = np.where(keep > 0, logits, -np.inf)
    gate = ref.softmax(logits, 1)
    y = (gate[:, :, None] * mixed).sum(1)
    target = np.linalg.norm(bands.sum(1), axis=1, keepdims=True)
    return y * target / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), eps), gate


@pytest.mark.parametrize("masked", [False, True])
def test_ghsno_forward_equals_the_dense_operator(masked):
    op = GHSNO(n_bands=3, dim=5, rank=2, temperature=0.4)
    ref.randomise(op, std=0.7, seed=3)
    bands, keep = bands_and_mask()
    keep = keep if masked else None
    with torch.no_grad():
        fused, gate = op(bands, keep)
    want, want_gate = ghsno_reference(ref.weights(op), bands.double().numpy(), None if keep is None else keep.double().numpy(), 0.4)
    ref.assert_close(fused, want)
    ref.assert_close(gate, want_gate)


def test_ghsno_regulariser_is_the_kernel_and_gain_energy():
    op = GHSNO(n_bands=3, dim=5, rank=2, temperature=0.4)
    ref.randomise(op, std=0.7, seed=3)
    p = ref.weights(op)
    ref.assert_close(op.regularizer(), ((p["query"] @ p["key"].T) ** 2).sum() / 9 + (p["gains"] ** 2).sum() / (2 * 5))


@pytest.mark.parametrize("masked", [False, True])
def test_released_operator_equals_the_dense_reference_and_its_regulariser(masked):
    op = ReleasedHSNO(n_bands=3, dim=8, rank=2)
    ref.randomise(op, std=0.4, seed=3)
    g = torch.Generator().manual_seed(2)
    bands = torch.randn(6, 3, 8, generator=g)
    keep = bands_and_mask()[1] if masked else None
    p = {f"op.{k}": v for k, v in ref.weights(op).items()}
    with torch.no_grad():
        fused, _ = op(bands, keep)
    ref.assert_close(fused, ref.released_hsno(p, "op", bands.double().numpy(), None if keep is None else keep.double().numpy()))
    ref.assert_close(op.regularizer(), ref.released_hsno_reg(p, "op"))


def test_per_band_infonce_has_its_closed_form():
    """Two items, two bands, two modalities (d = 2), τ = 0.5. Every image slice is (1, 0); text slices: item 0
    band 0 and item 1 band 1 are (1, 0), the others (0, 1). Image anchors: cosines 1 or 0 (score 2 or 0) against
    the band's items and the item's other band; text anchors see three equal scores (log 3 each)."""
    torch.manual_seed(0)
    model = SSR(model_config("SSR", embedding_size=2, knn_k=3, n_bands=2, temperature=0.5, band_method="fixed",
                             fixed_band_borders=[1.0], cl_views="modalities"), TinyMultiModalDataset())
    e, o = [1.0, 0.0], [0.0, 1.0]
    text = [[e, o], [o, e]]  # text[item][band]
    bands = torch.tensor([[[9.0, -3.0, *e, *text[n][b]] for b in range(2)] for n in range(2)])  # ID slot ignored
    two = math.exp(2.0)
    image_to_text = [math.log(two + 2) - 2, math.log(2 * two + 1), math.log(2 * two + 1), math.log(two + 2) - 2]
    expected = (sum(image_to_text) + 4 * math.log(3)) / 8
    assert float(model.alignment_loss(bands)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("mode", ["feature", "view"])
def test_global_context_attention_equals_its_formula_with_non_zero_scores(mode):
    """feature: F = mean_b(d · softmax_feat(s_b) ⊙ V_b); view: F = Σ_b softmax_views(s)_b V_b;
    s_b = tanh(g W1_b + b1_b) W2_b."""
    d, n_views = 6, 3
    attention = GlobalContextAttention(d, n_views, hidden_size=4, mode=mode)
    ref.randomise(attention, std=1.0, seed=3)
    g = torch.Generator().manual_seed(5)
    query, views = torch.randn(7, d, generator=g), [torch.randn(7, d, generator=g) for _ in range(n_views)]
    p = ref.weights(attention)
    q = query.double().numpy()
    assert p["score.0.weight"].shape == ((d if mode == "feature" else 1), 4) and "score.0.bias" not in p  # W2_b, no bias
    scores = [np.tanh(ref.linear(p, f"hidden.{b}", q)) @ p[f"score.{b}.weight"].T for b in range(n_views)]
    vs = [v.double().numpy() for v in views]
    assert min(np.ptp(s) for s in scores) > 0.5  # the scores are far from uniform
    if mode == "feature":
        want = np.mean([d * ref.softmax(s, -1) * v for s, v in zip(scores, vs)], axis=0)
    else:
        alpha = ref.softmax(np.concatenate(scores, 1), 1)
        want = sum(alpha[:, [b]] * vs[b] for b in range(n_views))
    with torch.no_grad():
        ref.assert_close(attention(query, views), want)
