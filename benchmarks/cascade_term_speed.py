"""The cascade term's cost: epoch time and one full evaluation pass of a multi-behavior model with the term ÷
without it (UnionLightGCN = LightGCN on all behaviors' graph, the same batch), one process, plus the lists' build.

Both models train through the plugin's trainer (``trainer._train_epoch``) on the same converted dataset, epochs
alternated; the one with ``history_term`` and ``cascade_term`` on (``--term`` settings) reads its rank lists from
``--cache-dir`` (built there first when absent: that build is timed and reported as the preprocessing time).

    nice -n 5 python -m benchmarks.cascade_term_speed --dataset taobao-15k --cache-dir <folder> \
        --out benchmarks/results/cascade_term_speed.md
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.spectramb_speed import build, write_report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="taobao-15k")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--term", default='{"history_term": true, "cascade_term": true, "cascade_term_hard_negatives": 0.5}',
                   help="JSON settings of the model with the term")
    p.add_argument("--cache-dir", required=True, help="the cascade term's cache folder (cascade_term_cache_dir)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.out = os.path.abspath(args.out) if args.out else None

    import torch

    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="cascade_term_speed_")
    os.chdir(work)
    common = {"use_gpu": False, "state": "ERROR", "show_progress": False, "seed": 2020, "train_batch_size": args.batch_size,
              "n_layers": args.layers, "checkpoint_dir": os.path.join(work, "saved"),
              "cascade_term_cache_dir": os.path.abspath(args.cache_dir)}
    load = os.getloadavg()
    cached = len(list(Path(args.cache_dir).glob("cascade.*.npz"))) if os.path.isdir(args.cache_dir) else 0
    start = time.perf_counter()
    term = build("UnionLightGCN", args.dataset, {**common, **json.loads(args.term)})
    build_s = time.perf_counter() - start
    models = {"UnionLightGCN": build("UnionLightGCN", args.dataset, common), "UnionLightGCN + terms": term}
    epoch = {name: [] for name in models}
    evaluation = {name: [] for name in models}
    for round_ in range(args.rounds):
        for name, (config, train_data, trainer) in models.items():
            start = time.perf_counter()
            trainer._train_epoch(train_data, round_, show_progress=False)
            epoch[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            trainer.model.eval()
            with torch.no_grad():  # one full-sort pass over every user, in the evaluation's batches
                for users in torch.arange(1, train_data._dataset.user_num).split(1024):
                    trainer.model.full_sort_predict({config["USER_ID_FIELD"]: users})
            evaluation[name].append(time.perf_counter() - start)
            print(f"round {round_} {name}: epoch {epoch[name][-1]:.1f} s, full sort {evaluation[name][-1]:.1f} s", flush=True)
    base, with_term = "UnionLightGCN", "UnionLightGCN + terms"
    result = {"dataset": args.dataset, "batch_size": args.batch_size, "layers": args.layers, "term": json.loads(args.term),
              "epoch_s": {n: min(v) for n, v in epoch.items()}, "full_sort_s": {n: min(v) for n, v in evaluation.items()},
              "build_with_lists_s": build_s, "lists_were_cached": bool(cached), "load_before": load[0],
              "load_after": os.getloadavg()[0]}
    result["epoch_ratio"] = result["epoch_s"][with_term] / result["epoch_s"][base]
    result["full_sort_ratio"] = result["full_sort_s"][with_term] / result["full_sort_s"][base]
    lines = [
        f"# The cascade term's cost on {args.dataset}", "",
        "Command: `nice -n 5 python -m benchmarks.cascade_term_speed " + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
        f"One process, 1 torch thread, batch {args.batch_size} for both, {args.layers} layer(s), fastest of {args.rounds} "
        f"alternated rounds; machine {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average "
        f"{load[0]:.1f} before, {result['load_after']:.1f} after).", "",
        "| model | epoch (s) | full-sort pass, all users (s) |", "|---|---:|---:|",
        *[f"| {n} | {result['epoch_s'][n]:.1f} | {result['full_sort_s'][n]:.1f} |" for n in models], "",
        f"**Epoch time with the terms ÷ without: {result['epoch_ratio']:.2f}×; full-sort pass: "
        f"{result['full_sort_ratio']:.2f}×.** Building the model with the terms took {build_s:.0f} s "
        + ("(rank lists read from the cache)." if cached else "(rank lists computed: the preprocessing time)."), "",
        "```json", json.dumps(result, indent=1), "```", "",
    ]
    text = "\n".join(lines)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
