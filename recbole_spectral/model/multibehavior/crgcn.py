r"""
CRGCN
################################################

Reference:
    Mingshi Yan, Zhiyong Cheng, Chenyang Gao, Jing Sun, Fan Liu, Fuming Sun and Haojie Li. "Cascading
    Residual Graph Convolutional Network for Multi-Behavior Recommendation." ACM TOIS 42(1), 2023.
    Public code: MingshiYan/CRGCN (read to learn the details; this is an independent implementation).

Behaviors b_1, ..., b_K in funnel order (target b_K last); E^0 = [user; item] ID embeddings; Â_b the
symmetric-normalised bipartite graph of behavior b (no self-loops; training rows only for the target).
One cascade stage per behavior, each a residual block:

    H^k = GCN_{b_k}(E^{k-1}),  GCN_b(X) = Â_b X + c_b   (``n_layers`` such layers, c_b a learned bias
                                                          vector when ``layer_bias``, as the public code)
    E^k = E^{k-1} + rownorm(H^k)                          rownorm = row L2-normalisation

Score: ŷ(u, i) = ⟨E^K_u, E^K_i⟩. Loss: BPR for every behavior, each on the embeddings of its own stage,

    L = Σ_k mean_{(u, i, j) ∈ batch_k} -log σ(⟨E^k_u, E^k_i⟩ - ⟨E^k_u, E^k_j⟩)
        + reg_weight · (‖E^0_users‖_F + ‖E^0_items‖_F) / n_items          (public code's EmbLoss)

where, for each row (u, i) of RecBole's target batch, batch_K = (u, i, j) and batch_k (k < K) = (u, i_k, j_k)
with i_k drawn uniformly from u's items in b_k (rows whose user has none are skipped), and every negative j
drawn uniformly from the items outside all of u's training interactions (every behavior).

Departures from the public code (stated so the benchmark can be read):
- an epoch is one pass over the training *target* rows (RecBole's sampler), each row also drawing one pair
  per auxiliary behavior for its user; the public code's epoch is one pass over users, each drawing one
  pair per behavior (so one epoch here is ~ (target rows / users) of theirs);
- users without any pair in a behavior are left out of that behavior's loss (the public code scores a
  padding row for them);
- negatives are resampled here for the target pair as well (RecBole's own negative is only outside the
  training target items).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Bool, Float, Int
from recbole_spectral.layers.csr import CSRRows
from recbole_spectral.layers.graph import normalized_bipartite_graph, symmetric_spmm
from recbole_spectral.layers.multibehavior.cascade_term import CASCADE_TERM_HYPERPARAMETERS
from recbole_spectral.layers.multibehavior.history_term import HISTORY_TERM_HYPERPARAMETERS
from recbole_spectral.model.base import EmbeddingRecommender


def bpr(pos_scores, neg_scores):
    """mean -log σ(pos - neg) (0 for an empty batch)."""
    if pos_scores.numel() == 0:
        return pos_scores.sum()
    return F.softplus(neg_scores - pos_scores).mean()


class CRGCN(EmbeddingRecommender):
    r"""Cascading residual GCN: one residual graph-convolution stage per behavior in funnel order."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_layers": Int(low=1),
        "layer_bias": Bool(),
        "reg_weight": Float(low=0.0),
        **HISTORY_TERM_HYPERPARAMETERS,
        **CASCADE_TERM_HYPERPARAMETERS,
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts: behaviors in funnel order (target last), one graph and one row index each
        self.target_index = self.behaviors.index(dataset.target_behavior)

        # hyperparameters
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.layer_bias = config["layer_bias"]
        self.reg_weight = config["reg_weight"]

        # layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(self.embedding_size)) for _ in range(len(self.behaviors) * self.n_layers)
        ) if self.layer_bias else None

        # graphs and row indexes: plain tensors (data, not weights)
        self.graphs = [
            normalized_bipartite_graph(dataset.behavior_matrix(b), self.device).to_sparse_csr() for b in self.behaviors
        ]
        self.behavior_rows = [CSRRows(dataset.behavior_matrix(b), self.device) for b in self.behaviors]
        self.all_rows = CSRRows(dataset.all_behaviors_matrix(), self.device)

        # init: Xavier-uniform ID embeddings (public code); biases start at zero
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)

    def cascade(self):
        """[E^1, ..., E^K]: the embeddings after each behavior's stage."""
        current = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        stages = []
        for k, graph in enumerate(self.graphs):
            hidden = current
            for layer in range(self.n_layers):
                hidden = symmetric_spmm(graph, hidden)
                if self.biases is not None:
                    hidden = hidden + self.biases[k * self.n_layers + layer]
            current = current + F.normalize(hidden, p=2, dim=1)
            stages.append(current)
        return stages

    def compute_embeddings(self):
        return torch.split(self.cascade()[-1], [self.n_users, self.n_items])

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]

        loss = 0.0
        for k, stage in enumerate(self.cascade()):
            user_e, item_e = torch.split(stage, [self.n_users, self.n_items])
            if k == self.target_index:
                users, pos = user, pos_item
            else:
                pos, has = self.behavior_rows[k].sample(user)
                users, pos = user[has], pos[has]
            neg = self.all_rows.sample_outside(users)
            u = user_e[users]
            if k == self.target_index:  # the score being trained (+ the history and cascade terms when on)
                loss = loss + bpr(self.pair_scores(u, item_e[pos], users, pos), self.pair_scores(u, item_e[neg], users, neg))
            else:
                loss = loss + bpr((u * item_e[pos]).sum(-1), (u * item_e[neg]).sum(-1))
        reg = (self.user_embedding.weight.norm(p=2) + self.item_embedding.weight.norm(p=2)) / self.n_items
        return loss + self.reg_weight * reg
