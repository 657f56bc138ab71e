"""Side-by-side comparison: models x seeds on one dataset, one split, one config.

Every run gets the same config (RecBole defaults -> plugin properties -> ``config_file_list`` ->
``config_dict`` -> optional per-model settings) and the same train/valid/test split: the split is
drawn with ``split_seed`` (default: the first seed) before each run's dataset is built, so it is
identical for every model and seed; a run's own seed sets model initialisation and training order.
A run that raises is recorded as failed with a one-line error and the others still run.

Results go to ``out_dir``: ``runs.csv`` (one row per run), ``summary.md`` (mean ± std per model, best
value in bold), ``chart.png`` (test metrics per model) and ``errors.log`` (tracebacks of failed runs).
Python API::

    from recbole_spectral.compare import compare_models
    rows = compare_models(["BPR", "LightGCN", "SSR"], "ml-100k-mm", seeds=[2020, 2021],
                          config_dict={"epochs": 50}, out_dir="results/ssr-vs-baselines",
                          per_model_config={"SSR": {"n_bands": 4}})
"""
import argparse
import csv
import logging
import math
import os
import statistics
import time
import traceback
from logging import getLogger

import yaml

from recbole_spectral.config import SpectralConfig, parse_cli_value
from recbole_spectral.data import ensure_dataset_files
from recbole_spectral.errors import ConfigError
from recbole_spectral.quick_start import build_run, init_logging

RUN_COLUMNS = ["run", "model", "seed", "status", "error", "best_epoch", "epochs_run", "epoch_time_s",
               "total_time_s", "n_params", "best_valid_score"]


def one_line(err):
    """``Type: first line of the message`` — how a failed run is recorded."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def model_name(model):
    return model if isinstance(model, str) else model.__name__


def _quiet_console():
    """Keep RecBole's INFO lines in the log file only; the console shows the comparison's progress."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # FileHandler is a subclass: left as is
            handler.setLevel(max(handler.level, logging.WARNING))


def _timed_trainer(trainer_class, report):
    """``trainer_class`` that records each training epoch's time and reports it."""

    class Timed(trainer_class):
        def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
            start = time.time()
            loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
            self.epoch_times.append(time.time() - start)
            shown = sum(loss) if isinstance(loss, tuple) else loss
            report(f"epoch {epoch_idx + 1}/{self.epochs}: train {self.epoch_times[-1]:.1f}s, loss {shown:.4f}")
            return loss

    Timed.__name__ = trainer_class.__name__
    Timed.epoch_times = None
    return Timed


def run_one(model, dataset, seed, split_seed, config_file_list=None, config_dict=None, label="", saved=True):
    """Train and test one model with one seed; returns its row (``status`` ok or failed)."""
    name = model_name(model)
    row = {"model": name, "seed": seed, "status": "ok", "error": ""}

    def report(message):
        print(f"{label} {name} seed={seed} {message}".strip(), flush=True)

    start = time.time()
    try:
        config = SpectralConfig(model, dataset, config_file_list, {**(config_dict or {}), "seed": seed})
        ensure_dataset_files(config)
        init_logging(config)
        _quiet_console()
        getLogger().info(config)
        report("started")
        _, (train_data, valid_data, test_data), net, trainer = build_run(  # the same split for every run
            config, split_seed=split_seed, trainer_wrapper=lambda cls: _timed_trainer(cls, report)
        )
        row["n_params"] = sum(p.numel() for p in net.parameters())
        trainer.epoch_times = []
        best = {"epoch": None}

        def on_valid(epoch_idx, valid_score):
            improved = trainer.cur_step == 0  # RecBole's early_stopping resets cur_step on a new best
            if improved:
                best["epoch"] = epoch_idx + 1
            report(f"epoch {epoch_idx + 1}: valid {config['valid_metric']} {valid_score:.4f}" + (" (best)" if improved else ""))

        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, verbose=True, saved=saved, show_progress=config["show_progress"], callback_fn=on_valid
        )
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
        epoch_times = trainer.epoch_times
        row.update(
            best_epoch=best["epoch"] if best["epoch"] is not None else len(epoch_times),
            epochs_run=len(epoch_times),
            epoch_time_s=round(statistics.fmean(epoch_times), 3) if epoch_times else 0.0,
            best_valid_score=float(best_valid_score),
        )
        row.update({f"valid_{k}": v for k, v in (best_valid_result or {}).items()})
        row.update({f"test_{k}": v for k, v in (test_result or {}).items()})
        getLogger().info(f"test result: {test_result}")
    except Exception as err:  # a failed run is a result too; the comparison goes on
        row["status"], row["error"] = "failed", one_line(err)
        row["_traceback"] = traceback.format_exc()  # goes to <out_dir>/errors.log, not the console
    row["total_time_s"] = round(time.time() - start, 2)
    report(f"{row['status']} in {row['total_time_s']:.1f}s" + (f": {row['error']}" if row["error"] else ""))
    return row


def compare_models(models, dataset, seeds=(2020,), config_dict=None, out_dir="results/compare",
                   per_model_config=None, config_file_list=None, split_seed=None, saved=True):
    """Run every model with every seed on ``dataset``; write runs.csv, summary.md, chart.png to ``out_dir``.

    ``models``: names (plugin or RecBole) or model classes. ``per_model_config``: {model name: dict}
    laid over ``config_dict`` for that model only. Returns the list of row dicts (also in runs.csv).
    """
    seeds = list(seeds)
    if not models or not seeds:
        raise ConfigError("compare needs at least one model and one seed")
    split_seed = seeds[0] if split_seed is None else split_seed
    per_model_config = per_model_config or {}
    rows = []
    total = len(models) * len(seeds)
    for model in models:
        for seed in seeds:
            settings = {**(config_dict or {}), **per_model_config.get(model_name(model), {})}
            label = f"[{len(rows) + 1}/{total}]"
            row = run_one(model, dataset, seed, split_seed, config_file_list, settings, label=label, saved=saved)
            rows.append({"run": len(rows) + 1, **row})
    tracebacks = [(r, r.pop("_traceback")) for r in rows if "_traceback" in r]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "errors.log"), "w") as fp:
        for r, text in tracebacks:
            fp.write(f"run {r['run']}: {r['model']} seed {r['seed']}\n{text}\n")
    write_results(rows, out_dir, dataset=dataset, seeds=seeds, split_seed=split_seed, config_dict=config_dict)
    return rows


# -- results -----------------------------------------------------------------------------------------
def columns(rows):
    """RUN_COLUMNS, then valid_* and test_* metric columns in first-seen order."""
    seen = [c for c in RUN_COLUMNS]
    for row in rows:
        seen += [k for k in row if k not in seen]
    return seen


def metric_keys(rows, prefix="test_"):
    keys = []
    for row in rows:
        keys += [k for k in row if k.startswith(prefix) and k not in keys]
    return keys


def smaller_is_better(key):
    from recbole.evaluator.register import smaller_metrics

    base = key.split("_", 1)[1] if key.startswith(("test_", "valid_")) else key
    base = base[len("cold_"):] if base.startswith("cold_") else base
    return base.split("@")[0] in smaller_metrics


def summarize(rows):
    """Per model, in first-seen order: {model, ok, runs, <column>: (mean, std) for numeric columns}."""
    summary = []
    for name in dict.fromkeys(r["model"] for r in rows):
        runs = [r for r in rows if r["model"] == name]
        ok = [r for r in runs if r["status"] == "ok"]
        entry = {"model": name, "runs": len(runs), "ok": len(ok)}
        for key in metric_keys(rows) + ["best_valid_score", "best_epoch", "epoch_time_s", "total_time_s", "n_params"]:
            values = [float(r[key]) for r in ok if r.get(key) is not None and not _isnan(r[key])]
            if values:
                entry[key] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        summary.append(entry)
    return summary


def _isnan(value):
    return isinstance(value, float) and math.isnan(value)


def markdown_table(rows, dataset="", seeds=(), split_seed=None, config_dict=None):
    summary = summarize(rows)
    metrics = metric_keys(rows)
    best = {}
    for key in metrics + ["best_valid_score"]:
        means = [e[key][0] for e in summary if key in e]
        if means:
            pick = min if smaller_is_better(key) else max
            best[key] = pick(means)
    header = ["model", "runs ok"] + [k[len("test_"):] for k in metrics] + [
        "best valid score", "best epoch", "epoch time (s)", "total time (s)", "params"]
    lines = [
        f"# Comparison on {dataset}",
        "",
        f"Seeds {', '.join(map(str, seeds))}; one split (split seed {split_seed}) for every run. "
        "Test metrics: mean ± std over the seeds that finished; best mean in bold.",
    ]
    if config_dict:
        lines.append(f"Settings: {', '.join(f'{k}={v}' for k, v in config_dict.items())}.")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for entry in summary:
        cells = [entry["model"], f"{entry['ok']}/{entry['runs']}"]
        for key in metrics + ["best_valid_score"]:
            if key not in entry:
                cells.append("—")
                continue
            mean, std = entry[key]
            text = f"{mean:.4f} ± {std:.4f}"
            cells.append(f"**{text}**" if math.isclose(mean, best[key]) else text)
        for key, fmt in (("best_epoch", "{:.1f}"), ("epoch_time_s", "{:.2f}"), ("total_time_s", "{:.1f}"), ("n_params", "{:,.0f}")):
            cells.append(fmt.format(entry[key][0]) if key in entry else "—")
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- {r['model']} seed {r['seed']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def plot_chart(rows, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = [e for e in summarize(rows) if e["ok"]]
    metrics = metric_keys(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(metrics) * max(1, len(summary)) / 2 + 2), 4.5))
    width = 0.8 / max(1, len(summary))
    for i, entry in enumerate(summary):
        xs = [m + (i - (len(summary) - 1) / 2) * width for m in range(len(metrics))]
        means = [entry[k][0] if k in entry else 0.0 for k in metrics]
        stds = [entry[k][1] if k in entry else 0.0 for k in metrics]
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=entry["model"])
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([k[len("test_"):] for k in metrics], rotation=45, ha="right")
    ax.set_ylabel("test value (mean ± std over seeds)")
    ax.set_title(title)
    if summary:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(rows, out_dir, dataset="", seeds=(), split_seed=None, config_dict=None):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "runs.csv"), "w", newline="") as fp:
        writer = csv.DictWriter(fp, fieldnames=columns(rows), restval="")
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(out_dir, "summary.md"), "w") as fp:
        fp.write(markdown_table(rows, dataset, seeds, split_seed, config_dict))
    plot_chart(rows, os.path.join(out_dir, "chart.png"), title=f"{dataset}: test metrics")


# -- command line ----------------------------------------------------------------------------------
def parser():
    p = argparse.ArgumentParser(
        prog="run_recbole_spectral.py compare",
        description="Run models x seeds on one dataset with the same split and config; write runs.csv, "
        "summary.md and chart.png.",
        epilog="Any other --key=value is a config value for every run (parsed like RecBole's command line). "
        "Exit code 1 when a run failed (it is recorded in the results), 2 on bad input.",
    )
    p.add_argument("--models", required=True, help="comma-separated model names, e.g. BPR,LightGCN,SSR")
    p.add_argument("--dataset", "-d", required=True)
    p.add_argument("--seeds", default="2020", help="comma-separated seeds (default 2020)")
    p.add_argument("--split_seed", type=int, default=None, help="seed of the shared split (default: first seed)")
    p.add_argument("--out_dir", default=None, help="results folder (default results/compare-<dataset>)")
    p.add_argument("--config_files", default=None, help="space-separated YAML config files for every run")
    p.add_argument("--model_config", default=None,
                   help="YAML file mapping a model name to its own settings, e.g. 'SSR: {n_bands: 4}'")
    return p


def main(argv):
    from recbole_spectral.cli import split_overrides

    args, extra = parser().parse_known_args(argv)
    overrides = {k: parse_cli_value(v) for k, v in split_overrides(extra).items()}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got '{args.seeds}'") from None
    per_model = {}
    if args.model_config:
        if not os.path.isfile(args.model_config):
            raise ConfigError(f"--model_config file '{args.model_config}' does not exist")
        with open(args.model_config) as fp:
            per_model = yaml.safe_load(fp) or {}
        if not isinstance(per_model, dict) or not all(isinstance(v, dict) for v in per_model.values()):
            raise ConfigError(f"--model_config file '{args.model_config}': expected 'Model: {{key: value}}' entries")
    out_dir = args.out_dir or os.path.join("results", f"compare-{args.dataset}")
    rows = compare_models(models, args.dataset, seeds, overrides, out_dir, per_model,
                          args.config_files.split() if args.config_files else None, args.split_seed)
    print(markdown_table(rows, args.dataset, seeds, args.split_seed or seeds[0], overrides))
    print(f"results: {os.path.join(out_dir, 'runs.csv')}, {os.path.join(out_dir, 'summary.md')}, "
          f"{os.path.join(out_dir, 'chart.png')}")
    return 1 if any(r["status"] != "ok" for r in rows) else 0
