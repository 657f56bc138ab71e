r"""SimGCL: LightGCN with noise-perturbed contrastive views.

Reference: Junliang Yu, Hongzhi Yin, Xin Xia, Tong Chen, Lizhen Cui and Quoc Viet Hung Nguyen, "Are Graph
Augmentations Necessary? Simple Graph Contrastive Learning for Recommendation", SIGIR 2022 (arXiv 2112.08679).
Recipe as in the authors' code (Coder-Yu/SELFRec: model/graph/SimGCL.py, util/loss_torch.py, conf/SimGCL.yaml).
Here it is the control for SSR's contrastive term (issue 36): the same uniformity pressure on ID embeddings,
with no bands and no content; it needs no modality, so it runs on any dataset.

    E^(0) = [E_U ; E_I]                                        free embeddings, Xavier-uniform
    E^(l) = Â E^(l-1)                                          main encoder (Â symmetric-normalised user–item graph)
    E'^(l) = H + ε · sign(H) ⊙ normalize_rows(U),  H = Â E'^(l-1),  U ~ Uniform[0, 1)   a view (eq. 7): fresh
                                                               noise after every layer, carried into the next
    e = (1/L) Σ_{l=1..L} E^(l)                                 the layer mean WITHOUT E^(0) (the paper, §4.1)
    ŷ_ui = ⟨e_u, e_i⟩
    L = BPR + λ_cl (InfoNCE_τ(e'_U, e''_U) + InfoNCE_τ(e'_I, e''_I)) + λ_reg (‖e_U^b‖ + ‖e_P^b‖)

Two views e', e'' are drawn per batch; InfoNCE runs over the batch's distinct users and distinct positive items
(each row's positive is its own row in the other view, the other rows are its negatives; mean over rows; cosine
scores over τ). The regulariser is SELFRec's: the Frobenius norms (not squared) of the batch's final user and
positive-item rows, no division by the batch size. Evaluation uses the unperturbed encoder.

Departures: none in the computation; the contrastive weight default is SELFRec's shipped configuration (0.5 on
Yelp2018), the paper tunes it per dataset.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_spectral.hyperparameters import Float, Int
from recbole_spectral.layers.contrastive import info_nce, sign_aligned_noise
from recbole_spectral.layers.graph import normalized_bipartite_graph, symmetric_spmm
from recbole_spectral.model.base import EmbeddingRecommender


class SimGCL(EmbeddingRecommender):
    dataset_kind = "any"
    hyperparameters = {
        "embedding_size": Int(low=1),
        "n_layers": Int(low=1),
        "eps": Float(low=0.0),
        "cl_weight": Float(low=0.0),
        "temperature": Float(low=0.0, low_open=True),
        "reg_weight": Float(low=0.0),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # hyperparameters
        d = self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.eps = config["eps"]
        self.cl_weight = config["cl_weight"]
        self.temperature = config["temperature"]
        self.reg_weight = config["reg_weight"]

        # layers
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, d)))

        # graph (a plain tensor, never in the checkpoint)
        self.norm_adj = normalized_bipartite_graph(dataset.inter_matrix(form="csr"), self.device).to_sparse_csr()

    def encode(self, perturbed=False):
        """(users, items) = the mean of E^(1..L), each layer perturbed by fresh noise when ``perturbed``."""
        current = torch.cat([self.user_embedding, self.item_embedding], 0)
        total = 0
        for _ in range(self.n_layers):
            current = symmetric_spmm(self.norm_adj, current)
            if perturbed:
                current = sign_aligned_noise(current, self.eps)
            total = total + current
        out = total / self.n_layers
        return out[: self.n_users], out[self.n_users:]

    def compute_embeddings(self):
        return self.encode()

    def calculate_loss(self, interaction):
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        neg = interaction[self.NEG_ITEM_ID]
        user_e, item_e = self.encode()
        u, p, q = user_e[user], item_e[pos], item_e[neg]
        loss = -F.logsigmoid((u * p).sum(1) - (u * q).sum(1)).mean()
        if self.reg_weight > 0:
            loss = loss + self.reg_weight * (u.norm() + p.norm())
        if self.cl_weight > 0:
            users, items = torch.unique(user), torch.unique(pos)
            (u1, i1), (u2, i2) = self.encode(perturbed=True), self.encode(perturbed=True)
            cl = (info_nce(u1[users], u2[users], tau=self.temperature, reduction="mean")
                  + info_nce(i1[items], i2[items], tau=self.temperature, reduction="mean"))
            loss = loss + self.cl_weight * cl
        return loss
