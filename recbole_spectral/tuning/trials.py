"""One trial (a run through the library's run path) and the output folder every search writes."""
import csv
import os
from pathlib import Path

import yaml
from recbole.trainer import HyperTuning
from recbole.utils.utils import dict2str

from recbole_spectral.config import SpectralConfig
from recbole_spectral.errors import SpectralError


def run_trial(base, params, callback_fn=None):
    """Train and test one parameter setting; returns the run's result dict (plus ``model``)."""
    from recbole_spectral.quick_start import objective_function

    config_dict = {"model": base["model"], "dataset": base["dataset"], **base.get("config_dict", {}), **params}
    return objective_function(config_dict, base.get("config_file_list"), saved=True, callback_fn=callback_fn)


def trial_base(model, dataset, config_file_list, config_dict, output_dir):
    """The fixed part of every trial, with every path absolute (Ray trials run in their own folders)."""
    files = [str(Path(f).resolve()) for f in config_file_list or []]
    config = SpectralConfig(model, dataset, files, dict(config_dict or {}))  # fails early on bad input
    from recbole_spectral.data import ensure_dataset_files

    ensure_dataset_files(config)
    fixed = dict(config_dict or {})
    if config["dataset"] != "ml-100k":  # RecBole always uses its bundled copy for ml-100k
        fixed["data_path"] = str(Path(config["data_path"]).resolve().parent)
    fixed["checkpoint_dir"] = str((Path(output_dir) / "saved").resolve())
    return {"model": config["model"], "dataset": config["dataset"], "config_file_list": files, "config_dict": fixed,
            "valid_metric": config["valid_metric"], "bigger": config["valid_metric_bigger"]}


def write_outputs(output_dir, base, backend, algo, trials):
    ok = [t for t in trials if t["status"] == "ok"]
    if not ok:
        first = next((t.get("error") for t in trials if t.get("error")), "no trial finished")
        raise SpectralError(f"no trial finished; first error: {first}")
    pick = max if base["bigger"] else min
    best = pick(ok, key=lambda t: t["result"]["best_valid_score"])
    summary = {
        "model": base["model"], "dataset": base["dataset"], "backend": backend, "algo": algo,
        "valid_metric": base["valid_metric"], "trials": len(trials), "finished": len(ok),
        "best_params": best["params"], "best_valid_score": float(best["result"]["best_valid_score"]),
        "best_valid_result": {k: float(v) for k, v in (best["result"]["best_valid_result"] or {}).items()},
        "test_result": {k: float(v) for k, v in (best["result"]["test_result"] or {}).items()},
    }
    with open(os.path.join(output_dir, "best_params.yaml"), "w") as fp:
        yaml.safe_dump(summary, fp, sort_keys=False)
    with open(os.path.join(output_dir, "results.txt"), "w") as fp:  # RecBole's export_result format
        for t in trials:
            fp.write(HyperTuning.params2str(t["params"]) + "\n")
            if t["status"] == "ok":
                fp.write("Valid result:\n" + dict2str(t["result"]["best_valid_result"]) + "\n")
                fp.write("Test result:\n" + dict2str(t["result"]["test_result"]) + "\n\n")
            else:
                fp.write(f"{t['status']}: {t.get('error') or 'stopped by the scheduler after epoch %s' % t.get('epochs')}\n\n")
    names = list(dict.fromkeys(k for t in trials for k in t["params"]))
    metric_names = list(dict.fromkeys(k for t in ok for k in t["result"]["test_result"]))
    with open(os.path.join(output_dir, "trials.csv"), "w", newline="") as fp:
        writer = csv.writer(fp)
        writer.writerow(["trial", *names, "status", "error", "time_s", "best_valid_score", *[f"test_{m}" for m in metric_names]])
        for i, t in enumerate(trials, 1):
            result = t.get("result") or {}
            writer.writerow([i, *[t["params"].get(n, "") for n in names], t["status"], t.get("error", ""), t.get("time_s", ""),
                             result.get("best_valid_score", t.get("last_valid_score", "")),
                             *[(result.get("test_result") or {}).get(m, "") for m in metric_names]])
    plot_trials(base["model"], [HyperTuning.params2str(t["params"]) for t in ok],
                [float(t["result"]["best_valid_score"]) for t in ok], os.path.join(output_dir, "tuning.html"))
    return summary


def plot_trials(model, params_list, score_list, path):
    """RecBole's HyperTuning.plot_hyper figure (valid score per trial), written to ``path``."""
    import plotly.graph_objs as go
    from plotly.offline import plot

    trace = go.Scatter(
        x=[str(i + 1) for i in range(len(score_list))], y=score_list, text=params_list,
        mode="lines+markers", marker=dict(color="green"), showlegend=True, textposition="top center",
        name=f"{model} tuning process",
    )
    layout = go.Layout(title="hyperparams_tuning", xaxis=dict(title="trials"), yaxis=dict(title="valid_score"))
    plot(go.Figure(data=[trace], layout=layout), filename=str(path), auto_open=False)
