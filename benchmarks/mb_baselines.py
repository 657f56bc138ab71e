"""RecBole LightGCN trained on the target behavior only vs. on all behaviors, same split, side by side.

Both runs use the converted multi-behavior dataset (MultiBehaviorDataset): the same id space, the same
validation/test target rows, full ranking over all items, early stopping on validation HR@10, and
evaluation masks holding only the user's training target interactions (auxiliary interactions are never
masked). "all behaviors" sets ``train_on_all_behaviors: True``: LightGCN's graph and BPR pairs come from
the union of the training target and every auxiliary behavior.

    nice -n 5 python benchmarks/mb_baselines.py --dataset taobao-15k --variants "target only" &
    nice -n 5 python benchmarks/mb_baselines.py --dataset taobao-15k --variants "all behaviors" &
    wait; python benchmarks/mb_baselines.py --table-only --out benchmarks/results/mb_baselines.md

Each run appends one JSON line to ``--runs``; ``--table-only`` prints/writes the side-by-side table from it.
Every run trains until early stopping (``--stopping-step`` evaluations without improvement) or the
epoch cap, which the table reports.

The dataset is converted from ``<shared>/multibehavior/<dataset>`` first if ``<data dir>/<dataset>`` is absent.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole_spectral import paths  # noqa: E402
from recbole_spectral.config import SpectralConfig  # noqa: E402
from recbole_spectral.data.converters.crgcn import convert_crgcn  # noqa: E402
from recbole_spectral.quick_start import start_run, train_and_test  # noqa: E402

VARIANTS = {"target only": False, "all behaviors": True}
METRICS = ["hit@10", "ndcg@10", "hit@20", "ndcg@20"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="taobao-15k")
    parser.add_argument("--data-dir", default=None, help="converted datasets (default: $RECBOLE_SPECTRAL_DATA)")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "datasets"), help="raw public datasets")
    parser.add_argument("--seeds", default="2020", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=200, help="epoch cap, target-only run")
    parser.add_argument("--epochs-all", type=int, default=60, help="epoch cap, all-behaviors run (much larger epochs)")
    parser.add_argument("--stopping-step", type=int, default=5)
    parser.add_argument("--train-batch-size", type=int, default=8192, help="target-only run")
    parser.add_argument("--train-batch-size-all", type=int, default=65536,
                        help="all-behaviors run (12x more pairs on taobao-15k: about as many steps per epoch)")
    parser.add_argument("--eval-step", type=int, default=2, help="validate every N epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--runs", default=str(ROOT / "benchmarks" / "results" / "mb_baselines-runs.jsonl"))
    parser.add_argument("--table-only", action="store_true", help="render --runs as a table, train nothing")
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--out", default=None, help="write the markdown table (with this command) here")
    return parser.parse_args(argv)


def run_one(args, data_dir, all_behaviors, seed, workdir):
    epochs = args.epochs_all if all_behaviors else args.epochs
    batch = args.train_batch_size_all if all_behaviors else args.train_batch_size
    config = SpectralConfig("LightGCN", args.dataset, config_dict={
        "data_path": str(data_dir), "seed": seed, "epochs": epochs, "stopping_step": args.stopping_step,
        "train_batch_size": batch, "learning_rate": args.learning_rate, "eval_step": args.eval_step,
        "embedding_size": args.embedding_size, "n_layers": args.n_layers,
        "train_on_all_behaviors": all_behaviors, "valid_metric": "Hit@10", "metrics": ["Hit", "NDCG"],
        "topk": [10, 20], "use_gpu": False, "show_progress": False, "checkpoint_dir": str(workdir),
        "log_wandb": False,
    })
    start_run(config)
    start = time.time()
    result, model, _ = train_and_test(config)
    fit_seconds = time.time() - start
    stopped = "epoch cap" if result["epochs_run"] >= epochs else "early stopping"
    return {
        "variant": "all behaviors" if all_behaviors else "target only", "seed": seed, "dataset": args.dataset,
        "test": dict(result["test_result"]), "valid_hit@10": float(result["best_valid_score"]),
        "best_epoch": result["best_epoch"], "epochs": result["epochs_run"], "stopped": stopped,
        "s_per_epoch": fit_seconds / max(result["epochs_run"], 1),
        "train_pairs": int(model.interaction_matrix.nnz), "batch": batch, "lr": args.learning_rate,
        "threads": args.threads,
    }


def table(rows):
    head = ("| LightGCN trained on | seed | training pairs | batch | " + " | ".join(
        m.replace("hit", "HR").replace("ndcg", "NDCG") for m in METRICS)
        + " | valid HR@10 | best epoch / epochs run | stopped by | s per epoch (train + eval) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['train_pairs']:,} | {r['batch']} | "
            + " | ".join(f"{r['test'][m]:.4f}" for m in METRICS)
            + f" | {r['valid_hit@10']:.4f} | {r['best_epoch']} / {r['epochs']} | {r['stopped']} | {r['s_per_epoch']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = Path(args.out).resolve() if args.out else None
    runs = Path(args.runs).resolve()
    if not args.table_only:
        import torch

        torch.set_num_threads(args.threads)
        data_dir = Path(args.data_dir).resolve() if args.data_dir else paths.default_data_dir()
        if not (data_dir / args.dataset).is_dir():
            src = Path(args.shared) / "multibehavior" / args.dataset
            print(f"converting {src} -> {data_dir / args.dataset}", flush=True)
            convert_crgcn(src, args.dataset, data_dir)
        with tempfile.TemporaryDirectory(prefix="mb_baselines_") as workdir:
            os.chdir(workdir)  # RecBole writes log/ to the cwd
            for name in [v.strip() for v in args.variants.split(",")]:
                for seed in [int(s) for s in args.seeds.split(",")]:
                    r = run_one(args, data_dir, VARIANTS[name], seed, workdir)
                    r["command"] = "python benchmarks/mb_baselines.py " + " ".join(f"'{a}'" if " " in a else a for a in argv)
                    r["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                    runs.parent.mkdir(parents=True, exist_ok=True)
                    with open(runs, "a") as handle:
                        handle.write(json.dumps(r) + "\n")
                    print(f"{name} seed {seed}: {r}", flush=True)
    rows = [json.loads(line) for line in open(runs)] if runs.is_file() else []
    rows = [r for r in rows if r["dataset"] == args.dataset]
    text = table(rows)
    print(text, flush=True)
    if out:
        commands = "\n".join(sorted({f"    nice -n 5 {r['command']}" for r in rows}))
        r0 = rows[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            f"# LightGCN on {args.dataset}: target behavior only vs. all behaviors\n\n"
            f"Commands (repository root, RECBOLE_SPECTRAL_DATA=/work/data_atomic holding the converted dataset), "
            f"run side by side on the shared 2-core CPU, then this table:\n\n{commands}\n"
            f"    python benchmarks/mb_baselines.py --dataset {args.dataset} --table-only --out {args.out}\n\n"
            f"RecBole LightGCN ({args.n_layers} layers, d={args.embedding_size}, lr {r0['lr']}, Adam, BPR, "
            f"{r0['threads']} torch thread), same MultiBehaviorDataset split: full ranking over all items; "
            f"masks = the user's training target (and, at test, validation) items only; early stopping on "
            f"validation HR@10, validated every {args.eval_step} epochs. Runs from {args.runs}.\n\n{text}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
