"""A run killed mid-training goes on from its last validation and computes what an uninterrupted run computes."""
import os

import pytest
import torch

from recbole_spectral.compare import compare_models, read_rows
from recbole_spectral.config import SpectralConfig
from recbole_spectral.errors import CheckpointError
from recbole_spectral.quick_start import start_run, train_and_test
from tests.helpers import FAST

EPOCHS = 3
# stochastic in every way a run can be: shuffled batches and sampled negatives (BPR), a pruned graph redrawn
# every epoch from torch's global generator (FREEDOM), and a model-held generator plus band masking (SSR)
CASES = {
    "BPR": ("ml-100k", {}),
    "FREEDOM": ("ml-100k-mm", {}),
    "SSR": ("ml-100k-mm", {"edge_keep_ratio": 0.5, "band_recalibrate_every": 1, "embedding_size": 16}),
}


class Killed(Exception):
    """Stands for the process being killed."""


def run(model, dataset, overrides, workdir, state_file, kill=lambda epoch, score: False, report=None):
    """Valid scores per epoch (1-based) and the test result (None when ``kill(epoch, score)`` said to die
    after that epoch's validation)."""
    settings = {**FAST, "epochs": EPOCHS, "eval_step": 1, "stopping_step": 10, "seed": 2020,
                "valid_metric": "Recall@10", "train_batch_size": 4096, "checkpoint_dir": str(workdir / "saved"),
                **overrides}
    config = SpectralConfig(model, dataset, config_dict=settings)
    start_run(config)
    scores = {}

    def on_valid(epoch_idx, score):
        scores[epoch_idx + 1] = score
        if kill(epoch_idx + 1, score):
            raise Killed

    try:
        result, _, _ = train_and_test(config, callback_fn=on_valid, state_file=state_file, report=report)
    except Killed:
        return scores, None
    return scores, result


@pytest.mark.parametrize("model", list(CASES))
def test_a_killed_run_resumes_exactly(model, workdir):
    dataset, overrides = CASES[model]
    straight, expected = run(model, dataset, overrides, workdir, state_file=None)
    state = str(workdir / "run.state.pth")

    before, result = run(model, dataset, overrides, workdir, state, kill=lambda epoch, score: epoch == 1)
    assert result is None and sorted(before) == [1] and os.path.isfile(state)
    elapsed = torch.load(state, weights_only=True)["elapsed_s"]  # wall time of the killed process
    after, result = run(model, dataset, overrides, workdir, state)

    assert expected["time_before_resume_s"] == 0.0 and elapsed > 0.0
    assert result["time_before_resume_s"] == pytest.approx(elapsed)  # a resumed run's time includes the first part

    assert sorted(after) == [2, 3]  # epoch 1 is not trained again
    assert {**before, **after} == straight  # bit for bit: same weights, optimiser and random streams
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
