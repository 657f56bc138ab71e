"""hyperopt search through RecBole's own HyperTuning (algos exhaustive / random / bayes)."""
import os
import time

from recbole.trainer import HyperTuning
from recbole.utils.utils import dict2str

from recbole_spectral.errors import SpectralError, one_line
from recbole_spectral.tuning.space import check_algo, grid_size, hyperopt_space, parse_params_file, plain_params
from recbole_spectral.tuning.trials import trial_base, plot_trials, run_trial, write_outputs


class SpectralHyperTuning(HyperTuning):
    """RecBole's HyperTuning over the plugin's objective, with three narrow fixes:
    a failed trial is recorded (hyperopt goes on) instead of ending the search; a best score of 0.0 is
    kept (RecBole's ``if not self.best_score`` drops it); ``plot_hyper`` runs on numpy >= 1.24 (RecBole's
    uses ``np.str``) and writes the file without opening a browser.

    Two options for callers that need a reproducible search (a study): ``seed`` fixes hyperopt's random
    state (RecBole's draws a fresh one), so the same finished trials replay to the same next suggestion, and
    ``objective(params)`` replaces the run of a trial (a study answers finished trials from its store).
    ``startup_trials``: random trials before TPE models the results (hyperopt's default 20 would make any
    smaller budget a random search).
    """

    def __init__(self, base, params, algo, max_evals, early_stop, display_file=None, objective=None, seed=None,
                 startup_trials=None):
        self.base, self.param_specs = base, params
        self.trials_log = []
        self.run_objective, self.seed = objective, seed
        if algo == "bayes" and startup_trials is not None:
            from functools import partial

            from hyperopt import tpe

            algo = partial(tpe.suggest, n_startup_jobs=int(startup_trials))
        super().__init__(self._objective, space=hyperopt_space(params), algo=algo, max_evals=max_evals,
                         early_stop=early_stop, display_file=display_file)
        if algo == "exhaustive":  # RecBole searches the whole grid; max_evals caps it
            self.max_evals = min(int(max_evals), grid_size(params)) if max_evals else grid_size(params)

    def _objective(self, config_dict, config_file_list=None):
        if self.run_objective is not None:
            return self.run_objective(config_dict)
        return run_trial(self.base, config_dict)

    def run(self):
        if self.seed is None:
            return super().run()
        import numpy as np
        from hyperopt import fmin

        fmin(self.trial, self.space, algo=self.algo, max_evals=self.max_evals, early_stop_fn=self.early_stop_fn,
             rstate=np.random.RandomState(self.seed), show_progressbar=False)
        if self.display_file is not None:
            self.plot_hyper()

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


def tune_hyperopt(model, dataset, params_file, algo="exhaustive", max_evals=100, early_stop=10,
                  config_file_list=None, config_dict=None, output_dir="results/tune"):
    """hyperopt search through RecBole's HyperTuning; writes the output folder; returns the summary."""
    params = parse_params_file(params_file)
    check_algo(params, algo)
    os.makedirs(output_dir, exist_ok=True)
    base = trial_base(model, dataset, config_file_list, config_dict, output_dir)
    tuner = SpectralHyperTuning(base, params, algo, max_evals, early_stop, display_file=os.path.join(output_dir, "tuning.html"))
    try:
        tuner.run()
    except Exception as err:
        if not any(t["status"] == "ok" for t in tuner.trials_log):
            first = next((t["error"] for t in tuner.trials_log if t.get("error")), one_line(err))
            raise SpectralError(f"every trial failed; first error: {first}") from err
        raise
    return write_outputs(output_dir, base, "hyperopt", algo, tuner.trials_log)
