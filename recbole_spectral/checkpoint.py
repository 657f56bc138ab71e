"""Checkpoints that reload under torch's ``weights_only=True`` default (torch >= 2.6).

RecBole 1.2.1 pickles its Config into every checkpoint and reloads it with a bare ``torch.load``,
which torch >= 2.6 refuses. Here checkpoints hold only tensors and plain Python values (the config is
stored as the model/dataset names and the user's own settings), are written atomically under a unique
name, and are always loaded with ``weights_only=True``. :class:`SafeCheckpointMixin` is mixed into
whichever trainer a model gets (``recbole_spectral.trainer``), so RecBole baselines get it too.
"""
import enum
import os
import uuid

import torch

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
