"""SpectraMB epoch time ÷ LightGCN (all behaviors) epoch time, same batch size, one process.

Both models train through the plugin's trainer (``trainer._train_epoch``) on the same converted dataset:
SpectraMB on the training target rows (its auxiliary behaviors are graphs), RecBole's LightGCN with
``train_on_all_behaviors: True`` (its BPR pairs and graph are the union of every behavior — many more
pairs per epoch). Epochs are alternated (LightGCN, SpectraMB, LightGCN, ...). With ``--batches N`` only
the first N batches of each epoch are timed and the epoch time is extrapolated to the full epoch
(seconds per batch × batches per epoch); the report states which, and gives the per-batch ratio too.

    nice -n 10 python -m benchmarks.spectramb_speed --dataset taobao-15k --batches 20 \
        --out benchmarks/results/spectramb_speed.md
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.ssr_scale import FirstBatches  # the first n batches of a loader


def build(model, dataset, settings):
    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.quick_start import build_run

    config = SpectralConfig(model, dataset, config_dict=settings)
    _, (train_data, _, _), _, trainer = build_run(config)
    return config, train_data, trainer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="taobao-15k")
    p.add_argument("--batch-size", type=int, default=None, help="both models (default: SpectraMB's YAML train_batch_size)")
    p.add_argument("--batches", type=int, default=0, help="time only the first N batches of each epoch (0 = all)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lightgcn-layers", type=int, default=3)
    p.add_argument("--spectramb", default="{}", help="JSON overrides of SpectraMB's settings")
    p.add_argument("--target", type=float, default=2.5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.out = os.path.abspath(args.out) if args.out else None

    import torch
    import yaml

    from recbole_spectral import paths

    torch.set_num_threads(args.threads)
    with open(paths.model_properties_file("SpectraMB")) as fp:
        batch = args.batch_size or yaml.safe_load(fp)["train_batch_size"]
    work = tempfile.mkdtemp(prefix="spectramb_speed_")
    os.chdir(work)
    common = {"use_gpu": False, "state": "ERROR", "show_progress": False, "seed": 2020, "train_batch_size": batch,
              "checkpoint_dir": os.path.join(work, "saved")}
    load = os.getloadavg()
    models = {
        "LightGCN (all behaviors)": build("LightGCN", args.dataset, {**common, "train_on_all_behaviors": True,
                                                                     "n_layers": args.lightgcn_layers}),
        "SpectraMB": build("SpectraMB", args.dataset, {**common, **json.loads(args.spectramb)}),
    }
    result = {"dataset": args.dataset, "batch_size": batch, "threads": args.threads, "batches": args.batches or "all"}
    per_batch = {name: [] for name in models}
    for round_ in range(args.rounds):
        for name, (config, train_data, trainer) in models.items():
            loader = FirstBatches(train_data, args.batches) if args.batches else train_data
            start = time.perf_counter()
            trainer._train_epoch(loader, round_, show_progress=False)
            seconds = time.perf_counter() - start
            per_batch[name].append(seconds / len(loader))
            print(f"round {round_} {name}: {seconds:.1f} s for {len(loader)} of {len(train_data)} batches", flush=True)
    rows = []
    for name, (config, train_data, trainer) in models.items():
        s = min(per_batch[name])
        rows.append((name, len(train_data._dataset), len(train_data), s, s * len(train_data),
                     sum(q.numel() for q in trainer.model.parameters())))
    (lg, spm) = rows
    result.update({r[0]: {"train_pairs": r[1], "batches_per_epoch": r[2], "s_per_batch": r[3], "epoch_s": r[4],
                          "params": r[5]} for r in rows})
    epoch_ratio, batch_ratio = spm[4] / lg[4], spm[3] / lg[3]
    result.update(epoch_ratio=epoch_ratio, batch_ratio=batch_ratio, load_before=load[0], load_after=os.getloadavg()[0])
    scope = "full epochs" if not args.batches else f"the first {args.batches} batches of an epoch, extrapolated"
    lines = [
        f"# SpectraMB vs LightGCN (all behaviors): training speed on {args.dataset}", "",
        "Command: `nice -n 10 python -m benchmarks.spectramb_speed " + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
        f"One process, {args.threads} torch thread(s), batch {batch} for both, timed: {scope} (fastest of "
        f"{args.rounds} round(s)); machine {platform.machine()}, {os.cpu_count()} cores shared with other jobs "
        f"(load average {load[0]:.1f} before, {result['load_after']:.1f} after). LightGCN: RecBole's, "
        f"{args.lightgcn_layers} layers, trained on the union of all behaviors. SpectraMB: YAML defaults "
        f"{json.loads(args.spectramb) or ''}.", "",
        "| model | training pairs | batches / epoch | s / batch | epoch time (s) | params |", "|---|---:|---:|---:|---:|---:|",
        *[f"| {r[0]} | {r[1]:,} | {r[2]} | {r[3]:.3f} | {r[4]:.1f} | {r[5]:,} |" for r in rows], "",
        f"**Epoch time SpectraMB ÷ LightGCN (all behaviors): {epoch_ratio:.2f}×** (target ≤ {args.target}×); "
        f"per batch: {batch_ratio:.2f}× (SpectraMB propagates {len(models['SpectraMB'][2].model.view_graphs) + 1} "
        "graphs per step, LightGCN one, but LightGCN has many more pairs per epoch).", "",
        "```json", json.dumps(result, indent=1), "```", "",
    ]
    text = "\n".join(lines)
    write_report(text, args.out)
    return 0


def write_report(text, out):
    """Print the report and write it to ``out`` (a path, or None)."""
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
