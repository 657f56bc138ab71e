"""Hyperparameter search over a RecBole params file, with hyperopt (RecBole's HyperTuning) or Ray Tune.

Params file (RecBole's format, one parameter a line, ``#`` comments)::

    learning_rate loguniform -8,-3      # exp(uniform(-8, -3)), as hyperopt's hp.loguniform
    embedding_size choice [32,64,128]
    reg_weight uniform 0.0,0.01
    n_layers quniform 1,4,1

Every trial is one run of the library's run path (``recbole_spectral.quick_start.objective_function``):
early stopping on the validation metric, then the best checkpoint is tested, for plugin and RecBole
models on any dataset kind.

Modules: ``space`` (params file -> hyperopt / Ray spaces), ``trials`` (one trial, the output folder),
``hyperopt_search``, ``ray_search``; the command line is here.

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
import os
import sys

from recbole_spectral.config import parse_cli_value, split_overrides
from recbole_spectral.errors import ConfigError
from recbole_spectral.tuning.hyperopt_search import SpectralHyperTuning, tune_hyperopt  # noqa: F401
from recbole_spectral.tuning.space import ALGOS, parse_params_file  # noqa: F401
from recbole_spectral.tuning.trials import run_trial, write_outputs  # noqa: F401


def tune_ray(*args, **kwargs):
    """Ray Tune search (``recbole_spectral.tuning.ray_search.tune_ray``); ray is imported only here."""
    from recbole_spectral.tuning.ray_search import tune_ray as run

    return run(*args, **kwargs)


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
