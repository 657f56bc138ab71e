"""Trainers whose checkpoints reload under torch's ``weights_only=True`` default (torch >= 2.6).

RecBole 1.2.1 pickles its Config into every checkpoint and reloads it with a bare ``torch.load``,
which torch >= 2.6 refuses. Here checkpoints hold only tensors and plain Python values (the config is
stored as the model/dataset names and the user's own settings) and are always loaded with
``weights_only=True``. The fix is a mixin applied to whichever trainer RecBole picks for a model, so
RecBole baselines run through this plugin get it too. A second mixin adds cold-start test metrics
(``cold_start_threshold``) the same way.
"""
import enum
import os
import uuid
from collections import OrderedDict
from logging import getLogger

import torch
from recbole.evaluator import Evaluator
from recbole.evaluator.collector import DataStruct
from recbole.utils import EvaluatorType
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_spectral.errors import ConfigError

CHECKPOINT_FORMAT = "recbole-spectral/1"
_RUN_ONLY_KEYS = ("local_rank", "world_size", "nproc", "ip", "port", "offset")


def plain(value):
    """``value`` with every non-plain leaf turned into a plain Python value (str for the rest)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return str(value)


def checkpoint_config(config):
    """What a checkpoint needs to rebuild its Config: names plus the user's own settings."""
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        # process-group settings of a distributed run are not part of the model's config
        "settings": plain({k: v for k, v in config.external_values().items() if k not in _RUN_ONLY_KEYS}),
        "final": plain(config.final_config_dict),
    }


def load_checkpoint(path, map_location="cpu"):
    """Load a plugin checkpoint with ``weights_only=True``."""
    return torch.load(path, map_location=map_location, weights_only=True)


class SafeCheckpointMixin:
    """Save/resume/reload checkpoints that hold only tensors and plain values."""

    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names checkpoints by the second; parallel runs (compare, tuning) could collide.
        stem, ext = os.path.splitext(self.saved_model_file)
        self.saved_model_file = f"{stem}-{uuid.uuid4().hex[:6]}{ext}"

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": checkpoint_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": plain(self.model.other_parameter()),
            "optimizer": self.optimizer.state_dict() if getattr(self, "optimizer", None) is not None else None,
        }
        tmp = f"{saved_model_file}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, saved_model_file)  # a reader never sees a half-written file
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        checkpoint = load_checkpoint(resume_file, self.device)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(
                f"checkpoint {resume_file} was trained with model {checkpoint['config']['model']}, "
                f"not {self.config['model']}"
            )
        self._restore_model(checkpoint)
        if checkpoint.get("optimizer") is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            self._restore_model(load_checkpoint(checkpoint_file, self.device))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def _restore_model(self, checkpoint):
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))


# per-user rows of RecBole's collected ranking data (one row per evaluated user)
_USER_ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.items")


class ColdStartEvaluator(Evaluator):
    """RecBole's Evaluator that also reports ``cold_<metric>`` over the cold users' rows.

    ``row_users`` (set by the trainer for one evaluation) is the user id of every collected row;
    ``user_counts[u]`` is user u's number of training interactions.
    """

    def __init__(self, config, threshold):
        super().__init__(config)
        self.threshold = threshold
        self.row_users = None
        self.user_counts = None

    def evaluate(self, dataobject):
        result = super().evaluate(dataobject)
        if self.row_users is None:
            return result
        users = torch.cat(self.row_users) if self.row_users else torch.zeros(0, dtype=torch.long)
        cold = self.user_counts[users] <= self.threshold
        getLogger().info(
            f"cold-start users (<= {self.threshold} training interactions): {int(cold.sum())} of {len(users)} evaluated"
        )
        if not cold.any():
            return OrderedDict([*result.items(), *((f"cold_{k}", float("nan")) for k in result)])
        subset = DataStruct()
        for key, value in dataobject._data_dict.items():
            subset.set(key, value[cold] if key in _USER_ROW_KEYS else value)
        cold_result = super().evaluate(subset)
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


_SAFE_TRAINERS = {}


def get_trainer(model_type, model_name):
    """RecBole's trainer class for the model, with safe checkpoints and cold-start metrics mixed in."""
    base = recbole_get_trainer(model_type, model_name)
    model_trainer = _plugin_trainer(model_name)
    base = model_trainer or base
    if base not in _SAFE_TRAINERS:
        _SAFE_TRAINERS[base] = type(f"Safe{base.__name__}", (SafeCheckpointMixin, ColdStartMixin, base), {})
    return _SAFE_TRAINERS[base]


def _plugin_trainer(model_name):
    """A plugin model may name its own trainer class in a ``trainer_class`` attribute."""
    from recbole_spectral import registry

    if not registry.is_plugin_model(model_name):
        return None
    return getattr(registry.get_model(model_name), "trainer_class", None)
