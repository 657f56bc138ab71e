"""SSR vs RecBole's BPR and LightGCN on a converted multimodal dataset (default: tiktok), side by side.

Same dataset object kind, same benchmark split, full ranking, early stopping on validation Recall@20.
Steps (each run is appended to ``--runs`` as one JSON line, so an interrupted benchmark resumes):

1. tuning: every model's grid (``GRIDS``) at the first seed, scored by best validation Recall@20;
2. final: the best grid point of every model at every seed; test Recall/NDCG @10/@20, the same metrics
   for cold-start users (<= ``--cold-threshold`` training interactions), mean train-epoch time, params;
3. ablations of SSR (its tuned setting with one switch changed) at the first seed;
4. the markdown report (``--out``) is rebuilt from every recorded run.

    RECBOLE_SPECTRAL_DATA=/work/data_atomic nice -n 5 python benchmarks/ssr.py --dataset tiktok \
        --out benchmarks/results/ssr.md
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole_spectral.config import SpectralConfig  # noqa: E402
from recbole_spectral.quick_start import load_data_and_model, start_run, train_and_test  # noqa: E402

# validation grids (first seed); everything else is the model's defaults
GRIDS = {
    "BPR": [{"learning_rate": lr} for lr in (0.005, 0.001)],
    "LightGCN": [{"learning_rate": 0.005, "n_layers": 2}, {"learning_rate": 0.005, "n_layers": 3},
                 {"learning_rate": 0.001, "n_layers": 3}],
    "SSR": [{"learning_rate": lr} for lr in (0.005, 0.001)],
}
ABLATIONS = {
    "no masking": {"band_drop_prob": 0.0, "lambda_mask": 0.0},
    "sum of bands (no G-HSNO)": {"fusion": "sum"},
    "no contrastive": {"lambda_cl": 0.0},
    "fixed split": {"band_method": "fixed"},
    "no item-item graph": {"use_item_graph": False},
}
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]


def base_settings(args, seed, model_name):
    cap = args.ssr_max_epochs if model_name == "SSR" and args.ssr_max_epochs else args.max_epochs
    return {
        "seed": seed, "reproducibility": True, "use_gpu": False, "show_progress": False,
        "epochs": cap, "stopping_step": args.stopping_step, "eval_step": 1,
        "valid_metric": "Recall@20", "metrics": ["Recall", "NDCG"], "topk": [10, 20],
        "train_batch_size": 2048, "state": "INFO",
        "checkpoint_dir": args.checkpoint_dir,
    }


def cold_record(test_result, users):
    """The run's cold-start metrics (the library's ``cold_<metric>`` columns) and the cold test users."""
    return {**{k[len("cold_"):]: float(v) for k, v in test_result.items() if k.startswith("cold_")}, "users": users}


def run_one(args, model_name, seed, settings, tag):
    config = SpectralConfig(model_name, args.dataset, config_dict={
        **base_settings(args, seed, model_name), **settings, "cold_start_threshold": args.cold_threshold})
    start_run(config)
    start = time.perf_counter()
    result, model, trainer = train_and_test(config)
    test_result = result["test_result"]
    os.remove(trainer.saved_model_file) if os.path.exists(trainer.saved_model_file) else None
    return {
        "tag": tag, "model": model_name, "seed": seed, "settings": settings,
        "valid_recall@20": float(result["best_valid_score"]),
        "valid": {k: float(v) for k, v in result["best_valid_result"].items()},
        "test": {k: float(v) for k, v in test_result.items() if not k.startswith("cold_")},
        "cold": cold_record(test_result, result["cold_users"]),
        "epochs_trained": result["epochs_run"], "best_epoch": result["best_epoch"],
        "epoch_time_s": result["epoch_time_s"] or None,
        "params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "wall_s": time.perf_counter() - start,
    }


def evaluate_checkpoint(args, path, logfile, settings):
    """Test + cold-start metrics of a run stopped before it ended (an earlier budgeted run), from its best
    checkpoint (the trainer saves one whenever validation Recall@20 improves); epoch times from its log."""
    import re

    from recbole_spectral.checkpoint import read_checkpoint
    from recbole_spectral.trainer import trainer_class

    checkpoint = read_checkpoint(path)
    config, model, _, train_data, _, test_data = load_data_and_model(path)
    config["cold_start_threshold"] = args.cold_threshold
    trainer = trainer_class(config)(config, model)
    trainer.count_training_interactions(train_data)
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    saved = checkpoint["config"]
    log = open(logfile).read()
    times = [float(t) for t in re.findall(r"epoch \d+ training \[time: ([0-9.]+)s", log)]
    valid = [float(v) for v in re.findall(r"valid_score: ([0-9.]+)", log)]
    return {
        "tag": "final", "model": saved["model"], "seed": int(saved["settings"]["seed"]), "settings": settings,
        "valid_recall@20": float(checkpoint["best_valid_score"]), "valid": {},
        "test": {k: float(v) for k, v in test_result.items() if not k.startswith("cold_")},
        "cold": cold_record(test_result, trainer.evaluator.last_cold_users),
        "epochs_trained": len(times), "best_epoch": int(checkpoint["epoch"]), "valid_curve": valid,
        "epoch_time_s": float(np.mean(times)) if times else None,
        "params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "truncated": f"stopped by the wall-clock budget after {len(times)} epochs; best checkpoint (epoch "
                     f"{int(checkpoint['epoch'])}) evaluated",
    }


def load_runs(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def key(tag, model, seed, settings):
    return json.dumps([tag, model, seed, settings], sort_keys=True)


def ensure(args, runs, tag, model, seed, settings, variant=None):
    done = {key(r["tag"], r["model"], r["seed"], r["settings"]): r for r in runs}
    k = key(tag, model, seed, settings)
    if k in done:
        return done[k]
    if tag == "final" and key("tune", model, seed, settings) in done:  # the tuning run is this seed's run
        record = {**done[key("tune", model, seed, settings)], "tag": "final"}
        with open(args.runs, "a") as f:
            f.write(json.dumps(record) + "\n")
        runs.append(record)
        return record
    print(f"[{time.strftime('%H:%M:%S')}] {tag} {model} seed={seed} {settings}", flush=True)
    record = run_one(args, model, seed, settings, tag)
    if variant:
        record["variant"] = variant
    print(f"    valid R@20={record['valid_recall@20']:.4f} test R@20={record['test']['recall@20']:.4f} "
          f"epochs={record['epochs_trained']} epoch={record['epoch_time_s']:.2f}s wall={record['wall_s']:.0f}s", flush=True)
    with open(args.runs, "a") as f:
        f.write(json.dumps(record) + "\n")
    runs.append(record)
    return record


def best_settings(runs, model):
    tuned = [r for r in runs if r["tag"] == "tune" and r["model"] == model]
    return max(tuned, key=lambda r: r["valid_recall@20"])["settings"] if tuned else None


def fmt(values):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std():.4f}" if len(values) > 1 else f"{values.mean():.4f}"


def cold(record):
    users = record["cold"]["users"]
    return f"{record['cold']['recall@20']:.4f}" if users else "n/a (no cold-start users)"


def report(args, runs):
    lines = [f"# SSR vs BPR vs LightGCN on {args.dataset} (CPU)", "",
             "Command:", "", "```", args.command, "```", "",
             "Full ranking over all items, RecBole metrics; early stopping on validation Recall@20 "
             f"(stopping_step {args.stopping_step}, at most {args.max_epochs} epochs, SSR at most "
             f"{args.ssr_max_epochs or args.max_epochs}); "
             f"cold-start users = test users with <= {args.cold_threshold} training interactions. "
             "Epoch time = wall time of the training part of an epoch (no evaluation), 2 shared CPU cores.", ""]
    lines += ["## Validation tuning (first seed; best validation Recall@20)", "",
              "| model | settings | valid R@20 | epochs |", "|---|---|---|---|"]
    for r in runs:
        if r["tag"] == "tune":
            lines.append(f"| {r['model']} | `{json.dumps(r['settings'])}` | {r['valid_recall@20']:.4f} | {r['epochs_trained']} |")
    lines += ["", "## Test (tuned settings, mean ± std over seeds)", "",
              "| model | seeds | " + " | ".join(METRICS) + " | cold " + " | cold ".join(METRICS) +
              " | cold users | epoch s | params |",
              "|---" * (len(METRICS) * 2 + 5) + "|"]
    finals = {}
    for r in runs:
        if r["tag"] == "final":
            finals.setdefault(r["model"], []).append(r)
    for model in list(finals):  # a model run with several settings: one row per setting
        by_setting = {}
        for r in finals[model]:
            by_setting.setdefault(json.dumps(r["settings"], sort_keys=True), []).append(r)
        if len(by_setting) > 1:
            del finals[model]
            for text, rs in by_setting.items():
                finals[f"{model} {text}"] = rs
    for model, rs in finals.items():
        row = [model, ",".join(str(r["seed"]) for r in rs)]
        row += [fmt([r["test"][m] for r in rs]) for m in METRICS]
        row += [fmt([r["cold"][m] for r in rs]) if rs[0]["cold"]["users"] else "n/a" for m in METRICS]
        row += [str(rs[0]["cold"]["users"]), f"{np.mean([r['epoch_time_s'] for r in rs]):.2f}", str(rs[0]["params"])]
        lines.append("| " + " | ".join(row) + " |")
    for model, rs in finals.items():
        for r in rs:
            if r.get("truncated"):
                lines.append(f"\n{model} seed {r['seed']}: {r['truncated']}; validation Recall@20 per epoch "
                             f"{[round(v, 4) for v in r.get('valid_curve', [])]}.")
    for model, rs in finals.items():
        lines.append(f"\n{model} settings: `{json.dumps(rs[0]['settings'])}`; epochs trained per seed "
                     f"{[r['epochs_trained'] for r in rs]}.")
    for name in finals:
        if name.startswith("SSR") and "LightGCN" in finals:
            ratio = np.mean([r["test"]["recall@20"] for r in finals[name]]) / np.mean(
                [r["test"]["recall@20"] for r in finals["LightGCN"]])
            lines += ["", f"{name} / LightGCN test Recall@20 = {ratio:.3f} (target >= 1.2)."]
    ablations = [r for r in runs if r["tag"] == "ablation"]
    if ablations:
        lines += ["", f"## SSR ablations on {args.dataset} (seed {args.seeds[0]}; one switch changed per row)", "",
                  "| variant | settings | valid R@20 | test R@20 | test NDCG@20 | cold R@20 | epoch s |", "|---|---|---|---|---|---|---|"]
        full = [r for r in finals.get("SSR", []) if r["seed"] == args.seeds[0]]
        full = [] if any("epochs" in r["settings"] for r in ablations) else full
        for r in full:
            lines.append(f"| full SSR | `{json.dumps(r['settings'])}` | {r['valid_recall@20']:.4f} | {r['test']['recall@20']:.4f} | "
                         f"{r['test']['ndcg@20']:.4f} | {cold(r)} | {r['epoch_time_s']:.2f} |")
        for r in ablations:
            name = r.get("variant", "")
            lines.append(f"| {name} | `{json.dumps(r['settings'])}` | {r['valid_recall@20']:.4f} | {r['test']['recall@20']:.4f} | "
                         f"{r['test']['ndcg@20']:.4f} | {cold(r)} | {r['epoch_time_s']:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--models", nargs="+", default=["BPR", "LightGCN", "SSR"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--ssr-max-epochs", type=int, default=None, help="epoch cap for SSR runs (default --max-epochs)")
    parser.add_argument("--stopping-step", type=int, default=10)
    parser.add_argument("--cold-threshold", type=int, default=5)
    parser.add_argument("--steps", nargs="+", default=["tune", "final", "ablation"])
    parser.add_argument("--runs", default="benchmarks/results/ssr-runs.jsonl")
    parser.add_argument("--out", default="benchmarks/results/ssr.md")
    parser.add_argument("--also-read", nargs="*", default=[], help="more run files for the report (parallel runs)")
    parser.add_argument("--evaluate-checkpoint", nargs=3, action="append", default=[],
                        metavar=("CHECKPOINT", "RECBOLE_LOG", "SETTINGS_JSON"),
                        help="record a run that the time budget stopped, from its best checkpoint and its log")
    parser.add_argument("--checkpoint-dir", default="/tmp/ssr-bench-saved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (same for every model)")
    parser.add_argument("--ssr-fixed", default=None, help="JSON settings fixed for every SSR run")
    parser.add_argument("--ssr-grid", default=None, help="JSON list of SSR grid points (replaces GRIDS['SSR'])")
    parser.add_argument("--grid", action="append", default=[], metavar="MODEL=JSON",
                        help="replace a model's grid by a JSON list (to run grid points as parallel processes)")
    parser.add_argument("--ablation-max-epochs", type=int, default=None,
                        help="epoch cap of the ablation runs (the full model is rerun under the same cap)")
    args = parser.parse_args(argv)
    args.command = "RECBOLE_SPECTRAL_DATA=" + os.environ.get("RECBOLE_SPECTRAL_DATA", "") + " python benchmarks/ssr.py " + " ".join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    runs = load_runs(args.runs)
    for path in args.also_read:
        runs += [r for r in load_runs(path) if r not in runs]
    for path, logfile, settings in args.evaluate_checkpoint:
        record = evaluate_checkpoint(args, path, logfile, json.loads(settings))
        print(f"    {record['model']} seed {record['seed']}: test R@20={record['test']['recall@20']:.4f} ({record['truncated']})")
        with open(args.runs, "a") as f:
            f.write(json.dumps(record) + "\n")
        runs.append(record)
    if args.evaluate_checkpoint:
        report(args, runs)
        return 0
    extra = {"SSR": json.loads(args.ssr_fixed)} if args.ssr_fixed else {}
    if args.ssr_grid:
        GRIDS["SSR"] = json.loads(args.ssr_grid)
    for item in args.grid:
        name, _, points = item.partition("=")
        GRIDS[name] = json.loads(points)
    for model in args.models:
        if "tune" in args.steps:
            for point in GRIDS[model]:
                ensure(args, runs, "tune", model, args.seeds[0], {**extra.get(model, {}), **point})
        if "final" in args.steps:
            settings = best_settings(runs, model) or extra.get(model, {})
            for seed in args.seeds:
                ensure(args, runs, "final", model, seed, settings)
        report(args, runs)
    if "ablation" in args.steps and "SSR" in args.models:
        settings = best_settings(runs, "SSR") or extra.get("SSR", {})
        if args.ablation_max_epochs:
            args.ssr_max_epochs = args.ablation_max_epochs
            settings = {**settings, "epochs": args.ablation_max_epochs}
            ensure(args, runs, "ablation", "SSR", args.seeds[0], settings, variant="full SSR (same epoch cap)")
        for name, change in ABLATIONS.items():
            ensure(args, runs, "ablation", "SSR", args.seeds[0], {**settings, **change}, variant=name)
        report(args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
