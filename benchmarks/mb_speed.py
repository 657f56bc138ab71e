"""A multi-behavior model's epoch time (and full-sort pass) ÷ a baseline's, same batch, one process.

Both train through the plugin's trainer on the same dataset, epochs alternated; ``--batches N`` times the first N
batches and extrapolates; ``--full-sort`` also times a full-sort pass over every user; each build is timed (with
the cascade term and an empty cache that includes its rank lists). E.g. ``nice -n 5 python -m benchmarks.mb_speed
--model UnionLightGCN --settings '{"history_term": true, "cascade_term": true}' --full-sort --rounds 2``.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

from benchmarks.ssr_scale import FirstBatches, write_report


def build(model, dataset, settings):
    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.quick_start import build_run

    config = SpectralConfig(model, dataset, config_dict=settings)
    _, (train_data, _, _), _, trainer = build_run(config)
    return config, train_data, trainer


def full_sort_pass(config, train_data, model):
    """Seconds for scoring every user against every item, in batches of 1024 users."""
    import torch
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for users in torch.arange(1, train_data._dataset.user_num).split(1024):
            model.full_sort_predict({config["USER_ID_FIELD"]: users})
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="taobao-15k")
    p.add_argument("--model", default="SpectraMB")
    p.add_argument("--settings", default="{}", help="JSON settings of the model")
    p.add_argument("--baseline", default="UnionLightGCN")
    p.add_argument("--baseline-settings", default="{}", help="JSON settings of the baseline")
    p.add_argument("--batch-size", type=int, default=4096, help="both models")
    p.add_argument("--batches", type=int, default=0, help="time only the first N batches of each epoch (0 = all)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--full-sort", action="store_true", help="also time a full-sort pass over every user")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.out = os.path.abspath(args.out) if args.out else None

    import torch

    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="mb_speed_")
    os.chdir(work)
    common = {"use_gpu": False, "state": "ERROR", "show_progress": False, "seed": 2020, "train_batch_size": args.batch_size,
              "checkpoint_dir": os.path.join(work, "saved")}
    load = os.getloadavg()
    names = (f"{args.baseline} {args.baseline_settings}", f"{args.model} {args.settings}")
    models, build_s = {}, {}
    for name, model, settings in zip(names, (args.baseline, args.model), (args.baseline_settings, args.settings)):
        start = time.perf_counter()
        models[name] = build(model, args.dataset, {**common, **json.loads(settings)})
        build_s[name] = time.perf_counter() - start
    per_batch, full_sort = {n: [] for n in names}, {n: [] for n in names}
    for round_ in range(args.rounds):
        for name, (config, train_data, trainer) in models.items():
            loader = FirstBatches(train_data, args.batches) if args.batches else train_data
            start = time.perf_counter()
            trainer._train_epoch(loader, round_, show_progress=False)
            per_batch[name].append((time.perf_counter() - start) / len(loader))
            if args.full_sort:
                full_sort[name].append(full_sort_pass(config, train_data, trainer.model))
            print(f"round {round_} {name}: {per_batch[name][-1]:.3f} s per batch", flush=True)
    rows = {n: {"train_pairs": len(d._dataset), "batches_per_epoch": len(d), "s_per_batch": min(per_batch[n]),
                "epoch_s": min(per_batch[n]) * len(d), "full_sort_s": min(full_sort[n], default=None),
                "build_s": build_s[n], "params": sum(q.numel() for q in t.model.parameters())} for n, (_, d, t) in models.items()}
    base, other = (rows[n] for n in names)
    result = {"dataset": args.dataset, "batch_size": args.batch_size, "batches": args.batches or "all", "rows": rows, "epoch_ratio": other["epoch_s"] / base["epoch_s"],
              "batch_ratio": other["s_per_batch"] / base["s_per_batch"], "load_before": load[0],
              "load_after": os.getloadavg()[0]}
    if args.full_sort:
        result["full_sort_ratio"] = other["full_sort_s"] / base["full_sort_s"]
    scope = "full epochs" if not args.batches else f"the first {args.batches} batches of an epoch, extrapolated"
    lines = [
        f"# {names[1]} ÷ {names[0]}: training speed on {args.dataset}", "",
        "Command: `python -m benchmarks.mb_speed " + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
        f"One process, 1 torch thread, batch {args.batch_size} for both, timed: {scope} (fastest of "
        f"{args.rounds} round(s)); machine {platform.machine()}, {os.cpu_count()} cores shared with other jobs "
        f"(load average {load[0]:.1f} before, {result['load_after']:.1f} after).", "",
        "| model | training pairs | batches / epoch | s / batch | epoch (s) | full-sort pass (s) | build (s) | params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {n} | {r['train_pairs']:,} | {r['batches_per_epoch']} | {r['s_per_batch']:.3f} | {r['epoch_s']:.1f} | "
          f"{'—' if r['full_sort_s'] is None else round(r['full_sort_s'], 1)} | {r['build_s']:.0f} | {r['params']:,} |" for n, r in rows.items()], "",
        f"**Epoch time ÷ the baseline's: {result['epoch_ratio']:.2f}×** (per batch {result['batch_ratio']:.2f}×"
        + (f"; full-sort pass {result['full_sort_ratio']:.2f}×" if args.full_sort else "") + ").", "",
        "```json", json.dumps(result, indent=1), "```", "",
    ]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
