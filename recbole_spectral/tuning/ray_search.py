"""The same search through Ray Tune: CPU trials reporting every evaluation, ASHA pruning, clusters.
``ray`` is imported only here."""
import os
from pathlib import Path

from recbole_spectral.tuning.space import check_algo, hyperopt_space, parse_params_file, plain_params, ray_space
from recbole_spectral.tuning.trials import trial_base, run_trial, write_outputs


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
    base = trial_base(model, dataset, config_file_list, config_dict, output_dir)
    base["param_specs"] = params

    import ray
    from ray import air, tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    ray_init(address, num_cpus)
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


def ray_init(address=None, num_cpus=None):
    """Attach to the Ray cluster at ``address``, or start a local instance (``num_cpus``) whose workers import
    this same recbole_spectral (checkout or installed)."""
    import ray

    if address is None:
        package_parent = str(Path(__file__).resolve().parents[2])
        paths = [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        ray.init(num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)


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
