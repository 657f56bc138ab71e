"""Distributed data-parallel training through RecBole's own spawn path, on CPU (gloo) or GPU (NCCL).

Same settings as RecBole's ``run``/``run_recboles``: ``nproc`` processes on this node, ``world_size``
processes in all (default ``nproc``), rendezvous at ``tcp://<ip>:<port>``, global rank
``local_rank + offset`` (a second node passes ``--offset=<ranks on the nodes before it>``). The
backend follows the config: NCCL on ``cuda:<local_rank>`` when ``use_gpu`` is true and CUDA is
available, gloo on CPU otherwise (RecBole 1.2.1 hard-codes NCCL and ``cuda:<rank>``).

What differs from RecBole's path, and why:

- the log and checkpoint folders are created once, before the ranks start (RecBole's
  ``ensure_dir`` races between ranks); on-demand datasets are built once, before the ranks start;
- all ranks agree on one checkpoint file, rank 0 writes it, and a barrier separates the end of
  training from reading the best checkpoint (rank 1 could otherwise read it half-written);
- test metrics are computed on global rank 0 over **all** test users with the best checkpoint,
  exactly as a single-process evaluation of that checkpoint. (RecBole's ``_map_reduce`` averages
  per-rank means weighted by batch count, after rounding, over a sampler that pads ranks with
  repeated users, so it is close to but not the single-process number.) Validation during training
  keeps RecBole's map-reduce: it drives early stopping and every rank gets the same value.
"""
import contextlib
import hashlib
import os
import socket
import uuid
from logging import getLogger

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from recbole_spectral.config import SpectralConfig, parse_cli_value
from recbole_spectral.errors import SpectralError



class DistributedConfig(SpectralConfig):
    """SpectralConfig whose process group uses gloo on CPU and NCCL on GPU (RecBole: NCCL only)."""

    def _init_device(self):
        if "local_rank" not in self.final_config_dict:
            return super()._init_device()
        settings = self.final_config_dict
        gpu_id = settings["gpu_id"]
        settings["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
        use_cuda = bool(settings.get("use_gpu", True)) and settings["gpu_id"] != "" and torch.cuda.is_available()
        if use_cuda:
            os.environ["CUDA_VISIBLE_DEVICES"] = settings["gpu_id"]
            if torch.cuda.device_count() < settings["nproc"]:
                raise SpectralError(f"nproc={settings['nproc']} needs as many GPUs; gpu_id '{settings['gpu_id']}' "
                                    f"gives {torch.cuda.device_count()}")
        local_rank = settings["local_rank"]
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            rank=local_rank + settings["offset"],
            world_size=settings["world_size"],
            init_method=f"tcp://{settings['ip']}:{settings['port']}",
        )
        settings["device"] = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        settings["single_spec"] = False
        if use_cuda:
            torch.cuda.set_device(local_rank)
        if local_rank != 0:  # as RecBole: only local rank 0 logs
            settings["state"] = "error"
            settings["show_progress"] = False
            settings["verbose"] = False


@contextlib.contextmanager
def single_process(config):
    """Let RecBole code treat this rank as a single process (no sampler sharding, no map-reduce)."""
    config["single_spec"] = True
    try:
        yield
    finally:
        config["single_spec"] = False


def distributed_trainer(trainer_class):
    """``trainer_class`` whose DistributedDataParallel wrapper also works for CPU (gloo) models.

    RecBole's AbstractTrainer passes ``device_ids=[local_rank]``, which torch refuses for a CPU module.
    """

    class DistributedTrainer(trainer_class):
        def __init__(self, config, model):
            if config["device"].type != "cpu":
                super().__init__(config, model)
                return
            with single_process(config):  # skip RecBole's GPU-only DDP wrapping ...
                super().__init__(config, model)
            self.distributed_model = DistributedDataParallel(self.model)  # ... and wrap for CPU

    DistributedTrainer.__name__ = f"Distributed{trainer_class.__name__}"
    return DistributedTrainer


def free_port():
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return str(sock.getsockname()[1])


def run_distributed(model, dataset, config_file_list=None, cmd_overrides=None, nproc=1, config_dict=None):
    """Train ``model`` on ``dataset`` with ``nproc`` processes; returns run_recbole's result dict.

    ``cmd_overrides`` ({key: value or value-string}) may hold ``world_size``, ``ip``, ``port``,
    ``offset``; the result carries the test metrics on the node that holds global rank 0.
    """
    import torch.multiprocessing as mp

    from recbole_spectral.data import ensure_dataset_files

    overrides = {k: parse_cli_value(v) for k, v in (cmd_overrides or {}).items()}
    nproc = int(overrides.pop("nproc", nproc))
    world_size = int(overrides.pop("world_size", -1))
    settings = {
        "nproc": nproc,
        "world_size": nproc if world_size <= 0 else world_size,
        "ip": str(overrides.pop("ip", "localhost")),
        "port": str(overrides.pop("port", "5678")),
        "offset": int(overrides.pop("offset", 0)),
    }
    if nproc < 1 or settings["world_size"] < nproc + settings["offset"]:
        raise SpectralError(f"distributed settings: need nproc >= 1 and world_size >= nproc + offset, got {settings}")
    # checked and prepared once, in this process, before the ranks start
    config = SpectralConfig(model, dataset, config_file_list, config_dict, overrides)
    ensure_dataset_files(config)
    os.makedirs(os.path.join("log", config["model"]), exist_ok=True)
    os.makedirs(config["checkpoint_dir"], exist_ok=True)
    settings["saved_model_file"] = os.path.abspath(os.path.join(
        config["checkpoint_dir"], f"{config['model']}-distributed-{uuid.uuid4().hex[:8]}.pth"))

    queue = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_worker, args=(model, dataset, config_file_list, dict(config_dict or {}), overrides, settings, queue),
                 nprocs=nproc, join=True)
    except mp.ProcessRaisedException as err:
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        raise SpectralError(f"distributed training failed: {lines[-1] if lines else err}") from None
    result = {"best_valid_score": None, "valid_score_bigger": config["valid_metric_bigger"],
              "best_valid_result": {}, "test_result": {}}  # stays empty on a node without global rank 0
    finished, digests = {}, {}
    while not queue.empty():
        kind, payload = queue.get()
        if kind == "result":
            result.update(payload)
        else:
            finished[payload["rank"]] = payload["parameter_sum"]
            digests[payload["rank"]] = payload["state_digest"]
    result["finished_ranks"] = finished  # global rank -> sum of its parameters after training (replicas agree)
    result["state_digests"] = digests  # global rank -> digest of its final weights and buffers (bit for bit)
    result["saved_model_file"] = settings["saved_model_file"]
    return result


def state_digest(model):
    """SHA-256 of every tensor of ``model.state_dict()`` (names, shapes and bytes): equal only for identical
    weights and buffers."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _worker(local_rank, model, dataset, config_file_list, config_dict, overrides, settings, queue):
    """One rank: RecBole's run_recbole with the races handled and the test on rank 0 over all users."""
    from recbole.data.utils import get_dataloader
    from recbole.utils import set_color

    from recbole_spectral.quick_start import build_run, init_logging

    run_settings = {k: v for k, v in settings.items() if k != "saved_model_file"}
    config = DistributedConfig(model, dataset, config_file_list, {**config_dict, **run_settings, "local_rank": local_rank},
                               overrides)
    init_logging(config)
    logger = getLogger()
    logger.info(config)
    # the same split on every rank (seeded by config["seed"]), model initialised with seed + local_rank
    _, (train_data, valid_data, test_data), net, trainer = build_run(config, trainer_wrapper=distributed_trainer)
    trainer.saved_model_file = settings["saved_model_file"]  # one file for all ranks; rank 0 writes it

    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=True,
                                                      show_progress=config["show_progress"])
    with torch.no_grad():  # the replica as training left it (before rank 0 loads the best checkpoint to test)
        finished = {"rank": local_rank + config["offset"], "state_digest": state_digest(net),
                    "parameter_sum": float(sum(p.double().sum() for p in net.parameters()))}
    dist.barrier()  # the best checkpoint is completely written before anyone reads it
    if local_rank + config["offset"] == 0:
        with single_process(config):
            all_users = get_dataloader(config, "test")(config, test_data._dataset, test_data._sampler, shuffle=False)
            test_result = trainer.evaluate(all_users, load_best_model=True, show_progress=config["show_progress"])
        logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
        logger.info(set_color("test result", "yellow") + f" (rank 0, all test users): {test_result}")
        queue.put(("result", {
            "best_valid_score": float(best_valid_score),
            "valid_score_bigger": config["valid_metric_bigger"],
            "best_valid_result": dict(best_valid_result or {}),
            "test_result": dict(test_result or {}),
        }))
    dist.barrier()  # nobody leaves (and tears down the group) while rank 0 still evaluates
    dist.destroy_process_group()
    queue.put(("finished", finished))
