"""Cold-start test metrics: ``cold_<metric>`` over the test users with few training interactions.

With ``cold_start_threshold: N`` every run (any model, ranking evaluation) also reports RecBole's
metrics over the users with at most N training interactions, computed from the same ranked lists by
RecBole's own Evaluator. :class:`ColdStartMixin` is mixed into whichever trainer a model gets.
"""
from collections import OrderedDict
from logging import getLogger

import torch
from recbole.evaluator import Evaluator
from recbole.evaluator.collector import DataStruct
from recbole.utils import EvaluatorType

from recbole_spectral.errors import ConfigError

# per-user rows of RecBole's collected ranking data (one row per evaluated user)
_USER_ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.items")


class ColdStartEvaluator(Evaluator):
    """RecBole's Evaluator that also reports ``cold_<metric>`` over the cold users' rows.

    ``row_users`` (set by the trainer for one evaluation) is the user id of every collected row;
    ``user_counts[u]`` is user u's number of training interactions. The last evaluation's rows are kept
    (``last_users``), so :meth:`metrics_for` recomputes the metrics over any group of those users from
    the same ranked lists; with ``threshold`` None nothing is added to the result (recording only).
    """

    def __init__(self, config, threshold):
        super().__init__(config)
        self.threshold = threshold
        self.row_users = None
        self.user_counts = None
        self.last_cold_users = None  # cold users in the last evaluation with cold metrics
        self.last_users, self._last_data = None, None

    def metrics_for(self, rows):
        """RecBole's metrics over the rows of the last evaluation selected by the boolean mask ``rows``."""
        subset = DataStruct()
        for key, value in self._last_data._data_dict.items():
            subset.set(key, value[rows] if key in _USER_ROW_KEYS else value)
        return super().evaluate(subset)

    def evaluate(self, dataobject):
        result = super().evaluate(dataobject)
        if self.row_users is None:
            return result
        users = torch.cat(self.row_users) if self.row_users else torch.zeros(0, dtype=torch.long)
        self.last_users, self._last_data = users, dataobject
        if self.threshold is None:
            return result
        cold = self.user_counts[users] <= self.threshold
        self.last_cold_users = int(cold.sum())
        getLogger().info(
            f"cold-start users (<= {self.threshold} training interactions): {int(cold.sum())} of {len(users)} evaluated"
        )
        if not cold.any():
            return OrderedDict([*result.items(), *((f"cold_{k}", float("nan")) for k in result)])
        cold_result = self.metrics_for(cold)
        return OrderedDict([*result.items(), *((f"cold_{k}", v) for k, v in cold_result.items())])


class ColdStartMixin:
    """With ``cold_start_threshold: N``, test results also hold ``cold_<metric>`` columns: the same
    metrics over the test users with at most N training interactions (any model, ranking evaluation).

    Training counts are taken in ``fit`` (or ``count_training_interactions``); validation during
    ``fit`` is left as it is. In a distributed run the cold metrics are computed where the test
    evaluation runs over all users (rank 0, see ``recbole_spectral.distributed``).
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        threshold = config["cold_start_threshold"]
        self._validating = False
        if threshold is None:
            return
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise ConfigError(f"config key 'cold_start_threshold': expected a non-negative integer, got {threshold!r}")
        if config["eval_type"] != EvaluatorType.RANKING:
            raise ConfigError("config key 'cold_start_threshold': cold-start metrics need ranking evaluation (eval_args mode full/uni/pop)")
        self.evaluator = ColdStartEvaluator(config, threshold)

    def count_training_interactions(self, train_data):
        """Remember each user's number of training interactions (the cold-start reference)."""
        if isinstance(self.evaluator, ColdStartEvaluator):
            dataset = train_data._dataset
            users = dataset.inter_feat[dataset.uid_field]
            self.evaluator.user_counts = torch.bincount(torch.as_tensor(users), minlength=dataset.user_num)

    def fit(self, train_data, *args, **kwargs):
        self.count_training_interactions(train_data)
        return super().fit(train_data, *args, **kwargs)

    def _valid_epoch(self, *args, **kwargs):
        self._validating = True
        try:
            return super()._valid_epoch(*args, **kwargs)
        finally:
            self._validating = False

    def evaluate(self, eval_data, *args, **kwargs):
        evaluator = self.evaluator
        if not isinstance(evaluator, ColdStartEvaluator) or self._validating or not self.config["single_spec"]:
            return super().evaluate(eval_data, *args, **kwargs)
        if evaluator.user_counts is None:
            getLogger().warning("cold_start_threshold is set but no training data was seen "
                                "(call trainer.count_training_interactions(train_data)); no cold metrics")
            return super().evaluate(eval_data, *args, **kwargs)
        evaluator.row_users = []
        try:
            return super().evaluate(eval_data, *args, **kwargs)
        finally:
            evaluator.row_users = None

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if getattr(self.evaluator, "row_users", None) is not None:  # one row per user
            self.evaluator.row_users.append(interaction[self.config["USER_ID_FIELD"]].cpu())
        return interaction, scores, positive_u, positive_i

    def _neg_sample_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._neg_sample_batch_eval(batched_data)
        if getattr(self.evaluator, "row_users", None) is not None:  # rows: batched_data[1] maps samples to users
            row_idx = batched_data[1].cpu()
            users = torch.zeros(scores.shape[0], dtype=torch.long)
            users[row_idx] = interaction[self.config["USER_ID_FIELD"]].cpu()
            self.evaluator.row_users.append(users)
        return interaction, scores, positive_u, positive_i
