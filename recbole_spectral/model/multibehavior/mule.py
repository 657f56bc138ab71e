r"""
MuLe
################################################

Reference:
    Seunghan Lee, Geonwoo Ko, Hyun-Je Song and Jinhong Jung. "MuLe: Multi-Grained Graph Learning for
    Multi-Behavior Recommendation." CIKM 2024. Public code: geonwooko/MULE (read to learn the details;
    this is an independent implementation).

Graphs (users x items; T = the training target pairs, A_b an auxiliary behavior's pairs):

    union graph   G = T ∪ ⋃_b A_b
    per behavior  G_b = A_b for every behavior b (the target's: T)
    also bought   G_{b∩T} = A_b ∩ T          ("target-intersected", for every auxiliary b)
    not bought    G_{b\T} = A_b \ T          ("target-complemented", for every auxiliary b)

Propagation on a graph (LightGCN-normalised Â, L layers, row L2-normalisation, layer l weighted 1/l):

    P(X) = X + Σ_{l=1..L} X_l / l,   X_l = rownorm(Â X_{l-1}),  X_0 = X

1. E_G = P_{G}(E^0) (``gnn_layers``);  E_b = P_{G_b}(E_G) for every behavior b (target included).
2. Also bought: E_{b∩T} = P_{G_{b∩T}}(E_b) (``gnn_layers``).
3. Not bought, target-guided denoising attention (``tda_layers`` layers), keyed on the target view
   t = E_{target}: a message from node s to its neighbour v has weight
   a_{s→v} = softmax_{v' ∈ N(s)} ⟨t_s, x_v'⟩ (softmax over the sender's neighbours, as the public code),
   x'_v = Σ_{s ∈ N(v)} a_{s→v} x_s; then the same row-normalisation and 1/l layer weights as P.
4. Two-level attention keyed on the target view (a_· = softmax over the views of Linear([key, view])):
   h = Σ_b a_b E_b over the behavior views (key t); final F = Σ_g a_g E_g over the not-bought and
   also-bought views (key h).  ŷ(u, i) = ⟨F_u, F_i⟩.

Loss: BPR on the target pairs (RecBole's sampler; negatives outside the user's training target items),
mean -log σ(ŷ(u, i) - ŷ(u, j)); no embedding L2 (the public code passes its weight decay to nothing;
RecBole's ``weight_decay`` config key still applies to Adam if set).

Departures from the public code:
- trained with early stopping on validation HR@10 (the public code trains 100 epochs, no validation);
- the also-bought/not-bought graphs use this split's training target rows (the converter holds out one
  training buy per user for validation; MuLe's validation file lies inside its training buys);
- the attention layer has a hand-written backward (``layers/multibehavior/target_attention.py``; same
  values and gradients as the public code's per-edge scatter softmax, without per-edge d-dim tensors).
"""
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Int
from recbole_spectral.layers.graph import normalized_bipartite_graph, symmetric_spmm
from recbole_spectral.layers.multibehavior.target_attention import TargetGuidedAttention
from recbole_spectral.layers.multibehavior.cascade_term import CASCADE_TERM_HYPERPARAMETERS
from recbole_spectral.layers.multibehavior.history_term import HISTORY_TERM_HYPERPARAMETERS
from recbole_spectral.model.base import EmbeddingRecommender


def binary(matrix):
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.eliminate_zeros()
    m.data[:] = 1.0
    return m


def also_and_not_bought(behavior, target):
    """(A_b ∩ T, A_b \\ T) as binary CSR matrices."""
    b, t = binary(behavior), binary(target)
    both = binary(b.multiply(t))
    return both, binary(b - both)


class ViewAttention(nn.Module):
    """a_g = softmax_g(w^T [key; V_g] + c), output Σ_g a_g V_g (per node)."""

    def __init__(self, dim):
        super().__init__()
        self.score = nn.Linear(2 * dim, 1)
        nn.init.xavier_uniform_(self.score.weight)

    def forward(self, key, views):
        stacked = torch.stack(views, dim=1)                                   # n x G x d
        keys = key.unsqueeze(1).expand_as(stacked)
        weights = torch.softmax(self.score(torch.cat([keys, stacked], dim=2)), dim=1)  # n x G x 1
        return (weights * stacked).sum(1)


class MuLe(EmbeddingRecommender):
    r"""Multi-grained graph learning: union, per-behavior, also-bought and not-bought graphs, two-level attention."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "gnn_layers": Int(low=0),
        "tda_layers": Int(low=0),
        **HISTORY_TERM_HYPERPARAMETERS,
        **CASCADE_TERM_HYPERPARAMETERS,
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts

        # hyperparameters
        self.embedding_size = config["embedding_size"]
        self.gnn_layers = config["gnn_layers"]
        self.tda_layers = config["tda_layers"]

        # layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.behavior_attention = ViewAttention(self.embedding_size)
        self.graph_attention = ViewAttention(self.embedding_size)

        # graphs (plain tensors): union, per behavior, and per auxiliary behavior also/not bought
        target = dataset.behavior_matrix(self.target_behavior)
        self.union_graph = normalized_bipartite_graph(dataset.all_behaviors_matrix(), self.device).to_sparse_csr()
        self.behavior_graphs = {
            b: normalized_bipartite_graph(dataset.behavior_matrix(b), self.device).to_sparse_csr() for b in self.behaviors
        }
        self.also_bought_graphs, self.not_bought_graphs = {}, {}
        for b in self.auxiliary_behaviors:
            both, only = also_and_not_bought(dataset.behavior_matrix(b), target)
            self.also_bought_graphs[b] = normalized_bipartite_graph(both, self.device).to_sparse_csr()
            self.not_bought_graphs[b] = TargetGuidedAttention(only, self.device)

        # init: Xavier-uniform embeddings and attention weights (public code)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)

    def _propagate(self, step, x, n_layers):
        out, current = x, x
        for layer in range(n_layers):
            current = F.normalize(step(current), p=2, dim=1)
            out = out + current / (layer + 1)
        return out

    def views(self):
        """Every intermediate view: {"union", behavior..., "also:<b>", "not:<b>"} -> (n_users + n_items) x d."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        views = {"union": self._propagate(lambda x: symmetric_spmm(self.union_graph, x), ego, self.gnn_layers)}
        for b, graph in self.behavior_graphs.items():
            views[b] = self._propagate(lambda x, g=graph: symmetric_spmm(g, x), views["union"], self.gnn_layers)
        key = views[self.target_behavior]
        for b in self.auxiliary_behaviors:
            graph = self.also_bought_graphs[b]
            views[f"also:{b}"] = self._propagate(lambda x, g=graph: symmetric_spmm(g, x), views[b], self.gnn_layers)
        for b in self.auxiliary_behaviors:
            attention = self.not_bought_graphs[b]
            views[f"not:{b}"] = self._propagate(lambda x, a=attention: a(x, key), views[b], self.tda_layers)
        return views

    def compute_embeddings(self):
        views = self.views()
        target = views[self.target_behavior]
        coarse = self.behavior_attention(target, [views[b] for b in self.behaviors])
        fine = [views[f"not:{b}"] for b in self.auxiliary_behaviors] + [views[f"also:{b}"] for b in self.auxiliary_behaviors]
        final = self.graph_attention(coarse, fine) if fine else coarse
        return torch.split(final, [self.n_users, self.n_items])

    def calculate_loss(self, interaction):
        return self.bpr_loss(interaction)
