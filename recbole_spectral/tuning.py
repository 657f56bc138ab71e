"""Hyperparameter search over a RecBole params file, with hyperopt (RecBole's HyperTuning) or Ray Tune.

Params file (RecBole's format, one parameter a line, ``#`` comments)::

    learning_rate loguniform -8,-3      # exp(uniform(-8, -3)), as hyperopt's hp.loguniform
    embedding_size choice [32,64,128]
    reg_weight uniform 0.0,0.01
    n_layers quniform 1,4,1

Every trial trains with early stopping on the validation metric and tests the best checkpoint
(``recbole_spectral.quick_start``), for plugin and RecBole models on any dataset kind.

- hyperopt (default): ``recbole.trainer.HyperTuning`` with algo ``exhaustive`` / ``random`` / ``bayes``
  (TPE), ``max_evals`` and ``early_stop`` (stop after that many trials without improvement).
- Ray Tune (``--backend=ray``): the same file and algos (exhaustive = grid search, random = sampling,
  bayes = Ray's HyperOptSearch). Trials run as CPU tasks (``cpus_per_trial``; ``gpus_per_trial``
  defaults to 0) and report the validation score after every evaluation, so the ASHA scheduler prunes
  weak trials early. ``address`` attaches to a running cluster (``ray start --head`` then
  ``--address=auto`` or ``--address=<ip>:6379``); on a cluster, install recbole-spectral on every node.
  ``ray`` is imported only on this path.

Output folder: ``best_params.yaml`` (best parameters, validation score and test result),
``results.txt`` (every trial in RecBole's ``export_result`` format), ``trials.csv`` (one row a trial)
and ``tuning.html`` (RecBole's tuning-process plot, plotly).
"""
import argparse
import ast
import csv
import logging
import math
import os
import sys
import time
from pathlib import Path

import yaml
from recbole.trainer import HyperTuning
from recbole.utils.utils import dict2str

from recbole_spectral.compare import one_line
from recbole_spectral.config import SpectralConfig, parse_cli_value
from recbole_spectral.errors import ConfigError, SpectralError

ALGOS = ("exhaustive", "random", "bayes")
KINDS = {"choice": 1, "uniform": 2, "quniform": 3, "loguniform": 2}


# -- params file -------------------------------------------------------------------------------------
def parse_params_file(path):
    """[(name, kind, args)] from a RecBole params file; a bad line is a one-line ConfigError."""
    if not os.path.isfile(path):
        raise ConfigError(f"params file '{path}' does not exist")
    params = []
    with open(path) as fp:
        for number, raw in enumerate(fp, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"params file {path}, line {number}"
            parts = line.split(None, 2)
            if len(parts) < 3:
                raise ConfigError(f"{where}: expected '<name> <choice|uniform|quniform|loguniform> <values>', got '{line}'")
            name, kind, text = parts
            if kind not in KINDS:
                raise ConfigError(f"{where}: unknown type '{kind}' (expected one of {', '.join(KINDS)})")
            if kind == "choice":
                try:
                    values = ast.literal_eval(text.replace(" ", "") if text.startswith("[") else text)
                except (ValueError, SyntaxError):
                    values = None
                if not isinstance(values, (list, tuple)) or not values:
                    raise ConfigError(f"{where}: choice needs a non-empty list like [0.01,0.001], got '{text}'")
                args = (list(values),)
            else:
                try:
                    args = tuple(float(v) for v in text.replace(",", " ").split())
                except ValueError:
                    args = ()
                if len(args) != KINDS[kind] or args[0] > args[1]:
                    shape = "low,high" if KINDS[kind] == 2 else "low,high,q"
                    raise ConfigError(f"{where}: {kind} needs {shape} numbers with low <= high, got '{text}'")
            if any(name == p[0] for p in params):
                raise ConfigError(f"{where}: parameter '{name}' is given twice")
            params.append((name, kind, args))
    if not params:
        raise ConfigError(f"params file '{path}' defines no parameters")
    return params


def hyperopt_space(params):
    from hyperopt import hp

    space = {}
    for name, kind, args in params:
        if kind == "choice":
            space[name] = hp.choice(name, args[0])
        else:
            space[name] = getattr(hp, kind)(name, *args)
    return space


def ray_space(params, algo):
    from ray import tune

    space = {}
    for name, kind, args in params:
        if kind == "choice":
            space[name] = tune.grid_search(args[0]) if algo == "exhaustive" else tune.choice(args[0])
        elif kind == "uniform":
            space[name] = tune.uniform(*args)
        elif kind == "quniform":
            space[name] = tune.quniform(*args)
        else:  # the file holds log-space bounds, as hyperopt's hp.loguniform
            space[name] = tune.loguniform(math.exp(args[0]), math.exp(args[1]))
    return space


def check_algo(params, algo):
    if algo not in ALGOS:
        raise ConfigError(f"--algo: expected one of {', '.join(ALGOS)}, got '{algo}'")
    if algo == "exhaustive":
        continuous = [name for name, kind, _ in params if kind != "choice"]
        if continuous:
            raise ConfigError(f"exhaustive search needs 'choice' parameters only; {', '.join(continuous)} "
                              "are continuous (use --algo=random or bayes)")


def grid_size(params):
    return math.prod(len(args[0]) for _, kind, args in params if kind == "choice")


def plain_params(params, values):
    """Sampled values as config values: integral quniform samples become ints (e.g. n_layers)."""
    kinds = {name: (kind, args) for name, kind, args in params}
    out = {}
    for name, value in values.items():
        kind, args = kinds.get(name, ("choice", ()))
        if kind == "quniform" and all(float(a).is_integer() for a in args) and float(value).is_integer():
            value = int(value)
        elif hasattr(value, "item"):  # numpy scalars from samplers
            value = value.item()
        out[name] = value
    return out


# -- one trial -----------------------------------------------------------------------------------------
def run_trial(base, params, callback_fn=None):
    """Train and test one parameter setting; returns RecBole's result dict (plus ``model``)."""
    from recbole_spectral.quick_start import init_logging, train_and_test

    config = SpectralConfig(base["model"], base["dataset"], base.get("config_file_list"),
                            {**base.get("config_dict", {}), **params})
    init_logging(config)
    logging.getLogger().setLevel(logging.ERROR)
    result, _, _ = train_and_test(config, saved=True, verbose=False, callback_fn=callback_fn)
    return {"model": config["model"], **result}


class SpectralHyperTuning(HyperTuning):
    """RecBole's HyperTuning over the plugin's objective, with three narrow fixes:
    a failed trial is recorded (hyperopt goes on) instead of ending the search; a best score of 0.0 is
    kept (RecBole's ``if not self.best_score`` drops it); ``plot_hyper`` runs on numpy >= 1.24 (RecBole's
    uses ``np.str``) and writes the file without opening a browser.
    """

    def __init__(self, base, params, algo, max_evals, early_stop, display_file=None):
        self.base, self.param_specs = base, params
        self.trials_log = []
        super().__init__(self._objective, space=hyperopt_space(params), algo=algo, max_evals=max_evals,
                         early_stop=early_stop, display_file=display_file)
        if algo == "exhaustive":  # RecBole searches the whole grid; max_evals caps it
            self.max_evals = min(int(max_evals), grid_size(params)) if max_evals else grid_size(params)

    def _objective(self, config_dict, config_file_list=None):
        return run_trial(self.base, config_dict)

    def trial(self, params):
        import hyperopt

        params = plain_params(self.param_specs, params)
        params_str = self.params2str(params)
        print(f"trial {len(self.trials_log) + 1}: {params}", flush=True)
        start = time.time()
        try:
            result = self.objective_function(dict(params), self.fixed_config_file_list)
        except Exception as err:  # recorded; the search goes on
            self.trials_log.append({"params": params, "status": "failed", "error": one_line(err),
                                    "time_s": round(time.time() - start, 2)})
            print(f"trial {len(self.trials_log)} failed: {one_line(err)}", flush=True)
            return {"status": hyperopt.STATUS_FAIL, "loss": float("inf")}  # early_stop_fn reads "loss"
        score, bigger = float(result["best_valid_score"]), result["valid_score_bigger"]
        self.model = result["model"]
        self.params_list.append(params_str)
        self.score_list.append(score)
        self.params2result[params_str] = result
        self.trials_log.append({"params": params, "status": "ok", "result": result, "time_s": round(time.time() - start, 2)})
        if self.best_score is None or (score > self.best_score if bigger else score < self.best_score):
            self.best_score, self.best_params, self.best_test_result = score, params, result["test_result"]
        print(f"trial {len(self.trials_log)}: valid score {score:.4f} (best {self.best_score:.4f}); "
              f"test {dict2str(result['test_result'])}", flush=True)
        return {"loss": -score if bigger else score, "status": hyperopt.STATUS_OK}

    def plot_hyper(self):
        plot_trials(self.model, self.params_list, self.score_list, self.display_file)


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


# -- searches ------------------------------------------------------------------------------------------
def _base(model, dataset, config_file_list, config_dict, output_dir):
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


def tune_hyperopt(model, dataset, params_file, algo="exhaustive", max_evals=100, early_stop=10,
                  config_file_list=None, config_dict=None, output_dir="results/tune"):
    """hyperopt search through RecBole's HyperTuning; writes the output folder; returns the summary."""
    params = parse_params_file(params_file)
    check_algo(params, algo)
    os.makedirs(output_dir, exist_ok=True)
    base = _base(model, dataset, config_file_list, config_dict, output_dir)
    tuner = SpectralHyperTuning(base, params, algo, max_evals, early_stop, display_file=os.path.join(output_dir, "tuning.html"))
    try:
        tuner.run()
    except Exception as err:
        if not any(t["status"] == "ok" for t in tuner.trials_log):
            first = next((t["error"] for t in tuner.trials_log if t.get("error")), one_line(err))
            raise SpectralError(f"every trial failed; first error: {first}") from err
        raise
    return write_outputs(output_dir, base, "hyperopt", algo, tuner.trials_log)


def ray_trial(params, base):
    """One Ray Tune trial: reports the validation score after every evaluation (ASHA can prune)."""
    from ray.air import session

    params = plain_params(base["param_specs"], params)

    def report(epoch_idx, valid_score):
        session.report({"valid_score": float(valid_score), "epoch": epoch_idx + 1})

    result = run_trial(base, params, callback_fn=report)
    session.report({
        "valid_score": float(result["best_valid_score"]), "finished": True,
        **{f"valid/{k}": v for k, v in (result["best_valid_result"] or {}).items()},
        **{f"test/{k}": v for k, v in (result["test_result"] or {}).items()},
    })


def tune_ray(model, dataset, params_file, algo="random", max_evals=10, config_file_list=None, config_dict=None,
             output_dir="results/tune", cpus_per_trial=1, gpus_per_trial=0, address=None, num_cpus=None,
             scheduler="asha", grace_period=1):
    """The same search through Ray Tune; writes the same output folder; returns the summary."""
    params = parse_params_file(params_file)
    check_algo(params, algo)
    output_dir = str(Path(output_dir).resolve())
    os.makedirs(output_dir, exist_ok=True)
    base = _base(model, dataset, config_file_list, config_dict, output_dir)
    base["param_specs"] = params

    import ray
    from ray import air, tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if address is None:
        # a local cluster: workers import this same recbole_spectral (checkout or installed)
        package_parent = str(Path(__file__).resolve().parents[1])
        paths = [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        ray.init(num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        mode = "max" if base["bigger"] else "min"
        search_alg, num_samples = None, int(max_evals)
        if algo == "bayes":
            from ray.tune.search.hyperopt import HyperOptSearch

            search_alg = HyperOptSearch(space=hyperopt_space(params), metric="valid_score", mode=mode)
        elif algo == "exhaustive":
            num_samples = 1  # grid_search expands the grid
        sched = (ASHAScheduler(time_attr="training_iteration", grace_period=grace_period, max_t=10 ** 6)
                 if scheduler == "asha" else FIFOScheduler())
        trainable = tune.with_resources(tune.with_parameters(ray_trial, base=base),
                                        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        collector = _TrialCollector.make()
        tuner = tune.Tuner(
            trainable,
            param_space=None if search_alg else ray_space(params, algo),
            tune_config=tune.TuneConfig(metric="valid_score", mode=mode, num_samples=num_samples,
                                        scheduler=sched, search_alg=search_alg),
            run_config=air.RunConfig(name="ray", storage_path=output_dir, verbose=1, callbacks=[collector]),
        )
        try:
            tuner.fit()
        except RuntimeError as err:
            # ray 2.6.3 loads its ExperimentAnalysis through pyarrow (ray[tune] extra) after every trial
            # has ended; without pyarrow that last step fails, and the trials seen by the callback stand.
            if "pyarrow" not in str(err) or not collector.ended:
                raise
        trials = collector.trials(params)
    finally:
        ray.shutdown()
    return write_outputs(output_dir, base, "ray", algo, trials)


class _TrialCollector:
    """Driver-side record of every trial's last result and status (a ray.tune Callback)."""

    @classmethod
    def make(cls):
        from ray.tune import Callback

        class Collector(cls, Callback):
            pass

        return Collector()

    def __init__(self):
        self.seen, self.ended = {}, False

    def on_trial_start(self, iteration, trials, trial, **info):
        self.seen[trial.trial_id] = trial

    def on_experiment_end(self, trials, **info):
        self.ended = True
        for trial in trials:
            self.seen[trial.trial_id] = trial

    def trials(self, params):
        out = []
        for trial in sorted(self.seen.values(), key=lambda t: t.trial_id):
            metrics = trial.last_result or {}
            values = plain_params(params, {k: v for k, v in (trial.config or {}).items()})
            if trial.status == "ERROR":
                out.append({"params": values, "status": "failed", "error": _error_line(trial)})
            elif not metrics.get("finished"):
                out.append({"params": values, "status": "pruned", "epochs": metrics.get("epoch"),
                            "last_valid_score": metrics.get("valid_score")})
            else:
                out.append({"params": values, "status": "ok", "time_s": round(metrics.get("time_total_s", 0.0), 2),
                            "epochs": metrics.get("training_iteration", 1) - 1,
                            "result": {"best_valid_score": metrics["valid_score"],
                                       "best_valid_result": _unprefix(metrics, "valid/"),
                                       "test_result": _unprefix(metrics, "test/")}})
        return out


def _error_line(trial):
    """The last line of a failed trial's error file (the exception), else its status."""
    path = getattr(trial, "error_file", None)
    if path and os.path.isfile(path):
        lines = [line.strip() for line in open(path) if line.strip()]
        if lines:
            return lines[-1]
    return "trial failed"


def _unprefix(metrics, prefix):
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


# -- outputs -------------------------------------------------------------------------------------------
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


# -- command line ----------------------------------------------------------------------------------------
def parser():
    p = argparse.ArgumentParser(
        prog="run_recbole_spectral.py tune",
        description="Search hyperparameters from a RecBole params file (hyperopt or Ray Tune).",
        epilog="Any other --key=value is a fixed config value for every trial. Writes best_params.yaml, "
        "results.txt, trials.csv and tuning.html to --output_dir.",
    )
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--dataset", "-d", required=True)
    p.add_argument("--params_file", required=True, help="e.g. properties/tuning/SSR.hyper")
    p.add_argument("--algo", default="exhaustive", choices=ALGOS)
    p.add_argument("--max_evals", type=int, default=None,
                   help="trials to run (default: the whole grid for exhaustive, 10 otherwise)")
    p.add_argument("--early_stop", type=int, default=10, help="hyperopt: stop after this many trials without improvement")
    p.add_argument("--config_files", default=None, help="space-separated YAML config files for every trial")
    p.add_argument("--output_dir", default=None, help="default results/tune-<model>-<dataset>")
    p.add_argument("--backend", default="hyperopt", choices=("hyperopt", "ray"))
    ray_group = p.add_argument_group("Ray Tune (--backend=ray)")
    ray_group.add_argument("--cpus_per_trial", type=float, default=1)
    ray_group.add_argument("--gpus_per_trial", type=float, default=0)
    ray_group.add_argument("--address", default=None, help="attach to a running Ray cluster ('auto' or ip:port)")
    ray_group.add_argument("--num_cpus", type=int, default=None, help="CPUs of a local Ray cluster (default: all)")
    ray_group.add_argument("--scheduler", default="asha", choices=("asha", "fifo"))
    ray_group.add_argument("--grace_period", type=int, default=1, help="ASHA: evaluations before a trial can be stopped")
    return p


def main(argv):
    from recbole_spectral.cli import split_overrides

    args, extra = parser().parse_known_args(argv)
    fixed = {k: parse_cli_value(v) for k, v in split_overrides(extra).items()}
    files = args.config_files.split() if args.config_files else None
    output_dir = args.output_dir or os.path.join("results", f"tune-{args.model}-{args.dataset}")
    if args.max_evals is not None and args.max_evals <= 0:
        raise ConfigError(f"--max_evals: expected a positive number, got {args.max_evals}")
    if args.backend == "ray":
        summary = tune_ray(args.model, args.dataset, args.params_file, args.algo, args.max_evals or 10, files, fixed,
                           output_dir, args.cpus_per_trial, args.gpus_per_trial, args.address, args.num_cpus,
                           args.scheduler, args.grace_period)
    else:
        max_evals = args.max_evals or (None if args.algo == "exhaustive" else 10)
        summary = tune_hyperopt(args.model, args.dataset, args.params_file, args.algo, max_evals, args.early_stop,
                                files, fixed, output_dir)
    print(f"best params: {summary['best_params']}")
    print(f"best valid {summary['valid_metric']}: {summary['best_valid_score']:.4f}")
    print("test result: " + "  ".join(f"{k}: {v:.4f}" for k, v in summary["test_result"].items()))
    print(f"{summary['finished']} of {summary['trials']} trials finished; results in {output_dir} "
          "(best_params.yaml, results.txt, trials.csv, tuning.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
