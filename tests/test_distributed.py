"""Distributed training through RecBole's spawn path: 2 gloo processes on CPU."""
import pytest
import torch

from recbole_spectral.checkpoint import load_checkpoint
from recbole_spectral.distributed import free_port, run_distributed
from recbole_spectral.errors import SpectralError
from recbole_spectral.quick_start import load_data_and_model
from recbole_spectral.trainer import trainer_class
from tests.helpers import FAST


def test_two_process_gloo_bpr_tests_like_a_single_process(workdir):
    result = run_distributed("BPR", "ml-100k", None, {"port": free_port()}, nproc=2, config_dict={**FAST, "train_batch_size": 8192})

    # both ranks finished, and data-parallel training kept their replicas identical
    assert sorted(result["finished_ranks"]) == [0, 1]
    assert result["finished_ranks"][0] == result["finished_ranks"][1]
    assert set(result["test_result"]) >= {"recall@10", "ndcg@20"}

    # the best checkpoint rank 0 wrote reloads in one process and gives the very same test metrics
    checkpoint = load_checkpoint(result["saved_model_file"])
    assert "local_rank" not in checkpoint["config"]["settings"] and "world_size" not in checkpoint["config"]["settings"]
    config, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    assert config["single_spec"] and config["device"] == torch.device("cpu")
    with torch.no_grad():
        assert float(sum(p.double().sum() for p in model.parameters())) == pytest.approx(result["finished_ranks"][0])
    trainer = trainer_class(config)(config, model)
    assert trainer.evaluate(test_data, load_best_model=False) == result["test_result"]


def test_inconsistent_world_is_a_one_line_error(workdir):
    with pytest.raises(SpectralError, match="world_size"):
        run_distributed("BPR", "ml-100k", None, {"world_size": "1"}, nproc=2, config_dict={**FAST, "train_batch_size": 8192})
