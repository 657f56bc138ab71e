r"""
HistoryPop
################################################

The training-free rule every learned multi-behavior model has to beat: recommend the user's own
auxiliary items first (e.g. what they carted, then what they viewed), each group ordered by target
popularity, then every other item by target popularity. On taobao-15k, 85 % of test buys are items the
same user viewed or carted in training (see ``../shared/datasets/README.md``).

With auxiliary behaviors b_1, ..., b_{K-1} in funnel order (the target b_K last), stage(u, i) the highest
funnel position k of an auxiliary behavior with (u, i) in b_k (0 if none), and pop(i) the number of
training target interactions of item i:

    ŷ(u, i) = stage(u, i) + pop(i) / (max_j pop(j) + 1)          (``stage_order: latest_first``)

so the ranking is by stage first (latest stage first), then by popularity (pop / (max + 1) < 1). With
``stage_order: earliest_first`` stage k counts as K - k (the first funnel behavior ranks first);
``popularity: all_behaviors`` counts pop(i) as the users with any interaction with i (union of all
behaviors) instead of the training target rows.
Items the user already bought in training are masked by the evaluation, as for every model.
"""
import numpy as np
import torch

from recbole_spectral.hyperparameters import Choice
from recbole_spectral.layers.csr import CSRRows
from recbole_spectral.model.base import TrainingFreeRecommender


class HistoryPop(TrainingFreeRecommender):
    r"""The user's own auxiliary items by funnel stage, then all items by target popularity."""

    dataset_kind = "multibehavior"
    hyperparameters = {
        "stage_order": Choice("latest_first", "earliest_first"),
        "popularity": Choice("target", "all_behaviors"),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # dataset facts
        n_aux = len(self.auxiliary_behaviors)

        # hyperparameters
        self.stage_order = config["stage_order"]
        self.popularity = config["popularity"]

        # caches: stage matrix (max over auxiliary behaviors of the stage number), popularity in [0, 1)
        stage = None
        for position, behavior in enumerate(self.auxiliary_behaviors):
            k = position + 1 if self.stage_order == "latest_first" else n_aux - position
            m = dataset.behavior_matrix(behavior).astype(np.float32) * float(k)
            stage = m if stage is None else stage.maximum(m)
        if stage is None:  # no auxiliary behavior kept (drop_behaviors): popularity only
            stage = dataset.behavior_matrix(dataset.target_behavior) * 0.0
        stage.eliminate_zeros()
        self.stage = CSRRows(stage, self.device)
        counts_matrix = dataset.behavior_matrix(dataset.target_behavior) if self.popularity == "target" \
            else dataset.all_behaviors_matrix()
        counts = np.asarray(counts_matrix.sum(axis=0)).ravel().astype(np.float64)
        self.item_popularity = torch.from_numpy(counts / (counts.max() + 1.0)).float().to(self.device)

    def score_users(self, users):
        return self.stage.dense(users) + self.item_popularity.unsqueeze(0)
