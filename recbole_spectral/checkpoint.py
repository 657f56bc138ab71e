"""Checkpoints that reload under torch's ``weights_only=True`` default (torch >= 2.6).

RecBole 1.2.1 pickles its Config into every checkpoint and reloads it with a bare ``torch.load``,
which torch >= 2.6 refuses. Here checkpoints hold only tensors and plain Python values (the config is
stored as the model/dataset names and the user's own settings), are written atomically under a unique
name, and are always loaded with ``weights_only=True``. :class:`SafeCheckpointMixin` is mixed into
whichever trainer a model gets (``recbole_spectral.trainer``), so RecBole baselines get it too.

Every reader goes through :func:`read_checkpoint`, which refuses a missing, truncated or non-checkpoint
file, and a checkpoint of another model or dataset when the caller says what it expects, with one
:class:`~recbole_spectral.errors.CheckpointError` line naming the file and what it is not.
"""
import enum
import os
import pickle
import re
import uuid
import zipfile

import numpy as np
import torch

from recbole_spectral.errors import CheckpointError

CHECKPOINT_FORMAT = "recbole-spectral/1"
_RUN_ONLY_KEYS = ("local_rank", "world_size", "nproc", "ip", "port", "offset")


def plain(value):
    """``value`` with every non-plain leaf turned into a plain Python value (str for the rest)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):  # numpy scalars (e.g. metric values) would pickle as numpy globals
        return value.item()
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


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # a bare pickle (protocol >= 2), e.g. torch's legacy format or pickle.dump
_REQUIRED_KEYS = ("config", "state_dict")


def _what_it_starts_with(head):
    if not head:
        return "it is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it is a .npy array"
    if head.startswith(_PICKLE_MAGIC):
        return "it is a bare Python pickle (torch's legacy format or pickle.dump)"
    return f"it starts with {head[:16]!r}, not a torch zip archive"


def read_checkpoint(path, model=None, dataset=None, map_location="cpu"):
    """A plugin checkpoint read with ``weights_only=True`` and checked, or a one-line :class:`CheckpointError`
    naming the file and what it is not: missing, truncated, not a torch archive, a torch file that is not a
    ``recbole-spectral`` checkpoint (no/other ``format``, a RecBole-native pickle of a Config), or, when
    ``model``/``dataset`` are given (the caller knows what it expects), a checkpoint of another model or
    dataset."""
    path = str(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror or err}") from err
    if not head.startswith(_ZIP_MAGIC):
        raise CheckpointError(f"{path} is not a recbole-spectral checkpoint: {_what_it_starts_with(head)}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: not a complete torch zip archive "
                              f"({os.path.getsize(path)} bytes)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found is None:
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt: its pickled data does not read "
                                  "as plain tensors and values") from err
        raise CheckpointError(
            f"{path} is not a recbole-spectral checkpoint: it pickles {found.group(1)}, which weights-only loading "
            "refuses (a RecBole-native checkpoint? retrain or re-save it with this plugin)") from err
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {reason}") from err
    if not isinstance(checkpoint, dict) or "format" not in checkpoint:
        kind = "a dict without a 'format' key" if isinstance(checkpoint, dict) else f"a {type(checkpoint).__name__}"
        raise CheckpointError(f"{path} is a torch file but not a recbole-spectral checkpoint: it holds {kind} "
                              f"(expected format '{CHECKPOINT_FORMAT}')")
    if checkpoint["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a '{CHECKPOINT_FORMAT}' checkpoint: its format is {checkpoint['format']!r}")
    missing = [key for key in _REQUIRED_KEYS if key not in checkpoint]
    saved = checkpoint.get("config")
    if not missing and not (isinstance(saved, dict) and "model" in saved and "dataset" in saved):
        missing = ["config.model/config.dataset"]
    if missing:
        raise CheckpointError(f"{path} is not a complete recbole-spectral checkpoint: it has no {', '.join(missing)}")
    if model is not None and str(saved["model"]).lower() != str(model).lower():
        raise CheckpointError(f"checkpoint {path} is of model {saved['model']}, not {model}")
    if dataset is not None and str(saved["dataset"]) != str(dataset):
        raise CheckpointError(f"checkpoint {path} was trained on dataset {saved['dataset']}, not {dataset}")
    return checkpoint


def load_checkpoint(path, map_location="cpu"):
    """Former name of :func:`read_checkpoint` (kept for callers); reads and checks the file the same way."""
    return read_checkpoint(path, map_location=map_location)


def trainer_payload(trainer):
    """What every checkpoint of a trainer's run holds: format, config, weights, other state, optimizer."""
    optimizer = getattr(trainer, "optimizer", None)
    return {
        "format": CHECKPOINT_FORMAT,
        "config": checkpoint_config(trainer.config),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": plain(trainer.model.other_parameter()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }


def write_checkpoint(path, payload):
    """``torch.save`` through a temporary file, so a reader never sees a half-written checkpoint."""
    tmp = f"{path}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


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
        write_checkpoint(saved_model_file, {
            **trainer_payload(self),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
        })
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def _read_own_checkpoint(self, path):
        """``path`` read and checked against this run's model and dataset."""
        return read_checkpoint(path, model=self.config["model"], dataset=self.config["dataset"], map_location=self.device)

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        checkpoint = self._read_own_checkpoint(resume_file)
        missing = [key for key in ("epoch", "cur_step", "best_valid_score") if key not in checkpoint]
        if missing:
            raise CheckpointError(f"checkpoint {resume_file} cannot resume training: it has no {', '.join(missing)}")
        self._restore_model(checkpoint, resume_file)
        if checkpoint.get("optimizer") is not None:
            try:
                self.optimizer.load_state_dict(checkpoint["optimizer"])
            except (ValueError, KeyError, RuntimeError) as err:
                raise CheckpointError(f"checkpoint {resume_file} does not fit this run's optimizer: "
                                      f"{(str(err).splitlines() or [''])[0]}") from err
        self.saved_model_file = resume_file
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            checkpoint_file = str(model_file or self.saved_model_file)
            self._restore_model(self._read_own_checkpoint(checkpoint_file), checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def _restore_model(self, checkpoint, path="checkpoint"):
        restore_weights(self.model, checkpoint, path)


def restore_weights(model, checkpoint, path):
    """Load a checkpoint's weights into ``model``; a shape/key mismatch is one line naming the file."""
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
        raise CheckpointError(f"checkpoint {path} does not fit model {type(model).__name__}: {detail}") from err
    model.load_other_parameter(checkpoint.get("other_parameter"))
