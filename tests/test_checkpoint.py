"""Every reader of a checkpoint (``read_checkpoint``; ``load_data_and_model``; the trainer's
``resume_checkpoint`` and ``evaluate(model_file=...)``) refuses a missing, truncated or non-checkpoint
file, and a checkpoint of another model or dataset where the caller knows what it expects, with one
:class:`CheckpointError` line naming the file and what it is not.

The trainer paths run on a stub RecBole trainer (the mixin only needs config/model/optimizer), so no
dataset is built here; the end-to-end save/reload is covered by tests/test_all_models.py."""
import logging
import os
import pickle

import pytest
import torch
import torch.nn as nn

from recbole_spectral.checkpoint import (
    CHECKPOINT_FORMAT,
    SafeCheckpointMixin,
    load_checkpoint,
    read_checkpoint,
)
from recbole_spectral.errors import CheckpointError, SpectralError
from recbole_spectral.quick_start import load_data_and_model


class TinyModel(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.embedding = nn.Embedding(4, width)

    def other_parameter(self):
        return None

    def load_other_parameter(self, para):
        pass


class StubConfig(dict):
    def external_values(self):
        return {"embedding_size": 3}

    @property
    def final_config_dict(self):
        return dict(self)


class StubTrainer:
    """The attributes of RecBole's Trainer that SafeCheckpointMixin uses."""

    def __init__(self, config, model):
        self.config, self.model = config, model
        self.saved_model_file = os.path.join("saved", f"{config['model']}.pth")
        self.device = torch.device("cpu")
        self.logger = logging.getLogger("test_checkpoint")
        self.optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        self.cur_step, self.start_epoch, self.best_valid_score = 0, 0, -1.0

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        return {"score": float(self.model.embedding.weight.detach().sum())}


class Trainer(SafeCheckpointMixin, StubTrainer):
    pass


def trainer(model="SSR", dataset="ml-100k-mm", width=3):
    config = StubConfig(model=model, dataset=dataset, single_spec=True, local_rank=0)
    return Trainer(config, TinyModel(width))


@pytest.fixture
def saved(workdir):
    """A real checkpoint written by the mixin for model SSR on ml-100k-mm (epoch 4)."""
    os.makedirs("saved")
    writer = trainer()
    writer.cur_step, writer.best_valid_score = 10, 0.25
    writer._save_checkpoint(4, verbose=False)
    return writer.saved_model_file, writer.model


def _torch_bytes(saved):
    with open(saved[0], "rb") as handle:
        return handle.read()


# -- the files that are not checkpoints, and what each is called ---------------------------------
def _bad_files(workdir, saved):
    data = _torch_bytes(saved)
    yield "missing", lambda p: None, "checkpoint {p} does not exist"
    yield "directory", lambda p: os.mkdir(p), "checkpoint {p} is a directory, not a checkpoint file"
    yield "empty", lambda p: open(p, "wb").close(), "{p} is not a recbole-spectral checkpoint: it is empty"
    yield "text", lambda p: open(p, "w").write("epoch 3: recall 0.2\n"), (
        "{p} is not a recbole-spectral checkpoint: it starts with b'epoch 3: recall ', not a torch zip archive")
    yield "truncated", lambda p: open(p, "wb").write(data[: len(data) // 2]), (
        "checkpoint {p} is truncated or corrupt: not a complete torch zip archive (%d bytes)" % (len(data) // 2))
    yield "truncated-tail", lambda p: open(p, "wb").write(data[:-1]), (
        "checkpoint {p} is truncated or corrupt: not a complete torch zip archive (%d bytes)" % (len(data) - 1))
    yield "no-format", lambda p: torch.save({"state_dict": {}, "epoch": 1}, p), (
        "{p} is a torch file but not a recbole-spectral checkpoint: it holds a dict without a 'format' key "
        f"(expected format '{CHECKPOINT_FORMAT}')")
    yield "bare-tensor", lambda p: torch.save(torch.zeros(3), p), (
        f"{{p}} is a torch file but not a recbole-spectral checkpoint: it holds a Tensor (expected format '{CHECKPOINT_FORMAT}')")
    yield "other-format", lambda p: torch.save({"format": "recbole-spectral/0"}, p), (
        f"{{p}} is not a '{CHECKPOINT_FORMAT}' checkpoint: its format is 'recbole-spectral/0'")
    yield "no-weights", lambda p: torch.save({"format": CHECKPOINT_FORMAT, "config": {"model": "SSR", "dataset": "x"}}, p), (
        "{p} is not a complete recbole-spectral checkpoint: it has no state_dict")
    yield "recbole-native", _recbole_native, (
        "{p} is not a recbole-spectral checkpoint: it pickles recbole_spectral.config.SpectralConfig, which "
        "weights-only loading refuses (a RecBole-native checkpoint? retrain or re-save it with this plugin)")
    yield "pickle", lambda p: pickle.dump({"state_dict": {}}, open(p, "wb")), (
        "{p} is not a recbole-spectral checkpoint: it is a bare Python pickle (torch's legacy format or pickle.dump)")
    yield "npy", lambda p: _npy(p), "{p} is not a recbole-spectral checkpoint: it is a .npy array"


def _recbole_native(path):
    """What RecBole 1.2.1's Trainer._save_checkpoint writes: its Config object pickled with the weights."""
    from recbole_spectral.config import SpectralConfig

    config = SpectralConfig("BPR", "ml-100k", config_dict={"use_gpu": False})
    torch.save({"config": config, "epoch": 0, "cur_step": 0, "best_valid_score": 0.1,
                "state_dict": TinyModel().state_dict(), "other_parameter": None, "optimizer": {}}, path)


def _npy(path):
    import numpy as np

    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))


CASES = ["missing", "directory", "empty", "text", "truncated", "truncated-tail", "no-format", "bare-tensor",
         "other-format", "no-weights", "recbole-native", "pickle", "npy"]


def make_bad(case, workdir, saved):
    path = str(workdir / f"{case}.pth")
    apply, message = {name: (a, m) for name, a, m in _bad_files(workdir, saved)}[case]
    apply(path)
    return path, message.format(p=path)


def assert_one_line(err, message):
    assert isinstance(err.value, CheckpointError) and isinstance(err.value, SpectralError)
    assert str(err.value) == message and "\n" not in message


@pytest.mark.parametrize("case", CASES)
def test_read_checkpoint_refuses(case, workdir, saved):
    path, message = make_bad(case, workdir, saved)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert_one_line(err, message)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)  # the former name reads through the same checks


@pytest.mark.parametrize("case", CASES)
def test_load_data_and_model_refuses_before_building_anything(case, workdir, saved):
    path, message = make_bad(case, workdir, saved)
    with pytest.raises(CheckpointError) as err:
        load_data_and_model(path)
    assert_one_line(err, message)
    assert not (workdir / "log").exists()


@pytest.mark.parametrize("case", CASES)
def test_resume_refuses_and_leaves_the_trainer_untouched(case, workdir, saved):
    path, message = make_bad(case, workdir, saved)
    resumed = trainer()
    before = resumed.model.embedding.weight.detach().clone()
    with pytest.raises(CheckpointError) as err:
        resumed.resume_checkpoint(path)
    assert_one_line(err, message)
    assert resumed.start_epoch == 0 and resumed.saved_model_file != path
    assert torch.equal(resumed.model.embedding.weight, before)


@pytest.mark.parametrize("case", CASES)
def test_evaluate_with_a_model_file_refuses(case, workdir, saved):
    path, message = make_bad(case, workdir, saved)
    with pytest.raises(CheckpointError) as err:
        trainer().evaluate(["batch"], load_best_model=True, model_file=path)
    assert_one_line(err, message)


# -- a valid checkpoint of something else -----------------------------------------------------------
def test_read_checkpoint_checks_model_and_dataset_when_asked(saved):
    path, _ = saved
    assert read_checkpoint(path)["config"]["model"] == "SSR"  # no expectation: any plugin checkpoint
    assert read_checkpoint(path, model="ssr", dataset="ml-100k-mm")["epoch"] == 4
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path, model="SpectraMB")
    assert_one_line(err, f"checkpoint {path} is of model SSR, not SpectraMB")
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path, dataset="ml-100k-mb")
    assert_one_line(err, f"checkpoint {path} was trained on dataset ml-100k-mm, not ml-100k-mb")


@pytest.mark.parametrize("model,dataset,message", [
    ("SpectraMB", "ml-100k-mm", "checkpoint {p} is of model SSR, not SpectraMB"),
    ("SSR", "amazon-baby", "checkpoint {p} was trained on dataset ml-100k-mm, not amazon-baby"),
])
def test_resume_and_evaluate_refuse_another_model_or_dataset(model, dataset, message, saved):
    path, _ = saved
    with pytest.raises(CheckpointError) as err:
        trainer(model, dataset).resume_checkpoint(path)
    assert_one_line(err, message.format(p=path))
    with pytest.raises(CheckpointError) as err:
        trainer(model, dataset).evaluate(["batch"], model_file=path)
    assert_one_line(err, message.format(p=path))


def test_resume_refuses_weights_of_another_shape(saved):
    path, _ = saved
    with pytest.raises(CheckpointError) as err:
        trainer(width=5).resume_checkpoint(path)
    assert str(err.value).startswith(f"checkpoint {path} does not fit model TinyModel: size mismatch for embedding.weight")
    assert "\n" not in str(err.value)


def test_a_valid_checkpoint_resumes_and_evaluates(saved):
    path, model = saved
    resumed = trainer()
    resumed.resume_checkpoint(path)
    assert (resumed.start_epoch, resumed.cur_step, resumed.best_valid_score) == (5, 10, 0.25)
    assert resumed.saved_model_file == path
    assert torch.equal(resumed.model.embedding.weight, model.embedding.weight)
    fresh = trainer()
    assert fresh.evaluate(["batch"], model_file=path) == {"score": float(model.embedding.weight.detach().sum())}
