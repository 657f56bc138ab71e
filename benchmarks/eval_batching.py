"""Full test-evaluation time: RecBole's batch sizing (eval_batch_size 4096 -> 1 user per batch on a
catalogue of > 2,048 items) against the run path's score budget (``eval_score_budget``), same checkpoint,
same metrics to the last digit, measured side by side in one process.

    nice -n 5 python -m benchmarks.eval_batching --dataset taobao-15k --out benchmarks/results/eval_batching.md

For each model (default LightGCN and SpectraMB) one short training run (``--epochs``, the run path's
defaults otherwise) writes a checkpoint; then its full test evaluation is timed ``--repeats`` times with
each sizing, alternating, and the metrics of every evaluation are compared. The dataset is converted from
``<shared>/multibehavior/<dataset>`` first if needed (into the data folder, never the repository).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from recbole_spectral import paths
from recbole_spectral.config import SpectralConfig
from recbole_spectral.data.converters.crgcn import convert_crgcn
from recbole_spectral.quick_start import build_run, full_sort_users_per_batch, start_run, train_and_test

SIZINGS = {"RecBole default": None, "score budget": 2 ** 24}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="taobao-15k")
    parser.add_argument("--models", default="LightGCN,SpectraMB")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--epochs", type=int, default=1, help="training epochs before the timing (any checkpoint will do)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the Markdown result here")
    args = parser.parse_args(argv)

    data_dir = paths.default_data_dir()
    if not (data_dir / args.dataset).is_dir():
        convert_crgcn(os.path.join(args.shared, "multibehavior", args.dataset), args.dataset, out=data_dir)
    work = tempfile.mkdtemp(prefix="eval_batching-")
    base = {"epochs": args.epochs, "use_gpu": False, "show_progress": False, "state": "WARNING",
            "train_batch_size": 8192, "checkpoint_dir": os.path.join(work, "saved"), "eval_batch_size": 4096}
    lines = [f"# Full test evaluation: batch sizing on {args.dataset}", "",
             f"Command: `nice -n 5 python -m benchmarks.eval_batching {' '.join(argv or sys.argv[1:])}`", "",
             "| model | users per batch (RecBole default) | users per batch (score budget 2^24) | "
             "eval s (default) | eval s (budget) | speed-up | metrics identical |", "|---|---:|---:|---:|---:|---:|---|"]
    for model in args.models.split(","):
        config = SpectralConfig(model, args.dataset, config_dict=base)
        start_run(config)
        result, _, _ = train_and_test(config)
        checkpoint = result["model_file"]
        evaluators, seconds, metrics, per_batch = {}, {k: [] for k in SIZINGS}, {}, {}
        for label, budget in SIZINGS.items():
            cfg = SpectralConfig(model, args.dataset, config_dict={**base, "eval_score_budget": budget})
            start_run(cfg)
            dataset, (_, _, test_data), _, trainer = build_run(cfg)
            per_batch[label] = full_sort_users_per_batch(cfg, dataset.item_num)
            evaluators[label] = (trainer, test_data)
        for _ in range(args.repeats):
            for label, (trainer, test_data) in evaluators.items():
                start = time.perf_counter()
                metrics[label] = trainer.evaluate(test_data, model_file=checkpoint, show_progress=False)
                seconds[label].append(time.perf_counter() - start)
                print(f"{model} {label}: {seconds[label][-1]:.1f} s {dict(metrics[label])}", flush=True)
        default_s, budget_s = (statistics.median(seconds[k]) for k in SIZINGS)
        same = dict(metrics["RecBole default"]) == dict(metrics["score budget"])
        lines.append(f"| {model} | {per_batch['RecBole default']} | {per_batch['score budget']} | {default_s:.1f} | "
                     f"{budget_s:.1f} | {default_s / budget_s:.1f}x | {'yes' if same else 'NO'} |")
    lines += ["", "Seconds: median of the repeats, both sizings alternated in one process on the same checkpoint."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
