"""Where one SSR training batch spends its time (and a LightGCN batch beside it), on a converted dataset.

Times forward and backward of ``calculate_loss`` for the first ``--batches`` batches of an epoch, per
setting (``--settings``: JSON list of SSR overrides), with torch.profiler's top operators by self CPU
time for the first setting. Timings only; one process, ``--threads`` torch threads.

    RECBOLE_SPECTRAL_DATA=/tmp/ssrdata nice -n 10 python benchmarks/ssr_profile.py --dataset tiktok \
        --settings '[{}, {"user_modality": "free", "chebyshev_order": 5, "item_graph_mode": "early"}]'
"""
import argparse
import json
import os
import sys
import time
from itertools import islice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def time_batches(model, batches, profile=False):
    import torch

    forward = backward = 0.0
    model.train()
    if hasattr(model, "on_train_epoch_start"):
        model.on_train_epoch_start(0, None)
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile else None
    if prof:
        prof.__enter__()
    for interaction in batches:
        t = time.perf_counter()
        loss = model.calculate_loss(interaction)
        forward += time.perf_counter() - t
        t = time.perf_counter()
        loss.backward()
        backward += time.perf_counter() - t
        model.zero_grad(set_to_none=True)
    if prof:
        prof.__exit__(None, None, None)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)
    n = len(batches)
    return forward / n, backward / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", default="[{}]")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    import torch
    from recbole.utils import init_seed

    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.data import create_dataset, data_preparation
    from recbole_spectral.registry import get_model

    torch.set_num_threads(args.threads)
    base = {"state": "ERROR", "use_gpu": False, "train_batch_size": args.batch_size, "seed": 2020,
            "show_progress": False}
    config = SpectralConfig("LightGCN", args.dataset, config_dict=base)
    init_seed(2020, True)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    batches = list(islice(iter(train_data), args.batches))
    lightgcn = get_model("LightGCN")(config, train_data._dataset)
    f, b = time_batches(lightgcn, batches)
    print(f"LightGCN: forward {f * 1000:.1f} ms, backward {b * 1000:.1f} ms per batch", flush=True)
    for i, overrides in enumerate(json.loads(args.settings)):
        sconfig = SpectralConfig("SSR", args.dataset, config_dict={**base, **overrides})
        init_seed(2020, True)
        t = time.perf_counter()
        model = get_model("SSR")(sconfig, train_data._dataset)
        build = time.perf_counter() - t
        f, b = time_batches(model, batches, profile=(i == 0 and not args.no_profile))
        print(f"SSR {json.dumps(overrides)}: build {build:.1f} s; forward {f * 1000:.1f} ms, backward {b * 1000:.1f} ms "
              f"per batch; parameters {sum(p.numel() for p in model.parameters()):,}", flush=True)


if __name__ == "__main__":
    main()
