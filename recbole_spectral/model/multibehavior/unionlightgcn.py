r"""
UnionLightGCN
################################################

Reference:
    Xiangnan He, Kuan Deng, Xiang Wang, Yan Li, Yongdong Zhang and Meng Wang. "LightGCN: Simplifying and
    Powering Graph Convolution Network for Recommendation." SIGIR 2020 — on the graph of all behaviors.

The multi-behavior field's "LightGCN on all behaviors" baseline: LightGCN propagating over Â_g, the
symmetric-normalised bipartite graph of the union of every behavior's training interactions (views, carts,
..., training target rows), trained on the target behavior only:

    E^(l+1) = Â_g E^(l),   E = mean_{l=0..L} E^(l)   (E^(0) the user and item ID embeddings)
    ŷ(u, i) = ⟨E_u, E_i⟩
    L = mean_batch -log σ(ŷ(u, i⁺) - ŷ(u, i⁻)) + reg_weight · EmbLoss(E^(0) rows of the batch)

with (u, i⁺) the training target pairs and i⁻ RecBole's uniform negatives — RecBole's LightGCN exactly,
except for the graph. ``history_term: True`` adds the history term and ``cascade_term: True`` the cascade term
(both beyond the papers, :mod:`recbole_spectral.layers.multibehavior.history_term` and
:mod:`recbole_spectral.layers.multibehavior.cascade_term`).

Why not RecBole's LightGCN on the union of the pairs (``train_on_all_behaviors``): that also trains on
views and carts as positives (1.1M pairs an epoch on taobao-15k, each step propagating the whole graph),
and its score is no longer the target behavior's; this model sees the same graph and trains on what every
other multi-behavior model trains on.
"""
import torch
import torch.nn as nn
from recbole.model.init import xavier_uniform_initialization
from recbole.model.loss import EmbLoss

from recbole_spectral.hyperparameters import Bool, Float, Int
from recbole_spectral.layers.graph import normalized_bipartite_graph, propagate
from recbole_spectral.layers.multibehavior.cascade_term import CASCADE_TERM_HYPERPARAMETERS
from recbole_spectral.layers.multibehavior.history_term import HISTORY_TERM_HYPERPARAMETERS
from recbole_spectral.model.base import EmbeddingRecommender


class UnionLightGCN(EmbeddingRecommender):
    r"""LightGCN on the graph of all behaviors, trained with BPR on the target behavior."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_layers": Int(low=0),
        "reg_weight": Float(low=0.0),
        "require_pow": Bool(),
        **HISTORY_TERM_HYPERPARAMETERS,
        **CASCADE_TERM_HYPERPARAMETERS,
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts: the union of every behavior's training interactions

        # hyperparameters
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.reg_weight = config["reg_weight"]
        self.require_pow = config["require_pow"]

        # layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.reg_loss = EmbLoss()

        # graph (a plain tensor: data, not weights)
        self.graph = normalized_bipartite_graph(dataset.all_behaviors_matrix(), self.device).to_sparse_csr()

        # init: Xavier-uniform as RecBole's LightGCN
        self.user_embedding.apply(xavier_uniform_initialization)
        self.item_embedding.apply(xavier_uniform_initialization)

    def compute_embeddings(self):
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        final = propagate(self.graph, ego, self.n_layers, "mean", symmetric=True)
        return torch.split(final, [self.n_users, self.n_items])

    def calculate_loss(self, interaction):
        user, pos_item, neg_item = interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        reg = self.reg_loss(self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item),
                            require_pow=self.require_pow)
        return self.bpr_loss(interaction) + self.reg_weight * reg
