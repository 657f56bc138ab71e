r"""SMORE: spectrum-based modality representation fusion graph convolutional network.

Reference: Rongqing Kenneth Ong and Andy W. H. Khong, "Spectrum-based Modality Representation Fusion Graph
Convolutional Network for Multimodal Recommendation", WSDM 2025 (arXiv 2412.14978). Recipe as in the
authors' code (kennethorq/SMORE src/models/smore.py and its README's best settings; MMRec
configs/model/SMORE.yaml).

With Â the symmetric-normalised user–item graph, R̂ = its user→item block D_u^{-1/2} R D_i^{-1/2}, F_m the item
features of modality m (fixed), E_I the item ID embeddings, σ the logistic function, ⊙ elementwise:

  projection             X_m = F_m W_m + b_m                                           (n_items × d)
  spectrum filtering     C_m = irFFT(rFFT(X_m) ⊙ w_m)                                   per modality (denoising)
                         C_f = irFFT(Π_m rFFT(X_m) ⊙ w_f)                               fused spectrum
                         (rFFT along the embedding dimension, orthonormal: layers/feature_fft.py)
  item signals           Z_m = E_I ⊙ σ(C_m G_m + g_m),  Z_f = E_I ⊙ σ(C_f G_f + g_f)
  item graphs            S_m = kNN_{k_m}(cos F_m) (normalised, the dataset's),  S_f = max_m S_m (elementwise)
                         Z_m ← S_m^{L_i} Z_m,  Z_f ← S_f^{L_i} Z_f
  item-derived users     M_m = [R̂ Z_m ; Z_m],  M_f = [R̂ Z_f ; Z_f]                        (no free user part)
  behaviour (LightGCN)   E_c = (1/(L+1)) Σ_{l=0..L} Â^l [E_U ; E_I]
  modality-aware gating  A_m = softmax_row(Q_m(M_f)) ⊙ M_m,   Q_m = Linear → tanh → Linear (no bias)
                         P_m = dropout(σ(E_c P_m + p_m)),  P_f = dropout(σ(E_c P_f + p_f))
                         E_s = mean(P_1 ⊙ A_1, ..., P_M ⊙ A_M, P_f ⊙ M_f)
  final                  E = E_c + E_s;   ŷ_ui = ⟨e_u, e_i⟩
  loss                   BPR + λ_reg · ½(‖e_u‖² + ‖e_i‖² + ‖e_j‖²)/|batch|
                         + λ_cl [InfoNCE_τ(E_s[i], E_c[i]) + InfoNCE_τ(E_s[u], E_c[u])]   (in-batch negatives,
                                                                                          τ = 0.2, mean)
Initialisation as released: E_U, E_I Xavier-uniform; spectral weights w standard normal; linear layers torch's
default.

Verified: forward and loss equal the released code's equations line by line on a tiny case
(tests/test_reference_mm.py::test_smore_forward_and_loss_equal_the_official_equations). The published Sports recipe
(cl_loss 0.03) collapses on the dense ml100k-text (validation Recall@20 0.063, 0.041, 0.032 over epochs 1-3) because
of its InfoNCE weight, not the code: the in-batch InfoNCE keeps the behaviour embeddings E_c spread evenly on the
sphere (mean cosine of random user pairs 0.005) and BPR stays at ln 2; with cl_loss 0.001 it reaches 0.218 by epoch 3
(cl_loss 0: 0.166). Evidence and command: docs/mm_models.md (SMORE on dense data).

Departures, deliberate:
  * the item–item graphs are the dataset's kNN graphs: binary top-k, symmetric-normalised (FREEDOM's
    construction, shared by every model here); the released code weights the kept edges by their cosine before
    normalising. The fused graph is the elementwise maximum of these, as released;
  * the modality features are fixed inputs (released: trainable embedding tables), see FREEDOM's docstring;
  * any modality set: the released code needs image + text. Every modality gets its filter, gate, graph, query
    and preference gate; the fused spectrum is the product of all modalities' spectra (for two modalities the
    released image × text product; with one modality the fused branch filters that modality again);
  * the squared-norm penalty is divided by the batch's size (released: by ``train_batch_size``; they differ only
    on an epoch's last, shorter batch);
  * no learning-rate decay: MMRec's ``learning_rate_scheduler: [0.96, 50]`` (×0.96 every 50 epochs) has no
    counterpart in RecBole's trainer (a ~1 % change of the learning rate over the first 15 epochs).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Dict, Float, Int
from recbole_spectral.layers.contrastive import info_nce
from recbole_spectral.layers.feature_fft import SpectralFilter, fused_spectral_filter
from recbole_spectral.layers.graph import FixedSparse, normalized_bipartite_graph, propagate
from recbole_spectral.model.base import EmbeddingRecommender


def gate(d):
    return nn.Sequential(nn.Linear(d, d), nn.Sigmoid())


class SMORE(EmbeddingRecommender):
    dataset_kind = "multimodal"
    hyperparameters = {
        "embedding_size": Int(low=2, even=True),
        "n_ui_layers": Int(low=0),
        "n_layers": Int(low=0),
        "knn_k": Int(low=1),
        "modality_knn_k": Dict(Int(low=1), nullable=True),
        "dropout_rate": Float(low=0.0, high=1.0, high_open=True),
        "reg_weight": Float(low=0.0),
        "cl_loss": Float(low=0.0),
        "temperature": Float(low=0.0, low_open=True),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.n_ui_layers, self.n_layers = config["n_ui_layers"], config["n_layers"]
        self.reg_weight, self.cl_weight, self.temperature = config["reg_weight"], config["cl_loss"], config["temperature"]
        modality_k = config["modality_knn_k"] or {}

        # data and graphs: plain tensor attributes (never in the checkpoint)
        self.features = {m: torch.as_tensor(dataset.item_features(m), dtype=torch.float32).to(self.device)
                         for m in self.modalities}
        interactions = dataset.inter_matrix(form="csr").astype(np.float32)
        norm_adj = normalized_bipartite_graph(interactions, self.device)
        self.user_item = FixedSparse(self._user_item_block(norm_adj))  # R̂
        self.norm_adj = norm_adj.to_sparse_csr()  # Â (CSR: faster products on CPU)
        self.item_graphs = {m: FixedSparse(dataset.knn_graph(m, int(modality_k.get(m, config["knn_k"]))).to(self.device))
                            for m in self.modalities}
        self.fusion_graph = FixedSparse(dataset.max_item_graph(config["knn_k"], modality_k).to(self.device))

        # layers
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.projection = nn.ModuleDict({m: nn.Linear(self.features[m].shape[1], d) for m in self.modalities})
        self.filter = nn.ModuleDict({m: SpectralFilter(d) for m in self.modalities})
        self.fusion_filter = SpectralFilter(d)
        self.item_gate = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.fusion_item_gate = gate(d)
        self.query = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, d, bias=False))
                                    for m in self.modalities})
        self.preference = nn.ModuleDict({m: gate(d) for m in self.modalities})
        self.fusion_preference = gate(d)
        self.dropout = nn.Dropout(p=config["dropout_rate"])

        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        for spectral in (*self.filter.values(), self.fusion_filter):
            nn.init.normal_(spectral.weight)  # released: torch.randn complex weights

    def _user_item_block(self, adj):
        """The users × items block of the normalised bipartite graph (sparse)."""
        adj = adj.coalesce()
        rows, cols = adj.indices()
        keep = (rows < self.n_users) & (cols >= self.n_users)
        indices = torch.stack([rows[keep], cols[keep] - self.n_users])
        return torch.sparse_coo_tensor(indices, adj.values()[keep], (self.n_users, self.n_items)).coalesce()

    def _item_view(self, graph, items):
        for _ in range(self.n_layers):
            items = graph @ items
        return torch.cat([self.user_item @ items, items], 0)

    def forward(self):
        """(final embeddings E, side embeddings E_s, behaviour embeddings E_c), all nodes, users first."""
        projected = [self.projection[m](self.features[m]) for m in self.modalities]
        item_id = self.item_embedding.weight
        views = [self._item_view(self.item_graphs[m], item_id * self.item_gate[m](self.filter[m](x)))
                 for m, x in zip(self.modalities, projected)]
        fused = fused_spectral_filter(projected, self.fusion_filter.complex_weight())
        fusion_view = self._item_view(self.fusion_graph, item_id * self.fusion_item_gate(fused))

        ego = torch.cat([self.user_embedding.weight, item_id], 0)
        content = propagate(self.norm_adj, ego, self.n_ui_layers, aggregation="mean", symmetric=True)

        sides = []
        for m, view in zip(self.modalities, views):
            attended = torch.softmax(self.query[m](fusion_view), dim=-1) * view
            sides.append(self.dropout(self.preference[m](content)) * attended)
        sides.append(self.dropout(self.fusion_preference(content)) * fusion_view)
        side = torch.stack(sides, 0).mean(0)
        return content + side, side, content

    def compute_embeddings(self):
        out, _, _ = self.forward()
        return out[: self.n_users], out[self.n_users:]

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        neg = interaction[self.NEG_ITEM_ID]
        out, side, content = self.forward()
        u, p, q = out[user], out[self.n_users + pos], out[self.n_users + neg]
        loss = -F.logsigmoid((u * p).sum(1) - (u * q).sum(1)).mean()
        loss = loss + self.reg_weight * 0.5 * (u.pow(2).sum() + p.pow(2).sum() + q.pow(2).sum()) / user.shape[0]
        if self.cl_weight > 0:
            items, users = self.n_users + pos, user
            cl = (info_nce(side[items], content[items], tau=self.temperature, reduction="mean")
                  + info_nce(side[users], content[users], tau=self.temperature, reduction="mean"))
            loss = loss + self.cl_weight * cl
        return loss
