"""A run killed mid-training goes on from its last validation and computes what an uninterrupted run computes:
the same weights after every epoch (torch.equal), the same validation scores and test result."""
import os

import pytest
import torch

from recbole_spectral.compare import compare_models, read_rows
from recbole_spectral.config import SpectralConfig
from recbole_spectral.errors import CheckpointError
from recbole_spectral.quick_start import start_run, train_and_test
from recbole_spectral.data.converters.mmrec import convert
from tests.helpers import FAST, write_synthetic_mmrec

EPOCHS = 3
# stochastic in every way a run can be: shuffled batches and sampled negatives (BPR), a pruned graph redrawn
# every epoch from torch's global generator (FREEDOM), a model-held generator plus band masking (SSR: its edge
# pruning draws from its own torch.Generator, its band masks from torch's), and dropout (SMORE)
# (the multimodal ones on a small synthetic MMRec dataset: 80 users, 50 items)
SMALL = {"train_batch_size": 64, "knn_k": 5, "embedding_size": 16}
CASES = {
    "BPR": ("ml-100k", {}),
    "FREEDOM": ("synthetic-mm", SMALL),
    "SSR": ("synthetic-mm", {**SMALL, "edge_keep_ratio": 0.5, "band_recalibrate_every": 1, "band_drop_prob": 0.3}),
    "SMORE": ("synthetic-mm", {**SMALL, "dropout_rate": 0.3}),
}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: a multi-threaded CPU reduction may sum in another order from run to run, and the
    weights are compared bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_mm(workdir):
    write_synthetic_mmrec(workdir / "mmrec" / "synthetic-mm")
    convert(str(workdir / "mmrec" / "synthetic-mm"), "synthetic-mm", log=lambda line: None)


class Killed(Exception):
    """Stands for the process being killed."""


def run(model, dataset, overrides, workdir, state_file, kill=lambda epoch, score: False, report=None, weights=None):
    """Valid scores per epoch (1-based) and the test result (None when ``kill(epoch, score)`` said to die
    after that epoch's validation); ``weights`` (a dict) receives a copy of the model's state after every epoch."""
    settings = {**FAST, "epochs": EPOCHS, "eval_step": 1, "stopping_step": 10, "seed": 2020,
                "valid_metric": "Recall@10", "train_batch_size": 4096, "checkpoint_dir": str(workdir / "saved"),
                **overrides}
    config = SpectralConfig(model, dataset, config_dict=settings)
    start_run(config)
    scores, trainers = {}, []

    def keep_trainer(cls):
        class Kept(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                trainers.append(self)
        return Kept

    def on_valid(epoch_idx, score):
        scores[epoch_idx + 1] = score
        if weights is not None:
            weights[epoch_idx + 1] = {k: v.detach().clone() for k, v in trainers[0].model.state_dict().items()}
        if kill(epoch_idx + 1, score):
            raise Killed

    try:
        result, _, _ = train_and_test(config, callback_fn=on_valid, state_file=state_file, report=report,
                                      trainer_wrapper=keep_trainer)
    except Killed:
        return scores, None
    return scores, result


def assert_same_weights(first, second, exact=True):
    assert sorted(first) == sorted(second)
    for epoch in first:
        assert first[epoch].keys() == second[epoch].keys()
        for name in first[epoch]:
            if exact:
                assert torch.equal(first[epoch][name], second[epoch][name]), f"epoch {epoch}: {name}"
            else:
                torch.testing.assert_close(first[epoch][name], second[epoch][name], msg=f"epoch {epoch}: {name}")


@pytest.mark.parametrize("model", list(CASES))
def test_a_killed_run_resumes_exactly(model, workdir):
    check_resume(model, *CASES[model], workdir)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU variant runs on a machine with one")
@pytest.mark.parametrize("model", ["SSR", "SMORE"])
def test_a_killed_run_resumes_exactly_on_cuda(model, workdir):
    """On a GPU: dropout and band masks draw from torch's CUDA generator, which the state carries too. The weights
    are compared to float32 rounding, not bit for bit: CUDA's atomic scatter-adds (embedding and sparse
    backward) sum in a run-dependent order even in two uninterrupted runs."""
    dataset, overrides = CASES[model]
    check_resume(model, dataset, {**overrides, "use_gpu": True, "gpu_id": "0"}, workdir, exact=False)


def check_resume(model, dataset, overrides, workdir, exact=True):
    if dataset == "synthetic-mm":
        synthetic_mm(workdir)
    straight_weights, resumed_weights = {}, {}
    straight, expected = run(model, dataset, overrides, workdir, state_file=None, weights=straight_weights)
    state = str(workdir / "run.state.pth")

    before, result = run(model, dataset, overrides, workdir, state, kill=lambda epoch, score: epoch == 1,
                         weights=resumed_weights)
    assert result is None and sorted(before) == [1] and os.path.isfile(state)
    elapsed = torch.load(state, weights_only=True)["elapsed_s"]  # wall time of the killed process
    after, result = run(model, dataset, overrides, workdir, state, weights=resumed_weights)
    assert_same_weights(straight_weights, resumed_weights, exact)  # every epoch's weights, bit for bit on a CPU

    assert expected["time_before_resume_s"] == 0.0 and elapsed > 0.0
    assert result["time_before_resume_s"] == pytest.approx(elapsed)  # a resumed run's time includes the first part

    assert sorted(after) == [2, 3]  # epoch 1 is not trained again
    assert {**before, **after} == straight  # the same validation scores
    assert result["test_result"] == expected["test_result"]
    assert (result["best_epoch"], result["epochs_run"]) == (expected["best_epoch"], expected["epochs_run"])
    assert not os.path.exists(state)  # removed once the run is tested


def test_a_run_killed_after_its_last_validation_is_only_tested(workdir):
    overrides = {"epochs": 40, "stopping_step": 0, "learning_rate": 0.05}  # stops at the first epoch without gain
    straight, expected = run("BPR", "ml-100k", overrides, workdir, state_file=None)
    assert expected["epochs_run"] < 40
    state = str(workdir / "run.state.pth")
    best = {"score": -1.0}

    def at_the_stop(epoch, score):
        stop = score < best["score"]
        best["score"] = max(best["score"], score)
        return stop

    before, result = run("BPR", "ml-100k", overrides, workdir, state, kill=at_the_stop)
    assert result is None and before == straight
    lines = []
    after, result = run("BPR", "ml-100k", overrides, workdir, state, report=lines.append)
    assert after == {} and any("(training had ended)" in line for line in lines)
    assert result["test_result"] == expected["test_result"] and result["best_epoch"] == expected["best_epoch"]


def test_a_state_that_is_not_this_runs_is_refused_in_one_line(workdir):
    config = SpectralConfig("BPR", "ml-100k", config_dict={**FAST, "checkpoint_dir": str(workdir / "saved")})
    start_run(config)
    truncated = workdir / "truncated.state.pth"
    torch.save({"format": "recbole-spectral/1"}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"truncated\.state\.pth is truncated or corrupt"):
        train_and_test(config, state_file=str(truncated))

    other = SpectralConfig("LightGCN", "ml-100k", config_dict={**FAST, "epochs": 2, "checkpoint_dir": str(workdir / "saved")})
    start_run(other)
    state = str(workdir / "lightgcn.state.pth")
    with pytest.raises(Killed):
        train_and_test(other, state_file=state, callback_fn=lambda e, s: (_ for _ in ()).throw(Killed()) if e == 1 else None)
    config = SpectralConfig("BPR", "ml-100k", config_dict={**FAST, "checkpoint_dir": str(workdir / "saved")})
    start_run(config)
    with pytest.raises(CheckpointError, match=r"lightgcn\.state\.pth is of model LightGCN, not BPR"):
        train_and_test(config, state_file=state)


def test_compare_resume_keeps_no_state_once_a_run_is_done(workdir):
    saved = workdir / "saved"
    compare_models(["BPR"], "ml-100k", seeds=[2020], config_dict={**FAST, "epochs": 2, "checkpoint_dir": str(saved)},
                   out_dir=str(workdir / "results"), resume=True)
    assert read_rows(str(workdir / "results"))[0]["status"] == "ok"
    assert [p for p in os.listdir(saved) if p.endswith(".state.pth")] == []
