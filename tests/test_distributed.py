"""Distributed training through RecBole's spawn path: 2 gloo processes on CPU (BPR; SSR, a graph model with a
buffer and its own generator), and the data-parallel gradient of SSR against the single-process one."""
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from recbole.data.interaction import Interaction
from torch.nn.parallel import DistributedDataParallel

from recbole_spectral.checkpoint import load_checkpoint
from recbole_spectral.distributed import free_port, run_distributed
from recbole_spectral.errors import SpectralError
from recbole_spectral.quick_start import load_data_and_model
from recbole_spectral.trainer import trainer_class
from recbole_spectral.data.converters.mmrec import convert
from recbole_spectral.model.multimodal.ssr import SSR
from tests.helpers import FAST, TinyMultiModalDataset, model_config, pairwise_batch, write_synthetic_mmrec


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


def test_two_process_gloo_ssr_replicas_end_identical_and_test_like_a_single_process(workdir):
    """SSR holds a buffer (its band borders, recalibrated every epoch), its own edge-pruning generator and draws
    band masks from torch's: after 2 epochs on 2 ranks both replicas hold the very same weights and buffers, and
    the best checkpoint tests in one process exactly as rank 0 tested it."""
    write_synthetic_mmrec(workdir / "mmrec" / "synthetic-mm")
    convert(str(workdir / "mmrec" / "synthetic-mm"), "synthetic-mm", log=lambda line: None)
    settings = {**FAST, "epochs": 2, "train_batch_size": 64, "knn_k": 5, "embedding_size": 16, "edge_keep_ratio": 0.5,
                "band_drop_prob": 0.3, "band_recalibrate_every": 1}
    result = run_distributed("SSR", "synthetic-mm", None, {"port": free_port()}, nproc=2, config_dict=settings)
    assert sorted(result["state_digests"]) == [0, 1]
    assert result["state_digests"][0] == result["state_digests"][1]
    assert result["finished_ranks"][0] == result["finished_ranks"][1]
    config, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    trainer = trainer_class(config)(config, model)
    assert trainer.evaluate(test_data, load_best_model=False) == result["test_result"]


N_PAIRS = 16


def tiny_ssr(seed):
    torch.manual_seed(seed)
    config = model_config("SSR", embedding_size=8, knn_k=3, edge_keep_ratio=0.5, band_drop_prob=0.0, lambda_cl=0.0,
                          pref_reg_weight=0.0, seed=2020)
    model = SSR(config, TinyMultiModalDataset())
    model.train()
    return model


def ssr_ddp_rank(rank, port, queue):
    """One rank: an SSR initialised with its own seed (as the plugin's ranks are), wrapped in DDP (which
    broadcasts rank 0's weights and buffers), the edge-pruned graph drawn from the model's own generator, one
    loss on this rank's half of the batch, gradients all-reduced as RecBole's trainer does it."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, init_method=f"tcp://localhost:{port}")
    model = tiny_ssr(seed=rank)
    ddp = DistributedDataParallel(model)
    model.resample_training_graph()
    forward, model.forward = model.forward, (lambda x: x)  # RecBole's set_reduce_hook: arm the reducer ...
    ddp(torch.LongTensor([0]))
    model.forward = forward
    half = pairwise_batch(TinyMultiModalDataset.n_users, TinyMultiModalDataset.n_items, N_PAIRS, seed=4)
    half = Interaction({k: v[rank * N_PAIRS // 2:(rank + 1) * N_PAIRS // 2] for k, v in half.interaction.items()})
    loss = model.calculate_loss(half) + sum(p.sum() * 0 for p in model.parameters())  # ... and its sync_grad_loss
    loss.backward()
    # numpy arrays, not tensors: a tensor crosses processes as shared memory that is gone once this rank exits
    queue.put((rank, {n: p.grad.numpy().copy() for n, p in model.named_parameters()}, model.band_borders.numpy().copy()))
    dist.barrier()
    dist.destroy_process_group()


def test_ddp_gradient_of_ssr_on_two_halves_equals_the_single_process_gradient_of_the_whole_batch():
    """The loss is a mean over the batch's pairs plus batch-independent terms (no InfoNCE, masking or preference
    L2 here), so the all-reduced mean of the two halves' gradients is the whole batch's gradient: what the
    math says, to float32 rounding."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    ranks_context = mp.start_processes(ssr_ddp_rank, args=(free_port(), queue), nprocs=2, join=False, start_method="spawn")
    try:  # read before joining: a rank blocks in put() while the pipe is full (two gradient dicts exceed 64 KiB)
        ranks = dict((rank, (grads, borders)) for rank, grads, borders in (queue.get(timeout=600), queue.get(timeout=600)))
    finally:
        while not ranks_context.join():  # a rank that failed is raised here (the other is terminated)
            pass
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks: the band borders come from an eigendecomposition
    try:
        model = tiny_ssr(seed=0)
        model.resample_training_graph()
        model.calculate_loss(pairwise_batch(TinyMultiModalDataset.n_users, TinyMultiModalDataset.n_items, N_PAIRS, seed=4)).backward()
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(ranks[0][1], ranks[1][1]) and np.array_equal(ranks[0][1], model.band_borders.numpy())
    for name, parameter in model.named_parameters():
        assert np.array_equal(ranks[0][0][name], ranks[1][0][name]), name
        np.testing.assert_allclose(ranks[0][0][name], parameter.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
