"""SpectraMB vs LightGCN (target only) vs LightGCN (all behaviors) on converted multi-behavior data.

One command runs every (part, dataset, model, seed) it is given, each through the plugin's Config,
dataset seam and trainer with the same split, full ranking, early stopping on validation HR@10, and
writes HR@10/20, NDCG@10/20 (mean ± std over seeds), epoch time and parameter count to a Markdown
file, with the command that made it. Every finished run is appended to a JSON-lines file next to it, so
an interrupted benchmark resumes where it stopped and parts can run one after another.

Parts:
  main        SpectraMB (YAML defaults), LightGCN target only, LightGCN all behaviors, every dataset
  variants    SpectraMB context-conditioned filter, view-softmax (paper) attention, 3 layers, first dataset
  ablations   SpectraMB without spectral filtering / with mean fusion / without residual global, first dataset
  robustness  SpectraMB and LightGCN (all behaviors) with 10/30/50 % random pairs added to every
              auxiliary behavior (noise 0 % = the main rows), first dataset

Example (the command behind benchmarks/results/spectramb.md):
  RECBOLE_SPECTRAL_DATA=/work/data_atomic python benchmarks/spectramb.py \
      --datasets taobao-15k tmall-41k --seeds 2020 2021 2022 --parts main ablations variants robustness
"""
import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole_spectral.config import SpectralConfig  # noqa: E402
from recbole_spectral.quick_start import start_run, train_and_test  # noqa: E402

METRICS = ["hit@10", "hit@20", "ndcg@10", "ndcg@20"]
NOISE_RATIOS = (0.0, 0.1, 0.3, 0.5)


def runs_for(part, datasets):
    """(part, dataset, label, model, extra config) for one part of the benchmark."""
    first = datasets[0]
    if part == "main":
        for d in datasets:
            yield part, d, "SpectraMB", "SpectraMB", {}
            yield part, d, "LightGCN (target only)", "LightGCN", {}
            yield part, d, "LightGCN (all behaviors)", "LightGCN", {"train_on_all_behaviors": True}
    elif part == "variants":
        yield part, first, "SpectraMB, context-conditioned filter", "SpectraMB", {"filter_mode": "context"}
        yield part, first, "SpectraMB, softmax across views (paper)", "SpectraMB", {"attention_softmax": "view"}
        yield part, first, "SpectraMB, 3 layers (published code)", "SpectraMB", {"n_layers": 3}
    elif part == "ablations":
        yield part, first, "SpectraMB w/o spectral filtering", "SpectraMB", {"spectral_filter": False}
        yield part, first, "SpectraMB, mean fusion", "SpectraMB", {"fusion": "mean"}
        yield part, first, "SpectraMB w/o residual global", "SpectraMB", {"residual_global": False}
    elif part == "robustness":
        for ratio in NOISE_RATIOS:
            noise = {"noise_add_ratio": ratio, "noise_behaviors": None}
            yield part, first, f"SpectraMB, noise {int(ratio * 100)} %", "SpectraMB", noise
            yield (part, first, f"LightGCN (all behaviors), noise {int(ratio * 100)} %", "LightGCN",
                   {"train_on_all_behaviors": True, **noise})
    else:
        raise SystemExit(f"unknown part {part!r}; expected main, variants, ablations, robustness")


def common_settings(args, seed, workdir):
    return {
        "seed": seed,
        "reproducibility": True,
        "use_gpu": False,
        "epochs": args.max_epochs,
        "stopping_step": args.stopping_step,
        "eval_step": args.eval_step,
        "train_batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "metrics": ["Hit", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "Hit@10",
        "show_progress": False,
        "checkpoint_dir": os.path.join(workdir, "saved"),
        "log_root": os.path.join(workdir, "log"),
    }


def run_one(args, part, dataset, label, model, extra, seed, workdir):
    settings = common_settings(args, seed, workdir)
    if extra.get("train_on_all_behaviors"):  # many more training pairs per epoch: its own batch and cap
        settings.update(train_batch_size=args.all_behaviors_batch_size or args.batch_size,
                        epochs=args.all_behaviors_max_epochs or args.max_epochs)
    config = SpectralConfig(model, dataset, config_dict={**settings, **extra})
    start_run(config)
    start = time.perf_counter()
    result, model_obj, _ = train_and_test(config)
    test = result["test_result"]
    return {
        "part": part, "dataset": dataset, "label": label, "model": model, "extra": extra, "seed": seed,
        "valid_hit@10": float(result["best_valid_result"]["hit@10"]),
        **{m: float(test[m]) for m in METRICS},
        "epochs": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "epoch_time_s": result["epoch_time_s"] if result["epochs_run"] else float("nan"),
        "wall_s": time.perf_counter() - start,
        "params": sum(p.numel() for p in model_obj.parameters() if p.requires_grad),
        "settings": {k: config[k] for k in ("epochs", "learning_rate", "train_batch_size", "embedding_size", "n_layers", "reg_weight")},
    }


def fmt(values):
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def write_markdown(records, out, args):
    groups = {}
    for r in records:
        groups.setdefault((r["part"], r["dataset"], r["label"]), []).append(r)
    lines = [
        "# SpectraMB benchmark",
        "",
        "Made by these commands (each appends its runs to the JSON-lines file next to this one and skips runs "
        "already there; they may run one after another or as concurrent processes):",
        "",
        "```",
        *sorted({r["command"] for r in records}, key=[r["command"] for r in records].index),
        "```",
        "",
        "Protocol: RecBole full ranking over all items, test target rows of the converted dataset, early stopping "
        "on validation HR@10 (stopping_step, eval_step, lr and other settings as in the command of each run; epoch "
        "cap and train batch as listed), Adam; other hyperparameters: each model's YAML defaults. Mean ± sample std "
        "over the seeds listed; epoch time = mean training time of one epoch (evaluation excluded) on the machine "
        "the run used (timings from runs that shared a busy CPU with other jobs are only indicative).",
        "",
    ]
    titles = {"main": "Main comparison", "variants": "SpectraMB variants (filter and fusion switches)",
              "ablations": "Ablations", "robustness": "Robustness: random pairs added to every auxiliary behavior"}
    for part in ("main", "variants", "ablations", "robustness"):
        keys = [k for k in groups if k[0] == part]
        if not keys:
            continue
        lines += [f"## {titles[part]}", "",
                  "| dataset | model | seeds | HR@10 | HR@20 | NDCG@10 | NDCG@20 | epochs run (best) / cap | batch | epoch time (s) | params |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key in keys:
            rs = sorted(groups[key], key=lambda r: r["seed"])
            lines.append(
                f"| {key[1]} | {key[2]} | {','.join(str(r['seed']) for r in rs)} | "
                + " | ".join(fmt([r[m] for r in rs]) for m in METRICS)
                + f" | {'/'.join(str(r['epochs']) for r in rs)} ({'/'.join(str(r['best_epoch']) for r in rs)}) / {rs[0]['settings']['epochs']}"
                + f" | {rs[0]['settings']['train_batch_size']} | {np.mean([r['epoch_time_s'] for r in rs]):.1f} | {rs[0]['params']:,} |"
            )
        lines.append("")
    ratios = _ratios(groups)
    if ratios:
        lines += ["## Ratios (same run, same machine)", ""] + ratios + [""]
    Path(out).write_text("\n".join(lines))


def _ratios(groups):
    lines = []
    datasets = sorted({k[1] for k in groups if k[0] == "main"})
    for d in datasets:
        get = lambda label: groups.get(("main", d, label))  # noqa: E731
        smb, lt, la = get("SpectraMB"), get("LightGCN (target only)"), get("LightGCN (all behaviors)")
        if smb and lt:
            ratio = np.mean([r["hit@10"] for r in smb]) / np.mean([r["hit@10"] for r in lt])
            lines.append(f"- {d}: HR@10 SpectraMB / LightGCN (target only) = {ratio:.2f}x")
        if smb and la:
            ratio = np.mean([r["epoch_time_s"] for r in smb]) / np.mean([r["epoch_time_s"] for r in la])
            lines.append(f"- {d}: epoch time SpectraMB / LightGCN (all behaviors) = {ratio:.2f}x")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["taobao-15k", "tmall-41k"])
    p.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    p.add_argument("--parts", nargs="+", default=["main", "variants", "ablations", "robustness"])
    p.add_argument("--ablation_seeds", nargs="+", type=int, default=None,
                   help="seeds for variants/ablations/robustness (default: --seeds)")
    p.add_argument("--max_epochs", type=int, default=60)
    p.add_argument("--stopping_step", type=int, default=5)
    p.add_argument("--eval_step", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=8192)
    p.add_argument("--learning_rate", type=float, default=0.005)
    p.add_argument("--all_behaviors_batch_size", type=int, default=None,
                   help="train batch for LightGCN (all behaviors), which has many more pairs per epoch")
    p.add_argument("--all_behaviors_max_epochs", type=int, default=None)
    p.add_argument("--only", nargs="*", default=None, help="run only these labels (substring match)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "spectramb.md"))
    p.add_argument("--report_only", action="store_true", help="rewrite the Markdown from the JSON-lines file")
    args = p.parse_args(argv)

    if args.report_only:
        jsonl = Path(args.out).with_suffix(".jsonl")
        write_markdown([json.loads(line) for line in jsonl.read_text().splitlines()], args.out, args)
        return
    if not os.environ.get("RECBOLE_SPECTRAL_DATA"):
        raise SystemExit("set RECBOLE_SPECTRAL_DATA to the folder holding the converted datasets")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = out.with_suffix(".jsonl")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    done = {(r["part"], r["dataset"], r["label"], r["seed"]) for r in records}
    command = "RECBOLE_SPECTRAL_DATA=" + os.environ["RECBOLE_SPECTRAL_DATA"] + " python benchmarks/spectramb.py " + \
        " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    workdir = tempfile.mkdtemp(prefix="spectramb-bench-")
    for part in args.parts:
        seeds = args.seeds if part == "main" or args.ablation_seeds is None else args.ablation_seeds
        for seed in seeds:
            for run in runs_for(part, args.datasets):
                if (run[0], run[1], run[2], seed) in done:
                    continue
                if args.only and not any(s in run[2] for s in args.only):
                    continue
                print(f"[spectramb-bench] {time.strftime('%H:%M:%S')} {run[0]} {run[1]} {run[2]} seed {seed}", flush=True)
                record = {**run_one(args, *run, seed, workdir), "command": command}
                print(f"[spectramb-bench] -> test HR@10 {record['hit@10']:.4f} NDCG@10 {record['ndcg@10']:.4f} "
                      f"epochs {record['epochs']} epoch {record['epoch_time_s']:.1f}s", flush=True)
                with jsonl.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                # several benchmark processes may share one results file: always rebuild from all records
                records = [json.loads(line) for line in jsonl.read_text().splitlines()]
                write_markdown(records, out, args)
    if jsonl.exists():
        write_markdown([json.loads(line) for line in jsonl.read_text().splitlines()], out, args)


if __name__ == "__main__":
    main()
