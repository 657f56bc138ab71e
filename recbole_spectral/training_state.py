"""Training state for runs that outlive a process: a run killed mid-training resumes where it stopped.

After every validation, :func:`save_training_state` writes (atomically) everything the next epoch depends
on: the model's weights and non-parameter state, the optimizer, the early-stopping bookkeeping (start
epoch, steps without improvement, best score and result, best epoch, the best checkpoint's path), the epoch
times so far, and every random number generator a run draws from (torch's CPU and CUDA, numpy's and Python's
global ones, the training dataloader's shuffling generator and any ``torch.Generator`` a model holds, e.g. an edge
pruning's). :func:`restore_training_state` puts them back, so a resumed run computes the same epochs as an
uninterrupted one (tests/test_training_state.py checks equal scores). The file is a plugin checkpoint
(``read_checkpoint``: weights-only, refused with one line when it is truncated or of another run).

RecBole's own ``resume_checkpoint`` restarts from the best checkpoint (the epochs after it are lost and the
random streams differ); this is the exact variant, used by ``compare --resume``.
"""
import os
import random

import numpy as np
import torch

from recbole_spectral.checkpoint import plain, read_checkpoint, restore_weights, trainer_payload, write_checkpoint
from recbole_spectral.errors import CheckpointError

STATE_KIND = "training-state"


def model_generators(model):
    """{'<module path>.<attribute>': generator} for every ``torch.Generator`` held by ``model``'s modules
    (or by plain objects they hold, one level down, e.g. an edge-pruning helper)."""
    found = {}
    for prefix, module in model.named_modules():
        for name, value in vars(module).items():
            holders = [(name, value)] + ([(f"{name}.{k}", v) for k, v in vars(value).items()]
                                         if hasattr(value, "__dict__") and not isinstance(value, torch.nn.Module) else [])
            for key, obj in holders:
                if isinstance(obj, torch.Generator):
                    found[f"{prefix}.{key}" if prefix else key] = obj
    return found


def _numpy_state():
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_state(state):
    np.random.set_state((state["kind"], state["keys"].numpy().astype(np.uint32), state["pos"],
                         state["has_gauss"], state["gauss"]))


def _python_state():
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": list(internal), "gauss": gauss}


def save_training_state(path, trainer, train_data, best_epoch, epoch_times, next_epoch, elapsed_s=0.0):
    """Write the state a run needs to go on at epoch ``next_epoch`` (0-based) to ``path``, atomically;
    ``elapsed_s``: the run's wall time so far, over all its processes."""
    model = trainer.model
    write_checkpoint(path, {
        **trainer_payload(trainer),
        "kind": STATE_KIND,
        "next_epoch": int(next_epoch),
        "cur_step": int(trainer.cur_step),
        "best_valid_score": float(trainer.best_valid_score),
        "best_valid_result": plain(dict(trainer.best_valid_result or {})),
        "best_epoch": best_epoch,
        "best_model_file": str(trainer.saved_model_file),
        "epoch_times": [float(t) for t in epoch_times],
        "elapsed_s": float(elapsed_s),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,  # dropout etc. on a GPU
            "numpy": _numpy_state(),
            "python": _python_state(),
            "dataloader": train_data.generator.get_state() if getattr(train_data, "generator", None) is not None else None,
            "model": {name: g.get_state() for name, g in model_generators(model).items()},
        },
    })


def read_training_state(path, config):
    """The training state at ``path`` for ``config``'s model and dataset, or a one-line CheckpointError."""
    state = read_checkpoint(path, model=config["model"], dataset=config["dataset"], map_location=config["device"])
    if state.get("kind") != STATE_KIND:
        raise CheckpointError(f"{path} is a model checkpoint, not a training state (delete it to start the run afresh)")
    if not os.path.isfile(state["best_model_file"]):
        raise CheckpointError(f"training state {path} names the best checkpoint {state['best_model_file']}, which is "
                              "gone (delete the state to start the run afresh)")
    return state


def restore_training_state(state, trainer, train_data, path="training state"):
    """Put a state read by :func:`read_training_state` (from ``path``) back into ``trainer`` (and its model)
    and the random generators; returns (best_epoch, epoch_times)."""
    model = trainer.model
    restore_weights(model, state, path)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.start_epoch = state["next_epoch"]
    trainer.cur_step = state["cur_step"]
    trainer.best_valid_score = state["best_valid_score"]
    trainer.best_valid_result = state["best_valid_result"] or None
    trainer.saved_model_file = state["best_model_file"]
    rng = state["rng"]  # generator states are CPU byte tensors (the state may have been read onto a GPU)
    torch.set_rng_state(rng["torch"].cpu())
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
    _set_numpy_state(rng["numpy"])
    python = rng["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    if rng["dataloader"] is not None:
        train_data.generator.set_state(rng["dataloader"].cpu())
    generators = model_generators(model)
    for name, value in rng["model"].items():
        if name not in generators:
            raise CheckpointError(f"training state has a random generator '{name}' that model "
                                  f"{type(model).__name__} does not hold (delete the state to start afresh)")
        generators[name].set_state(value.cpu())
    return state["best_epoch"], list(state["epoch_times"])
