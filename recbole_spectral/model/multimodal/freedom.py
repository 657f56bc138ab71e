r"""FREEDOM: freezing and denoising graph structures for multimodal recommendation.

Reference: Xin Zhou and Zhiqi Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for
Multimodal Recommendation", ACM MM 2023 (arXiv 2211.06924). Recipe as in the authors' code (enoche/FREEDOM,
the same file in enoche/MMRec: src/models/freedom.py, configs/model/FREEDOM.yaml).

    S = Σ_m w_m Ŝ_m,   Ŝ_m = D^{-1/2} kNN_k(cos F_m) D^{-1/2}      frozen item–item graph (the dataset's graphs;
                                                                  w keyed by modality name, see modality_weights)
    Â_t = degree-sensitive pruned user–item graph of epoch t     (recbole_spectral.layers.edge_pruning: keep
          (1 − dropout)·E edges drawn ∝ 1/√(d_u d_i), renormalised; the full Â at evaluation)
    [e_U ; ē_I] = (1/(L+1)) Σ_{l=0..L} Â_t^l [E_U ; E_I]           LightGCN, layer mean
    e_I = ē_I + S^{L_mm} E_I                                      item–item part added at full weight
    ŷ_ui = ⟨e_u, e_i⟩
    L = BPR(e_u, e_i, e_j) + λ Σ_m BPR(e_u, W_m f_i^m, W_m f_j^m)

The pruned graph is drawn by the per-epoch hook :meth:`on_train_epoch_start` (RecBole's trainer calls it
through the plugin trainer before every training epoch, like MMRec's ``pre_epoch_processing``);
:meth:`compute_embeddings` uses it while ``self.training`` and the full graph otherwise.
Initialisation as released: E_U, E_I Xavier-uniform; W_m torch's ``nn.Linear`` default.

Departures, deliberate:
  * the modality features are fixed inputs; the released code wraps them in trainable embedding tables that
    only the auxiliary BPR term updates (the frozen graph S is built from the initial features either way);
    fixed features keep checkpoints and optimiser state small at Amazon scale (4,096-d image rows);
  * the mixing weights generalise ``mm_image_weight`` (image w, text 1 − w) to any modality set: a mapping
    modality name → weight, equal weights unless every modality of the dataset is named;
  * the auxiliary term projects only the batch's items (same value as projecting every item), and W_m has no
    bias: the released ``nn.Linear`` bias cancels in BPR's difference (it never receives a gradient);
  * degrees get no 1e-7 offset (every kept edge has degree ≥ 1); the draw uses Gumbel-top-k, the same
    distribution as the released ``torch.multinomial(..., replacement=False)``.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Dict, Float, Int
from recbole_spectral.layers.edge_pruning import DegreeSensitiveEdgePruning
from recbole_spectral.layers.graph import FixedSparse, propagate
from recbole_spectral.model.base import EmbeddingRecommender


def bpr(u, p, q):
    return -F.logsigmoid((u * p).sum(1) - (u * q).sum(1)).mean()


class FREEDOM(EmbeddingRecommender):
    dataset_kind = "multimodal"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_ui_layers": Int(low=0),
        "n_mm_layers": Int(low=0),
        "knn_k": Int(low=1),
        "modality_weights": Dict(Float(low=0.0), nullable=True),
        "dropout": Float(low=0.0, high=1.0, high_open=True),
        "reg_weight": Float(low=0.0),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.n_ui_layers, self.n_mm_layers = config["n_ui_layers"], config["n_mm_layers"]
        self.reg_weight = config["reg_weight"]
        self.dropout = config["dropout"]

        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.features = {m: torch.as_tensor(dataset.item_features(m), dtype=torch.float32).to(self.device)
                         for m in self.modalities}  # plain tensors: data, not parameters
        self.projection = nn.ModuleDict({m: nn.Linear(self.features[m].shape[1], d, bias=False) for m in self.modalities})

        # graphs: plain tensor attributes (never in the checkpoint)
        interactions = dataset.inter_matrix(form="csr").astype(np.float32)
        self.pruning = DegreeSensitiveEdgePruning(interactions, 1.0 - self.dropout, self.device)
        self.norm_adj = self.pruning.full_graph().to_sparse_csr()  # CSR: faster products on CPU
        self.masked_adj = None  # drawn by on_train_epoch_start
        self.item_graph = FixedSparse(dataset.item_graph(config["knn_k"], config["modality_weights"]).to(self.device))

    def on_train_epoch_start(self, epoch_idx, train_data):
        """Draw this epoch's degree-sensitive pruned user–item graph."""
        self.masked_adj = self.pruning.sample().to_sparse_csr()

    def training_graph(self):
        if self.masked_adj is None:  # a loss computed before any epoch hook (e.g. a direct call)
            self.masked_adj = self.pruning.sample().to_sparse_csr()
        return self.masked_adj

    def compute_embeddings(self):
        adj = self.training_graph() if self.training else self.norm_adj
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], 0)
        out = propagate(adj, ego, self.n_ui_layers, aggregation="mean", symmetric=True)
        h = self.item_embedding.weight
        for _ in range(self.n_mm_layers):
            h = self.item_graph @ h
        return out[: self.n_users], out[self.n_users:] + h

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        neg = interaction[self.NEG_ITEM_ID]
        user_e, item_e = self.compute_embeddings()
        u = user_e[user]
        loss = bpr(u, item_e[pos], item_e[neg])
        if self.reg_weight > 0:
            aux = sum(bpr(u, self.projection[m](self.features[m][pos]), self.projection[m](self.features[m][neg]))
                      for m in self.modalities)
            loss = loss + self.reg_weight * aux
        return loss
