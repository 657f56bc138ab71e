"""Side-by-side comparison: models x seeds on one dataset, one split, one config.

Every run gets the same config (RecBole defaults -> plugin properties -> ``config_file_list`` ->
``config_dict`` -> optional per-model settings) and the same train/valid/test split: the split is
drawn with ``split_seed`` (default: the first seed) before each run's dataset is built, so it is
identical for every model and seed; a run's own seed sets model initialisation and training order.
A run that raises is recorded as failed with a one-line error and the others still run.

Results go to ``out_dir``, rewritten as soon as each run ends: ``runs.csv`` (one row per run, with the
best checkpoint's path and a hash of the run's settings), ``summary.md`` (mean ± std per model, best
value in bold), ``chart.png`` (test metrics per model) and ``errors.log`` (tracebacks of failed runs).
``resume`` (``--resume``) skips the runs whose row already finished with the same settings and lets a run
killed mid-training go on from its last validation (``recbole_spectral.training_state``).
Python API::

    from recbole_spectral.compare import compare_models
    rows = compare_models(["BPR", "LightGCN", "SSR"], "ml-100k-mm", seeds=[2020, 2021],
                          config_dict={"epochs": 50}, out_dir="results/ssr-vs-baselines",
                          per_model_config={"SSR": {"n_bands": 4}})
"""
import argparse
import csv
import hashlib
import json
import logging
import math
import os
import statistics
import time
import traceback
from logging import getLogger
from pathlib import Path

import yaml

from recbole_spectral import paths
from recbole_spectral.config import SpectralConfig, parse_cli_value, split_overrides
from recbole_spectral.errors import ConfigError, one_line
from recbole_spectral.quick_start import start_run, train_and_test

RUN_COLUMNS = ["run", "model", "seed", "status", "error", "best_epoch", "epochs_run", "epoch_time_s",
               "total_time_s", "n_params", "best_valid_score", "model_file", "settings_key"]


def model_name(model):
    return model if isinstance(model, str) else model.__name__


def _quiet_console():
    """Keep RecBole's INFO lines in the log file only; the console shows the comparison's progress."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # FileHandler is a subclass: left as is
            handler.setLevel(max(handler.level, logging.WARNING))


# where a run reads and writes, not what it computes: left out of the settings key, so a results folder
# moved elsewhere (or a run made with another checkpoint folder) still resumes
_LOCATION_KEYS = ("checkpoint_dir", "data_path", "log_root", "knn_cache_dir")


def _file_digest(path):
    """sha1 of a config file's parsed YAML content, so that comments and layout do not change a run's key
    (the raw bytes where the file is not YAML)."""
    data = Path(path).read_bytes()
    try:
        data = json.dumps(yaml.safe_load(data), sort_keys=True, default=str).encode()
    except yaml.YAMLError:
        pass
    return hashlib.sha1(data).hexdigest()


# add-ons a model YAML offers with a switch (beyond the papers); while a run leaves one off, its keys do not
# define the run, so shipping a new add-on (off) keeps every earlier run's key (an option of an add-on, off by
# default, is a switch of its own: cascade_term_stages)
ADDON_SWITCHES = ("history_term", "cascade_term", "cascade_term_stages")


def _model_digest(path, config_file_list, settings):
    """:func:`_file_digest` of a model YAML without the keys of the add-ons this run leaves off."""
    values = yaml.safe_load(Path(path).read_text()) or {}
    merged = dict(values)
    for file in config_file_list or []:
        merged.update(yaml.safe_load(Path(file).read_text()) or {})
    merged.update(settings)
    off = [s for s in ADDON_SWITCHES if s in values and not merged.get(s)]
    kept = {k: v for k, v in values.items() if not any(k == s or k.startswith(s + "_") for s in off)}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def settings_key(model, dataset, seed, split_seed, config_file_list, settings):
    """A short hash of everything that defines one run: a finished row with the same key is reused by
    ``resume`` (and by a study)."""
    settings = {k: v for k, v in settings.items() if k not in _LOCATION_KEYS}
    files = [_file_digest(path) for path in config_file_list or []]
    # the plugin's shipped defaults too: a run made before a model's (or dataset's) YAML changed is not reused
    model_file, dataset_file = paths.model_properties_file(model_name(model)), paths.dataset_properties_file(dataset)
    if model_file.is_file():
        files.append(_model_digest(model_file, config_file_list, settings))
    if dataset_file.is_file():
        files.append(_file_digest(dataset_file))
    text = json.dumps([model_name(model), dataset, seed, split_seed, files, settings], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def run_one(model, dataset, seed, split_seed, config_file_list=None, config_dict=None, label="", saved=True,
            state_name=None):
    """Train and test one model with one seed; returns its row (``status`` ok or failed). With ``state_name``
    the training state is kept as ``<checkpoint_dir>/<state_name>.state.pth`` while the run trains, so a run
    killed mid-training goes on from its last validation when it is started again."""
    name = model_name(model)
    row = {"model": name, "seed": seed, "status": "ok", "error": ""}

    def report(message):
        print(f"{label} {name} seed={seed} {message}".strip(), flush=True)

    start, before = time.time(), 0.0
    try:
        config = SpectralConfig(model, dataset, config_file_list, {**(config_dict or {}), "seed": seed})
        start_run(config)
        _quiet_console()
        report("started")
        state_file = os.path.join(config["checkpoint_dir"], f"{state_name}.state.pth") if state_name else None
        result, _, _ = train_and_test(config, saved=saved, split_seed=split_seed, report=report,  # one split for all
                                      state_file=state_file)
        row.update(
            best_epoch=result["best_epoch"], epochs_run=result["epochs_run"],
            epoch_time_s=round(result["epoch_time_s"], 3), n_params=result["n_params"],
            best_valid_score=float(result["best_valid_score"]), model_file=result["model_file"] or "",
        )
        row.update({f"valid_{k}": v for k, v in (result["best_valid_result"] or {}).items()})
        row.update({f"test_{k}": v for k, v in (result["test_result"] or {}).items()})
        before = result["time_before_resume_s"]  # a resumed run's time counts its earlier processes too
        getLogger().info(f"test result: {result['test_result']}")
    except Exception as err:  # a failed run is a result too; the comparison goes on
        row["status"], row["error"] = "failed", one_line(err)
        row["_traceback"] = traceback.format_exc()  # goes to <out_dir>/errors.log, not the console
    row["total_time_s"] = round(time.time() - start + before, 2)
    report(f"{row['status']} in {row['total_time_s']:.1f}s" + (f": {row['error']}" if row["error"] else ""))
    return row


def read_rows(out_dir):
    """Rows of an earlier ``runs.csv`` in ``out_dir`` (numbers parsed), or []."""
    path = os.path.join(out_dir, "runs.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as fp:
        rows = list(csv.DictReader(fp))
    for row in rows:
        for key, value in row.items():
            if key in ("model", "status", "error", "model_file", "settings_key"):
                continue
            try:
                row[key] = int(value) if value.lstrip("-").isdigit() else float(value)
            except (ValueError, AttributeError):
                pass
    return rows


def compare_models(models, dataset, seeds=(2020,), config_dict=None, out_dir="results/compare",
                   per_model_config=None, config_file_list=None, split_seed=None, saved=True, resume=False):
    """Run every model with every seed on ``dataset``; write runs.csv, summary.md, chart.png to ``out_dir``.

    ``models``: names (plugin or RecBole) or model classes. ``per_model_config``: {model name: dict}
    laid over ``config_dict`` for that model only. The result files are rewritten after every run, so an
    interrupted comparison keeps what finished; with ``resume`` a run whose row in ``out_dir/runs.csv``
    finished with the same settings is not run again, a run that was killed mid-training goes on from its last
    validation (its training state under ``checkpoint_dir``), and the rows of models or seeds that this call does
    not run stay in the table (so calls on different models may share ``out_dir``, one after the other or in
    parallel processes). Returns the list of this call's row dicts.
    """
    seeds = list(seeds)
    if not models or not seeds:
        raise ConfigError("compare needs at least one model and one seed")
    split_seed = seeds[0] if split_seed is None else split_seed
    per_model_config = per_model_config or {}
    earlier = {r.get("settings_key"): r for r in read_rows(out_dir) if r.get("status") == "ok"} if resume else {}
    os.makedirs(out_dir, exist_ok=True)
    rows, tracebacks = [], []
    total = len(models) * len(seeds)
    planned = {(model_name(m), s) for m in models for s in seeds}
    for model in models:
        for seed in seeds:
            settings = {**(config_dict or {}), **per_model_config.get(model_name(model), {})}
            key = settings_key(model, dataset, seed, split_seed, config_file_list, settings)
            done = earlier.get(key)
            label = f"[{len(rows) + 1}/{total}]"
            if done:
                print(f"{label} {model_name(model)} seed={seed}: finished earlier with these settings (resume)", flush=True)
                row = {**{k: v for k, v in done.items() if k != "run"}, "settings_key": key}
            else:
                row = run_one(model, dataset, seed, split_seed, config_file_list, settings, label=label, saved=saved,
                              state_name=f"{model_name(model)}-{key}" if resume else None)
                row["settings_key"] = key
            rows.append({"run": len(rows) + 1, **row})
            if "_traceback" in rows[-1]:
                tracebacks.append((rows[-1], rows[-1].pop("_traceback")))
            table = _with_other_rows(rows, out_dir, planned) if resume else rows
            write_results(table, out_dir, dataset=dataset, seeds=seeds, split_seed=split_seed, config_dict=config_dict)
            with open(os.path.join(out_dir, "errors.log"), "w") as fp:
                for r, text in tracebacks:
                    fp.write(f"run {r['run']}: {r['model']} seed {r['seed']}\n{text}\n")
    return rows


def _with_other_rows(rows, out_dir, planned):
    """The rows of ``out_dir/runs.csv`` whose (model, seed) this call does not run, then this call's rows,
    renumbered; read again before every write, so that a parallel call on other models keeps its rows."""
    others = [r for r in read_rows(out_dir) if (r.get("model"), r.get("seed")) not in planned]
    return [{**r, "run": n} for n, r in enumerate(others + rows, 1)]


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
            values = [float(r[key]) for r in ok if r.get(key) not in (None, "") and not _isnan(r[key])]
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
    p.add_argument("--resume", action="store_true",
                   help="keep the finished rows of --out_dir/runs.csv whose settings match; run the rest")
    p.add_argument("--model_config", default=None,
                   help="YAML file mapping a model name to its own settings, e.g. 'SSR: {n_bands: 4}'")
    return p


def main(argv):
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
                          args.config_files.split() if args.config_files else None, args.split_seed,
                          resume=args.resume)
    print(markdown_table(rows, args.dataset, seeds, args.split_seed or seeds[0], overrides))
    print(f"results: {os.path.join(out_dir, 'runs.csv')}, {os.path.join(out_dir, 'summary.md')}, "
          f"{os.path.join(out_dir, 'chart.png')}")
    return 1 if any(r["status"] != "ok" for r in rows) else 0
