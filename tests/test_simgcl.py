"""SimGCL (recbole_spectral.model.general.simgcl) and its noise block: forward and loss against a dense,
independent float64 reference written from the paper's equations (Yu et al., SIGIR 2022, eqs. 7-8; SELFRec's
loss), with the uniform draws of the two views fixed; the noise block on its own."""
import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_spectral.layers.contrastive import sign_aligned_noise
from recbole_spectral.model.general import simgcl as simgcl_module
from recbole_spectral.model.general.simgcl import SimGCL
from tests import reference as ref
from tests.helpers import TinyMultiModalDataset, model_config, pairwise_batch

N_USERS, N_ITEMS = TinyMultiModalDataset.n_users, TinyMultiModalDataset.n_items


def build(**overrides):
    torch.manual_seed(0)
    dataset = TinyMultiModalDataset()
    return SimGCL(model_config("SimGCL", **{"embedding_size": 8, **overrides}), dataset), dataset


def test_noise_moves_every_row_by_eps_inside_its_hyperoctant():
    x = torch.tensor([[3.0, -4.0, 0.5], [-1.0, -2.0, 2.0]])
    uniform = torch.tensor([[0.3, 0.4, 0.0], [1.0, 1.0, 1.0]])
    out = sign_aligned_noise(x, 0.1, uniform)
    expected = x + 0.1 * torch.tensor([[0.6, -0.8, 0.0], [-1.0, -1.0, 1.0]] / np.array([[1.0], [np.sqrt(3.0)]]),
                                      dtype=torch.float32)
    torch.testing.assert_close(out, expected)
    drawn = sign_aligned_noise(x, 0.25) - x  # drawn noise: norm eps, same signs as x
    torch.testing.assert_close(drawn.norm(dim=1), torch.full((2,), 0.25))
    assert bool((torch.sign(drawn) * torch.sign(x) >= 0).all())


def simgcl_reference(p, dataset, b, uniforms, c):
    """Scores and loss from the equations: E^(l) = Â E^(l−1), e = mean of E^(1..L); a view adds
    ε·sign(H)⊙normalize(U) after every layer (U given); BPR + λ_reg (‖e_u‖_F + ‖e_p‖_F over the batch rows)
    + λ_cl (InfoNCE of the distinct users + of the distinct positives between the two views, mean, cosine/τ)."""
    adj = ref.bipartite(ref.binary(dataset.inter_matrix()))
    ego = np.concatenate([p["user_embedding"], p["item_embedding"]])

    def encoder(noise=None):
        layers, cur = [], ego
        for l in range(c["n_layers"]):
            cur = adj @ cur
            if noise is not None:
                cur = cur + c["eps"] * np.sign(cur) * ref.normalize(noise[l])
            layers.append(cur)
        e = np.mean(layers, 0)
        return e[:N_USERS], e[N_USERS:]

    def nce(a, b_):
        scores = ref.normalize(a) @ ref.normalize(b_).T / c["temperature"]
        logp = scores - scores.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        return -np.diag(logp).mean()

    users, items = encoder()
    u, i, j = b["user_id"].numpy(), b["item_id"].numpy(), b["neg_item_id"].numpy()
    eu, ep, en = users[u], items[i], items[j]
    loss = ref.bpr((eu * ep).sum(1), (eu * en).sum(1)) + c["reg_weight"] * (np.linalg.norm(eu) + np.linalg.norm(ep))
    (u1, i1), (u2, i2) = encoder(uniforms[: c["n_layers"]]), encoder(uniforms[c["n_layers"]:])
    uu, ii = np.unique(u), np.unique(i)
    loss += c["cl_weight"] * (nce(u1[uu], u2[uu]) + nce(i1[ii], i2[ii]))
    return users @ items.T, loss


@pytest.mark.parametrize("options", [{}, {"n_layers": 3, "eps": 0.3, "temperature": 0.5, "cl_weight": 0.7},
                                     {"cl_weight": 0.0, "reg_weight": 0.01}])
def test_forward_and_loss_equal_the_reference(options, monkeypatch):
    model, dataset = build(**options)
    c = {**model_config("SimGCL"), **options}
    ref.randomise(model, std=0.3)
    b = pairwise_batch(N_USERS, N_ITEMS, 24, 3)
    g = torch.Generator().manual_seed(5)
    uniforms = [torch.rand(N_USERS + N_ITEMS, 8, generator=g) for _ in range(2 * c["n_layers"])]
    draws = iter(uniforms)
    monkeypatch.setattr(simgcl_module, "sign_aligned_noise", lambda x, eps: sign_aligned_noise(x, eps, next(draws)))
    scores, loss = simgcl_reference(ref.weights(model), dataset, b, [u.double().numpy() for u in uniforms], c)

    model.eval()
    with torch.no_grad():
        full = model.full_sort_predict(Interaction({"user_id": torch.arange(N_USERS)})).view(N_USERS, N_ITEMS)
    ref.assert_close(full, scores, rtol=1e-4, atol=1e-6)
    model.train()
    ref.assert_close(model.calculate_loss(b), loss, rtol=1e-4, atol=1e-6)
    assert next(draws, None) is None or c["cl_weight"] == 0  # both views drawn, each layer once


def test_views_differ_by_draw_and_evaluation_is_deterministic():
    model, _ = build()
    with torch.no_grad():
        main, view1, view2 = model.encode(), model.encode(perturbed=True), model.encode(perturbed=True)
    assert not torch.allclose(view1[0], view2[0]) and not torch.allclose(view1[0], main[0])
    model.eval()
    users = Interaction({"user_id": torch.arange(4)})
    torch.testing.assert_close(model.full_sort_predict(users), model.full_sort_predict(users))


def test_contrastive_term_reaches_every_embedding_row_of_the_batch():
    model, _ = build(reg_weight=0.0)
    b = pairwise_batch(N_USERS, N_ITEMS, 24, 3)
    model.calculate_loss(b).backward()
    assert float(model.user_embedding.grad.abs().sum()) > 0 and float(model.item_embedding.grad.abs().sum()) > 0
