"""The history term (beyond the papers) as a building block: its values on a hand-built case, and the same
term, switched on by ``history_term: True``, in the scores and the loss of every learned multi-behavior model."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recbole_spectral.layers.multibehavior.history_term import HistoryTerm
from recbole_spectral.model.multibehavior.crgcn import CRGCN
from recbole_spectral.model.multibehavior.mbcgcn import MBCGCN
from recbole_spectral.model.multibehavior.mule import MuLe
from recbole_spectral.model.multibehavior.spectramb import SpectraMB
from recbole_spectral.model.multibehavior.unionlightgcn import UnionLightGCN
from tests.helpers import TinyMultiBehaviorDataset, assert_term_adds_to_every_score, model_config

N_USERS, N_ITEMS = TinyMultiBehaviorDataset.n_users, TinyMultiBehaviorDataset.n_items
MODELS = [SpectraMB, CRGCN, MBCGCN, MuLe, UnionLightGCN]
SMALL = {"SpectraMB": {"embedding_size": 8, "attention_size": 4}, "MBCGCN": {"warmup_epochs": 0}}
BATCH = {"user_id": torch.tensor([1, 2, 3, 4, 5, 6]), "item_id": torch.tensor([1, 2, 3, 4, 5, 6]),
         "neg_item_id": torch.tensor([2, 3, 4, 5, 6, 7])}


def hand_term():
    # 3 users × 4 items; view: (0, 1), (1, 2), (2, 0); cart: (0, 1), (2, 3)
    view = sp.csr_matrix((np.ones(3), ([0, 1, 2], [1, 2, 0])), shape=(3, 4))
    cart = sp.csr_matrix((np.ones(2), ([0, 2], [1, 3])), shape=(3, 4))
    term = HistoryTerm([view, cart], n_users=3, init=0.5)
    with torch.no_grad():
        term.weight.copy_(torch.tensor([0.3, -0.7]))
        term.reliability.weight.copy_(torch.tensor([[0.0, 0.0], [np.log(3.0), 0.0], [0.0, -np.log(3.0)]]))
    return term


def test_the_term_starts_at_alpha_for_every_user():
    view = sp.csr_matrix(np.eye(3, 4))
    term = HistoryTerm([view, view], n_users=3, init=0.25)
    torch.testing.assert_close(term.beta(torch.arange(3)), torch.full((3, 2), 0.25))
    torch.testing.assert_close(HistoryTerm([view], n_users=3).beta(torch.arange(3)), torch.ones(3, 1))  # α = 1 by default


def test_pair_values_on_a_hand_built_case():
    # β(0) = (0.3, -0.7); β(1) = (0.3 · 2σ(ln 3) = 0.45, ...); β(2) = (0.3, -0.7 · 2σ(-ln 3) = -0.35)
    term = hand_term()
    users, items = torch.tensor([0, 0, 1, 1, 2, 2, 2]), torch.tensor([1, 2, 2, 0, 0, 3, 1])
    expected = torch.tensor([0.3 - 0.7, 0.0, 0.45, 0.0, 0.3, -0.35, 0.0])
    with torch.no_grad():
        torch.testing.assert_close(term(users, items), expected)
        rows = term.add_to_rows(torch.tensor([2, 0]), torch.ones(2, 4))
    torch.testing.assert_close(rows, torch.tensor([[1.3, 1.0, 1.0, 0.65], [1.0, 0.6, 1.0, 1.0]]))


def build(cls, **overrides):
    torch.manual_seed(0)
    return cls(model_config(cls.__name__, **{**SMALL.get(cls.__name__, {}), **overrides}), TinyMultiBehaviorDataset())


def with_and_without(cls):
    """The model with the term (random α, ρ) and the same weights without it."""
    on, off = build(cls, history_term=True), build(cls, history_term=False)
    with torch.no_grad():
        for p in on.parameters():
            p.normal_(std=0.3)
    off.load_state_dict({k: v for k, v in on.state_dict().items() if not k.startswith("history_term.")})
    return on, off


def dense_term(model):
    data = TinyMultiBehaviorDataset()
    term = model.history_term  # β_b(u) = α_b · 2σ(ρ_ub), from the parameters
    beta = (term.weight * 2 * torch.sigmoid(term.reliability.weight)).detach()
    return sum(beta[:, [k]] * torch.tensor(data.behavior_matrix(b).toarray()) for k, b in enumerate(["view", "cart"]))


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_model_adds_the_term_to_its_scores(cls):
    on, off = with_and_without(cls)
    on.eval(), off.eval()
    assert_term_adds_to_every_score(on, off, dense_term(on), N_USERS, N_ITEMS)


@pytest.mark.parametrize("cls", [SpectraMB, MBCGCN, MuLe, UnionLightGCN], ids=lambda c: c.__name__)
def test_every_model_trains_on_the_score_with_the_term(cls):
    # the BPR part of the loss moves by exactly the term's share: softplus(s⁻ + h⁻ − s⁺ − h⁺) against softplus(s⁻ − s⁺)
    on, off = with_and_without(cls)
    on.eval(), off.eval()
    with torch.no_grad():
        s_pos = off.predict({"user_id": BATCH["user_id"], "item_id": BATCH["item_id"]})
        s_neg = off.predict({"user_id": BATCH["user_id"], "item_id": BATCH["neg_item_id"]})
        h = dense_term(on)
        h_pos, h_neg = h[BATCH["user_id"], BATCH["item_id"]], h[BATCH["user_id"], BATCH["neg_item_id"]]
    on.train(), off.train()
    shift = on.calculate_loss(BATCH) - off.calculate_loss(BATCH)
    expected = F.softplus(s_neg + h_neg - s_pos - h_pos).mean() - F.softplus(s_neg - s_pos).mean()
    torch.testing.assert_close(shift.detach().reshape(()), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_the_term_learns_and_is_removed_exactly_at_inference(cls):
    on, off = with_and_without(cls)
    on.train()
    on.calculate_loss(BATCH).backward()
    assert on.history_term.weight.grad.abs().sum() > 0 and on.history_term.reliability.weight.grad.abs().sum() > 0
    on.eval(), off.eval()
    users = {"user_id": torch.arange(1, N_USERS)}
    with torch.no_grad():
        before = on.full_sort_predict(users)
        with on.inference_ablations()["without the history term"]():
            torch.testing.assert_close(on.full_sort_predict(users), off.full_sort_predict(users))
        torch.testing.assert_close(on.full_sort_predict(users), before)
    assert "without the history term" not in off.inference_ablations()


def test_crgcn_trains_its_target_stage_on_the_score_with_the_term():
    # CRGCN draws its own samples: the same generator state gives both models the same draws, and only the target
    # stage's BPR moves, by exactly the term's share (the auxiliary stages train on the embeddings alone)
    on, off = with_and_without(CRGCN)
    drawn, sample = [], on.all_rows.sample_outside
    on.all_rows.sample_outside = lambda users: drawn.append((users, sample(users))) or drawn[-1][1]
    on.train(), off.train()
    torch.manual_seed(5)
    loss_on = on.calculate_loss(BATCH)
    torch.manual_seed(5)
    loss_off = off.calculate_loss(BATCH)
    assert len(drawn) == 3
    users, neg = drawn[on.target_index]
    assert users.tolist() == BATCH["user_id"].tolist()
    on.eval(), off.eval()
    with torch.no_grad():
        s_pos = off.predict({"user_id": users, "item_id": BATCH["item_id"]})
        s_neg = off.predict({"user_id": users, "item_id": neg})
        h = dense_term(on)
    h_pos, h_neg = h[users, BATCH["item_id"]], h[users, neg]
    expected = F.softplus(s_neg + h_neg - s_pos - h_pos).mean() - F.softplus(s_neg - s_pos).mean()
    assert abs(float(expected)) > 1e-3  # the term moves this batch's loss
    torch.testing.assert_close((loss_on - loss_off).detach().reshape(()), expected.float(), rtol=1e-4, atol=1e-5)
