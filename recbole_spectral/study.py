"""Studies: an experiment as a plan file that the product runs — tune every learned model with the same budget
on validation, run every seed at the chosen settings, write one report.

A plan (YAML)::

    name: mb-taobao-15k
    datasets: [taobao-15k]
    seeds: [2020, 2021, 2022]
    protocol: {epochs: 1000, stopping_step: 10, valid_metric: Hit@10, metrics: [Hit, NDCG], topk: [10, 20]}
    tuning: {algo: bayes, trials: 8}          # the same for every learned row unless a row says otherwise
    rows:
      - {name: HistoryPop, model: HistoryPop} # training-free: one run, no tuning
      - name: LightGCN (all behaviors)
        model: LightGCN
        settings: {train_on_all_behaviors: True}
        space: {learning_rate: "loguniform -9,-4", n_layers: "choice [1,2,3]"}   # or a .hyper file
        published: {taobao-15k: {hit@10: 0.0411, why: "trained on all buys"}}
        variants:
          - {name: without views, settings: {drop_behaviors: [view]}}

Steps, each writing as it goes into the study folder and resuming from it: **tune** (per dataset and learned
row, ``trials`` runs on validation at the tuning seed through the product's hyperopt search — TPE by default —
or Ray Tune), **seeds** (every seed at the chosen settings; variants lay their overrides over them), **report**
(``report.md``, ``runs.csv``, ``trials.csv``, ``chart.png``). Every run goes through ``compare.run_one`` and is
stored in ``results.jsonl`` under compare's settings key, so a trial and a seed run with the same settings are
one run, a finished run is never repeated, and a run killed mid-training goes on from its training state.
A lock on the folder refuses a second process. ``workers`` (plan ``tuning.workers`` or ``--workers``) runs that many
runs at once in local processes: the seed runs, and the trials of ``random`` and ``exhaustive`` searches (their draws
do not read the scores; ``bayes`` trials stay sequential). With ``backend: ray`` (plan or command line) trials and
seed runs go to Ray: ``address`` attaches to a cluster, otherwise a local Ray instance starts.
"""
import argparse
import csv
import ctypes
import fcntl
import json
import math
import os
import signal
import statistics
import sys
from pathlib import Path

import yaml

from recbole_spectral import paths
from recbole_spectral.compare import RUN_COLUMNS, model_name, run_one, settings_key, smaller_is_better
from recbole_spectral.errors import ConfigError, SpectralError

PLAN_KEYS = {"name", "description", "datasets", "seeds", "split_seed", "protocol", "tuning", "rows", "notes"}
TUNING_KEYS = {"algo", "trials", "seed", "startup_trials", "backend", "address", "num_cpus", "cpus_per_trial",
               "scheduler", "grace_period", "workers"}
ROW_KEYS = {"name", "model", "settings", "config_files", "space", "trials", "per_dataset", "published", "variants",
            "note", "seeds"}
VARIANT_KEYS = {"name", "settings", "config_files", "note", "seeds"}
RESULTS_FILE = "results.jsonl"


# -- the plan --------------------------------------------------------------------------------------------
def _check_workers(value, where):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: expected an integer >= 1 (runs at once, in local processes), got {value!r}")


def _check_keys(value, allowed, where):
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (expected one of {', '.join(sorted(allowed))})")


def _mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys to values, got {type(value).__name__}")
    return dict(value)


def _config_files(value, where, plan_dir):
    """Config files of a row or variant: a path (relative to the plan's folder or the working directory) or
    the name of a shipped recipe (``properties/recipes/<name>``); absolute paths out."""
    files = [value] if isinstance(value, str) else list(value or [])
    out = []
    for name in files:
        for candidate in (plan_dir / name, Path(name), paths.recipe_file(name)):
            if candidate.is_file():
                out.append(str(candidate.resolve()))
                break
        else:
            raise ConfigError(f"{where}: config file '{name}' not found (next to the plan, in the working directory, "
                              f"or as a shipped recipe in {paths.recipe_file('')})")
    return out


def _space(value, where, plan_dir):
    """A row's search space: a params file (path or a shipped ``properties/tuning/<name>``) or an inline
    mapping ``{name: "kind values"}`` in the params-file syntax."""
    from recbole_spectral.tuning.space import parse_params_file, parse_params_lines

    if value is None:
        return None
    if isinstance(value, str):
        for candidate in (plan_dir / value, Path(value), paths.properties_dir() / "tuning" / value):
            if candidate.is_file():
                return parse_params_file(str(candidate))
        raise ConfigError(f"{where}: params file '{value}' not found")
    if isinstance(value, dict):
        return parse_params_lines([f"{k} {v}" for k, v in value.items()], where)
    raise ConfigError(f"{where}: expected a params file or a mapping 'name: \"kind values\"', got {type(value).__name__}")


def _seeds(value, where):
    seeds = value if isinstance(value, list) else [value]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"{where}: expected a list of integer seeds, got {value!r}")
    return seeds


def load_plan(source):
    """The plan as a checked dict (a path to a YAML file, or the dict itself); a bad plan is one ConfigError
    naming the key."""
    from recbole_spectral import registry

    plan_dir = Path.cwd()
    if not isinstance(source, dict):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"plan '{source}' does not exist")
        try:
            source = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"plan '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
        plan_dir = path.resolve().parent
    where = "plan"
    _check_keys(source, PLAN_KEYS, where)
    for key in ("datasets", "seeds", "rows"):
        if not source.get(key):
            raise ConfigError(f"{where}: '{key}' is missing or empty")
    datasets = source["datasets"] if isinstance(source["datasets"], list) else [source["datasets"]]
    seeds = _seeds(source["seeds"], f"{where}: seeds")
    tuning = dict(source.get("tuning") or {})
    _check_keys(tuning, TUNING_KEYS, f"{where}: tuning")
    tuning.setdefault("algo", "bayes")
    tuning.setdefault("trials", 0)
    tuning.setdefault("seed", seeds[0])
    tuning.setdefault("backend", "hyperopt")
    if tuning["algo"] not in ("exhaustive", "random", "bayes"):
        raise ConfigError(f"{where}: tuning.algo: expected exhaustive, random or bayes, got {tuning['algo']!r}")
    if tuning["backend"] not in ("hyperopt", "ray"):
        raise ConfigError(f"{where}: tuning.backend: expected hyperopt or ray, got {tuning['backend']!r}")
    if not isinstance(tuning["trials"], int) or tuning["trials"] < 0:
        raise ConfigError(f"{where}: tuning.trials: expected an integer >= 0, got {tuning['trials']!r}")
    _check_workers(tuning.setdefault("workers", 1), f"{where}: tuning.workers")
    rows, names = [], set()
    for i, raw in enumerate(source["rows"]):
        at = f"{where}: rows[{i}]"
        if not isinstance(raw, dict) or "model" not in raw:
            raise ConfigError(f"{at}: expected a mapping with at least 'model'")
        _check_keys(raw, ROW_KEYS, at)
        row = {"name": str(raw.get("name", raw["model"])), "model": raw["model"]}
        at = f"{where}: row '{row['name']}'"
        if row["name"] in names:
            raise ConfigError(f"{at}: the name is used twice (rows need distinct names)")
        names.add(row["name"])
        try:
            cls = registry.get_model(row["model"])
        except SpectralError as err:
            raise ConfigError(f"{at}: {err}") from None
        row["training_free"] = getattr(cls, "type", None) is not None and cls.type.name == "TRADITIONAL"
        row["settings"] = _mapping(raw.get("settings"), f"{at}: settings")
        row["config_files"] = _config_files(raw.get("config_files"), f"{at}: config_files", plan_dir)
        row["per_dataset"] = {d: _mapping(v, f"{at}: per_dataset.{d}") for d, v in _mapping(raw.get("per_dataset"), at).items()}
        row["space"] = _space(raw.get("space"), f"{at}: space", plan_dir)
        row["trials"] = 0 if row["training_free"] else int(raw.get("trials", tuning["trials"]))
        if row["trials"] and row["space"] is None:
            raise ConfigError(f"{at}: {row['trials']} tuning trials need a search space ('space'), or set 'trials: 0'")
        row["seeds"] = _seeds(raw["seeds"], f"{at}: seeds") if "seeds" in raw else seeds
        if row["training_free"]:
            row["seeds"] = row["seeds"][:1]  # no gradient steps, no randomness: one run says it all
        row["published"] = _mapping(raw.get("published"), f"{at}: published")
        row["note"] = str(raw.get("note", ""))
        row["variants"] = []
        for j, var in enumerate(raw.get("variants") or []):
            vat = f"{at}: variants[{j}]"
            _check_keys(var, VARIANT_KEYS, vat)
            if "name" not in var:
                raise ConfigError(f"{vat}: 'name' is missing")
            row["variants"].append({
                "name": str(var["name"]), "settings": _mapping(var.get("settings"), f"{vat}: settings"),
                "config_files": _config_files(var.get("config_files"), f"{vat}: config_files", plan_dir),
                "seeds": row["seeds"][:1] if row["training_free"] else (
                    _seeds(var["seeds"], f"{vat}: seeds") if "seeds" in var else row["seeds"]),
                "note": str(var.get("note", ""))})
        rows.append(row)
    return {"name": str(source.get("name", "study")), "description": str(source.get("description", "")),
            "datasets": datasets, "seeds": seeds, "split_seed": int(source.get("split_seed", seeds[0])),
            "protocol": _mapping(source.get("protocol"), f"{where}: protocol"), "tuning": tuning, "rows": rows,
            "notes": str(source.get("notes", ""))}


# -- the store: one line per finished run, under compare's settings key ------------------------------
class Store:
    """``results.jsonl`` of the study folder: every finished run (trial or seed run) once, by settings key."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / RESULTS_FILE
        self.rows = {}
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        if lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    if number == len(lines):
                        continue  # a line cut by a killed process: that run is simply run again
                    raise SpectralError(f"{self.path}, line {number}: not a JSON run record") from None
                self.rows[row["settings_key"]] = row

    def add(self, row):
        self.rows[row["settings_key"]] = row
        with open(self.path, "a") as fp:
            fp.write(json.dumps(row, default=str) + "\n")
            fp.flush()
            os.fsync(fp.fileno())


class Lock:
    """An exclusive lock on the study folder for the life of the process (released by the OS if it dies)."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / ".lock"

    def __enter__(self):
        self.fp = open(self.path, "a+")
        try:
            fcntl.flock(self.fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fp.seek(0)
            holder = self.fp.read().strip() or "another process"
            self.fp.close()
            raise SpectralError(f"study folder {self.path.parent} is in use by {holder}; wait for it or use another --out_dir") from None
        self.fp.seek(0)
        self.fp.truncate()
        self.fp.write(f"process {os.getpid()}")
        self.fp.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fp, fcntl.LOCK_UN)
        self.fp.close()


# -- running ---------------------------------------------------------------------------------------------
class Study:
    def __init__(self, plan, out_dir, backend=None, address=None, steps=("tune", "seeds", "report"), workers=None):
        self.plan, self.out_dir, self.steps = plan, Path(out_dir).resolve(), tuple(steps)
        self.tuning = dict(plan["tuning"])
        if backend:
            self.tuning["backend"] = backend
        if workers is not None:
            _check_workers(workers, "--workers")
            self.tuning["workers"] = workers
        if address:
            self.tuning["backend"], self.tuning["address"] = "ray", address
        self.store = Store(self.out_dir)
        self.trials = []  # [{dataset, row, trial, params, key, status, valid_score}]

    # what defines a run
    def base_settings(self, row, dataset):
        return {**self.plan["protocol"], **row["settings"], **row["per_dataset"].get(dataset, {}),
                "checkpoint_dir": str(self.out_dir / "saved")}

    def key(self, row, dataset, seed, settings, files):
        return settings_key(row["model"], dataset, seed, self.plan["split_seed"], files, settings)

    def run(self, row, dataset, seed, settings, files, label, step):
        """One run (trial or seed run): from the store when it finished before, else trained now if ``step`` is
        one this call runs (otherwise ``status: not run``)."""
        key = self.key(row, dataset, seed, settings, files)
        done = self.store.rows.get(key)
        if done is not None and (done["status"] == "ok" or step not in self.steps):
            return done
        if step not in self.steps:
            return {"status": "not run", "settings_key": key}
        result = run_one(row["model"], dataset, seed, self.plan["split_seed"], files, settings, label=label,
                         state_name=f"{model_name(row['model'])}-{key}")
        result.pop("_traceback", None)
        result["settings_key"] = key
        self.store.add(result)
        return result

    # step 1: tuning
    def tune(self, row, dataset):
        """The chosen settings of ``row`` on ``dataset``: the best validation score over its trials."""
        if not row["trials"]:
            return {}
        base = self.base_settings(row, dataset)
        if self.tuning["backend"] == "ray":
            return self._tune_ray(row, dataset, base)
        from hyperopt.exceptions import AllTrialsFailed

        from recbole_spectral.tuning.hyperopt_search import SpectralHyperTuning

        seed, found = self.tuning["seed"], []

        def objective(params):
            n = len(found) + 1
            result = self.run(row, dataset, seed, {**base, **params}, row["config_files"],
                              f"[{dataset} {row['name']} trial {n}/{row['trials']}]", "tune")
            found.append((params, result))
            if result["status"] != "ok":  # failed, or not run in a report-only call: hyperopt records a failed trial
                raise SpectralError(result.get("error") or result["status"])
            return {"model": row["model"], "best_valid_score": result["best_valid_score"],
                    "valid_score_bigger": not smaller_is_better(self.plan["protocol"].get("valid_metric", "")),
                    "best_valid_result": _prefixed(result, "valid_"), "test_result": _prefixed(result, "test_")}

        def search(evaluate):
            startup = self.tuning.get("startup_trials", max(1, row["trials"] // 2))
            tuner = SpectralHyperTuning({"model": row["model"]}, row["space"], self.tuning["algo"], row["trials"],
                                        early_stop=row["trials"] + 1, objective=evaluate, seed=seed,
                                        startup_trials=startup)
            try:
                tuner.run()
            except AllTrialsFailed:  # every trial failed or is not run yet: the report says so per trial
                pass

        if self.tuning["workers"] > 1 and self.tuning["algo"] != "bayes" and "tune" in self.steps:
            # random and exhaustive draws do not read the scores: draw them all, train them in the pool, then
            # the search below replays them from the store
            drawn = []
            search(lambda params: drawn.append(params) or {"model": row["model"], "best_valid_score": 0.0,
                                                           "valid_score_bigger": True, "best_valid_result": {},
                                                           "test_result": {}})
            self._run_local(self._todo([(row, dataset, seed, {**base, **params}, row["config_files"],
                                         f"[{dataset} {row['name']} trial {n}/{row['trials']}]")
                                        for n, params in enumerate(drawn, 1)]))
        search(objective)
        return self._record_trials(row, dataset, found)

    def _tune_ray(self, row, dataset, base):
        from recbole_spectral.tuning.ray_search import tune_ray

        folder = self.out_dir / "tuning" / f"{_slug(dataset)}--{_slug(row['name'])}"
        done = folder / "trials.json"
        if done.is_file():
            trials = json.loads(done.read_text())
        elif "tune" not in self.steps:
            return {}
        else:
            folder.mkdir(parents=True, exist_ok=True)
            space = folder / "space.hyper"
            space.write_text("".join(f"{name} {kind} {_args_text(kind, args)}\n" for name, kind, args in row["space"]))
            tune_ray(row["model"], dataset, str(space), self.tuning["algo"], row["trials"], row["config_files"],
                     {**base, "seed": self.tuning["seed"]}, str(folder), self.tuning.get("cpus_per_trial", 1), 0,
                     self.tuning.get("address"), self.tuning.get("num_cpus"), self.tuning.get("scheduler", "asha"),
                     self.tuning.get("grace_period", 1))
            trials = list(csv.DictReader(open(folder / "trials.csv")))
            done.write_text(json.dumps(trials))
        names = [name for name, _, _ in row["space"]]
        found = []
        for t in trials:
            params = {n: yaml.safe_load(t[n]) for n in names}
            score = t.get("best_valid_score")
            found.append((params, {"status": t["status"], "best_valid_score": float(score) if score else None,
                                   "settings_key": ""}))
        return self._record_trials(row, dataset, found)

    def _record_trials(self, row, dataset, found):
        bigger = not smaller_is_better(self.plan["protocol"].get("valid_metric", ""))
        ok = [(p, r) for p, r in found if r["status"] == "ok" and r.get("best_valid_score") is not None]
        best = None
        for params, result in ok:  # the first of equal scores wins
            score = float(result["best_valid_score"])
            if best is None or (score > best[1] if bigger else score < best[1]):
                best = (params, score)
        for n, (params, result) in enumerate([f for f in found if f[1]["status"] != "not run"], 1):
            self.trials.append({"dataset": dataset, "row": row["name"], "trial": n, "params": params,
                                "status": result["status"], "valid_score": result.get("best_valid_score"),
                                "settings_key": result.get("settings_key", ""),
                                "chosen": best is not None and params == best[0]})
        if best is None and "tune" not in self.steps:
            return {}  # a report of a study whose tuning has not finished: no chosen settings yet
        if best is None:
            raise SpectralError(f"{dataset} {row['name']}: no tuning trial finished")
        return best[0]

    # step 2: seed runs
    def seed_runs(self, row, dataset, chosen):
        """[(variant name or '', seed, settings, files)] for the row's base and its variants."""
        base = {**self.base_settings(row, dataset), **chosen}
        planned = [("", s, base, row["config_files"]) for s in row["seeds"]]
        for var in row["variants"]:
            files = row["config_files"] + var["config_files"]
            planned += [(var["name"], s, {**base, **var["settings"]}, files) for s in var["seeds"]]
        return planned

    def check(self):
        """Every row's and variant's settings (with a value of each searched parameter) through the run path's
        configuration checks, before anything trains: a typo in a plan is one line naming the row, not a study
        of failed runs."""
        from recbole_spectral.config import SpectralConfig
        from recbole_spectral.tuning.space import plain_params

        for dataset in self.plan["datasets"]:
            for row in self.plan["rows"]:
                sample = plain_params(row["space"] or [], {
                    name: args[0][0] if kind == "choice" else math.exp(args[0]) if kind == "loguniform" else args[0]
                    for name, kind, args in row["space"] or []})
                first = {}  # one run of the row and of each variant: the seed changes no setting
                for variant, _, settings, files in self.seed_runs(row, dataset, sample):
                    first.setdefault(variant, (settings, files))
                for variant, (settings, files) in first.items():
                    try:
                        SpectralConfig(row["model"], dataset, files, dict(settings))
                    except SpectralError as err:
                        where = f"row '{row['name']}'" + (f", variant '{variant}'" if variant else "")
                        raise ConfigError(f"plan: {where} on {dataset}: {err}") from None

    def execute(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if set(self.steps) & {"tune", "seeds"}:
            self.check()
        with Lock(self.out_dir):
            chosen = {}  # the tuning of a later step replays from the store
            for dataset in self.plan["datasets"]:
                for row in self.plan["rows"]:
                    chosen[dataset, row["name"]] = self.tune(row, dataset)
            if "seeds" in self.steps:
                self._run_seeds(chosen)
            entries = self.entries(chosen)
            write_report(self.plan, self.tuning, entries, self.trials, self.out_dir)
            return entries

    def _run_seeds(self, chosen):
        pending = []
        for dataset in self.plan["datasets"]:
            for row in self.plan["rows"]:
                for variant, seed, settings, files in self.seed_runs(row, dataset, chosen[dataset, row["name"]]):
                    label = f"[{dataset} {row['name']}{' / ' + variant if variant else ''}]"
                    pending.append((row, dataset, seed, settings, files, label))
        if self.tuning["backend"] == "ray":
            return self._run_seeds_ray(self._todo(pending))
        if self.tuning["workers"] > 1:
            return self._run_local(self._todo(pending))
        for n, (row, dataset, seed, settings, files, label) in enumerate(pending, 1):
            self.run(row, dataset, seed, settings, files, f"{label} run {n}/{len(pending)}", "seeds")

    def _todo(self, pending):
        """The pending runs not finished in the store, each with its settings key."""
        todo = []
        for row, dataset, seed, settings, files, label in pending:
            key = self.key(row, dataset, seed, settings, files)
            if self.store.rows.get(key, {}).get("status") != "ok":
                todo.append((row, dataset, seed, settings, files, label, key))
        return todo

    def _remote_args(self, todo_entry):
        row, dataset, seed, settings, files, label, key = todo_entry
        return row["model"], dataset, seed, self.plan["split_seed"], files, settings, label, f"{model_name(row['model'])}-{key}"

    def _run_local(self, todo):
        """The runs in ``workers`` local processes (spawned, torch threads shared out among them); each result
        enters the store as it finishes."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if not todo:
            return
        workers = min(self.tuning["workers"], len(todo))
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(threads, os.getpid())) as pool:
            futures = {pool.submit(_remote_run, *self._remote_args(entry)): entry[-1] for entry in todo}
            for future in as_completed(futures):
                result = future.result()
                result["settings_key"] = futures[future]
                self.store.add(result)

    def _run_seeds_ray(self, todo):
        import ray

        if not todo:
            return
        from recbole_spectral.tuning.ray_search import ray_init

        ray_init(self.tuning.get("address"), self.tuning.get("num_cpus"))
        try:
            task = ray.remote(num_cpus=self.tuning.get("cpus_per_trial", 1))(_remote_run)
            futures = {task.remote(*self._remote_args(entry)): entry[-1] for entry in todo}
            waiting = list(futures)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                result = ray.get(ready[0])
                result["settings_key"] = futures[ready[0]]
                self.store.add(result)
        finally:
            ray.shutdown()

    # step 3: what the report shows
    def entries(self, chosen):
        """Per dataset and row (and variant): the chosen settings, trials used, and the finished seed runs."""
        out = []
        for dataset in self.plan["datasets"]:
            for row in self.plan["rows"]:
                picked = chosen[dataset, row["name"]]
                used = sum(1 for t in self.trials if t["dataset"] == dataset and t["row"] == row["name"])
                groups = {}
                for variant, seed, settings, files in self.seed_runs(row, dataset, picked):
                    run = self.store.rows.get(self.key(row, dataset, seed, settings, files))
                    groups.setdefault(variant, []).append({**(run or {"status": "not run"}), "seed": seed})
                for variant, runs in groups.items():
                    out.append({"dataset": dataset, "row": row["name"], "model": row["model"], "variant": variant,
                                "trials": used, "trials_planned": row["trials"], "chosen": picked, "runs": runs,
                                "published": row["published"].get(dataset) if not variant else None,
                                "note": row["note"] if not variant else next(
                                    v["note"] for v in row["variants"] if v["name"] == variant)})
        return out


def _worker_init(threads, study_pid):
    """A pool worker: its share of torch's threads, and on Linux its end with the study's process (a killed study
    leaves no worker training on; its run goes on from its training state at --resume)."""
    import torch

    torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != study_pid:  # the study died while this worker was starting
            os._exit(1)


def _remote_run(model, dataset, seed, split_seed, files, settings, label, state_name):
    row = run_one(model, dataset, seed, split_seed, files, settings, label=label, state_name=state_name)
    row.pop("_traceback", None)
    return row


def _args_text(kind, args):
    return str(list(args[0])).replace(" ", "") if kind == "choice" else ",".join(repr(a) for a in args)


def _prefixed(row, prefix):
    return {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix) and k != "valid_score"}


def _slug(text):
    return "".join(c if c.isalnum() else "-" for c in str(text).lower()).strip("-")


def run_study(plan, out_dir, resume=False, steps=("tune", "seeds", "report"), backend=None, address=None, workers=None):
    """Run a study plan (a path or a dict) into ``out_dir``; returns the report's entries. A folder that holds
    results is continued only with ``resume`` (finished trials and runs are reused, a killed run goes on)."""
    plan = load_plan(plan)
    out = Path(out_dir)
    if not resume and (out / RESULTS_FILE).is_file():
        raise SpectralError(f"study folder {out} holds results already; pass --resume to continue it, or another --out_dir")
    return Study(plan, out, backend, address, steps, workers).execute()


# -- the report ------------------------------------------------------------------------------------------
def _stats(values):
    values = [float(v) for v in values if v not in (None, "") and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), len(values)


def _cell(stats, digits=4):
    if stats is None:
        return "—"
    mean, std, n = stats
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _ok(entry):
    return [r for r in entry["runs"] if r.get("status") == "ok"]


def _metrics(entries, plan):
    """The report's metric columns: the validation metric (what chose the settings), every test metric, and the
    validation metric's cold-start test value where the runs have one."""
    keys = []
    for e in entries:
        for r in _ok(e):
            keys += [k for k in r if k.startswith("test_") and k not in keys and not k.startswith("test_cold_")]
    chosen_by = str(plan["protocol"].get("valid_metric", "")).lower()
    seen = {k for e in entries for r in _ok(e) for k in r}
    return ([f"valid_{chosen_by}"] if f"valid_{chosen_by}" in seen else []) + keys + (
        [f"test_cold_{chosen_by}"] if f"test_cold_{chosen_by}" in seen else [])


def _label(key):
    if key.startswith("valid_"):
        return f"valid {key[len('valid_'):]}"
    return f"cold {key[len('test_cold_'):]}" if key.startswith("test_cold_") else key[len("test_"):]


def _settings_text(settings):
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items()) or "—"


def write_report(plan, tuning, entries, trials, out_dir):
    out_dir = Path(out_dir)
    metrics = _metrics(entries, plan)
    lines = [f"# Study: {plan['name']}", ""]
    if plan["description"]:
        lines += [plan["description"], ""]
    protocol = ", ".join(f"{k}={v}" for k, v in plan["protocol"].items())
    lines += [f"Seeds {', '.join(map(str, plan['seeds']))} (training-free rows: one run); split seed "
              f"{plan['split_seed']}. Protocol shared by every run: {protocol or 'the datasets’ defaults'}.",
              f"Tuning: {tuning['backend']} {tuning['algo']}, {tuning['trials']} trials per learned row on validation "
              f"at seed {tuning['seed']} unless the row says otherwise (column 'trials'); the chosen settings are "
              "the best validation score; every seed then runs at them. Mean ± std over seeds; the report only measures.", ""]
    for dataset in plan["datasets"]:
        base = [e for e in entries if e["dataset"] == dataset and not e["variant"]]
        lines += [f"## {dataset}", ""]
        head = ["row", "trials", "chosen settings", "seeds ok"] + [_label(m) for m in metrics] + [
            "epochs run (best)", "s / run", "published"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for e in base:
            ok = _ok(e)
            pub = e["published"] or {}
            pub_text = ", ".join(f"{k} {v}" for k, v in pub.items() if k not in ("source", "why")) or "—"
            cells = [e["row"], f"{e['trials']}/{e['trials_planned']}", _settings_text(e["chosen"]),
                     f"{len(ok)}/{len(e['runs'])}"]
            cells += [_cell(_stats([r.get(m) for r in ok])) for m in metrics]
            cells += [", ".join(f"{r.get('epochs_run')} ({r.get('best_epoch')})" for r in ok) or "—",
                      _cell(_stats([r.get("total_time_s") for r in ok]), 0), pub_text]
            lines.append("| " + " | ".join(cells) + " |")
        why = [(e["row"], e["published"]) for e in base if e["published"] and (e["published"].get("why") or e["published"].get("source"))]
        if why:
            lines += ["", "Published figures:", ""]
            lines += [f"- {row}: {p.get('source', '')}{' — ' if p.get('source') and p.get('why') else ''}{p.get('why', '')}" for row, p in why]
        notes = [(e["row"], e["note"]) for e in base if e["note"]]
        if notes:
            lines += ["", "Rows:", ""] + [f"- {row}: {note}" for row, note in notes]
        variants = [e for e in entries if e["dataset"] == dataset and e["variant"]]
        if variants:
            lines += ["", f"### Variants on {dataset} (each relative to its row's chosen settings)", ""]
            head = ["row", "variant", "seeds ok"] + [f"{_label(m)} (Δ)" for m in metrics] + ["epochs run (best)"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for e in variants:
                ok = _ok(e)
                parent = next(b for b in base if b["row"] == e["row"])
                cells = [e["row"], e["variant"], f"{len(ok)}/{len(e['runs'])}"]
                for m in metrics:
                    stats, ref = _stats([r.get(m) for r in ok]), _stats([r.get(m) for r in _ok(parent)])
                    delta = f" ({stats[0] - ref[0]:+.4f})" if stats and ref else ""
                    cells.append(_cell(stats) + delta)
                cells.append(", ".join(f"{r.get('epochs_run')} ({r.get('best_epoch')})" for r in ok) or "—")
                lines.append("| " + " | ".join(cells) + " |")
            notes = [(e["row"], e["variant"], e["note"]) for e in variants if e["note"]]
            if notes:
                lines += [""] + [f"- {row} / {variant}: {note}" for row, variant, note in notes]
        lines.append("")
    if plan["notes"]:
        lines += ["## Notes", "", plan["notes"].strip(), ""]
    lines += ["Files: `runs.csv` (every seed run), `trials.csv` (every tuning trial), `chart.png`, `results.jsonl` "
              "(the store a resumed study reads).", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    _write_runs_csv(entries, metrics, out_dir / "runs.csv")
    _write_trials_csv(trials, out_dir / "trials.csv")
    _plot(plan, entries, metrics, out_dir / "chart.png")


def _write_runs_csv(entries, metrics, path):
    rows = []
    for e in entries:
        for r in e["runs"]:
            rows.append({"dataset": e["dataset"], "row": e["row"], "variant": e["variant"], "model": e["model"],
                         "chosen_settings": json.dumps(e["chosen"], sort_keys=True),
                         **{k: r.get(k, "") for k in RUN_COLUMNS if k not in ("run", "model")},
                         **{k: v for k, v in r.items() if k.startswith(("valid_", "test_"))}})
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as fp:
        writer = csv.DictWriter(fp, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _write_trials_csv(trials, path):
    names = list(dict.fromkeys(k for t in trials for k in t["params"]))
    with open(path, "w", newline="") as fp:
        writer = csv.writer(fp)
        writer.writerow(["dataset", "row", "trial", *names, "status", "valid_score", "chosen", "settings_key"])
        for t in trials:
            writer.writerow([t["dataset"], t["row"], t["trial"], *[t["params"].get(n, "") for n in names], t["status"],
                             t["valid_score"] if t["valid_score"] is not None else "", t["chosen"], t["settings_key"]])


def _plot(plan, entries, metrics, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wanted = f"test_{str(plan['protocol'].get('valid_metric', '')).lower()}"
    metric = wanted if wanted in metrics else next((m for m in metrics if m.startswith("test_")), None)
    fig, axes = plt.subplots(1, len(plan["datasets"]), figsize=(6 * len(plan["datasets"]), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], plan["datasets"]):
        shown = [e for e in entries if e["dataset"] == dataset and _stats([r.get(metric) for r in _ok(e)])]
        stats = [_stats([r.get(metric) for r in _ok(e)]) for e in shown]
        ax.barh(range(len(shown)), [s[0] for s in stats], xerr=[s[1] for s in stats], capsize=2)
        ax.set_yticks(range(len(shown)))
        ax.set_yticklabels([e["row"] + (f" / {e['variant']}" if e["variant"] else "") for e in shown], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric[len('test_'):] if metric else ''} (test, mean ± std over seeds)")
        ax.set_title(dataset)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- command line ----------------------------------------------------------------------------------------
def parser():
    p = argparse.ArgumentParser(
        prog="run_recbole_spectral.py study",
        description="Run a study plan: tune every learned row with the same budget on validation, run every seed "
        "at the chosen settings, write report.md, runs.csv, trials.csv and chart.png.")
    p.add_argument("plan", help="the plan file, e.g. studies/mb-taobao-15k.yaml")
    p.add_argument("--out_dir", default=None, help="study folder (default results/study-<plan name>)")
    p.add_argument("--resume", action="store_true", help="continue a study folder: reuse its finished trials and runs")
    p.add_argument("--steps", default="tune,seeds,report",
                   help="comma-separated steps (tune, seeds, report); 'report' alone rewrites the report from the store")
    p.add_argument("--backend", choices=("hyperopt", "ray"), default=None, help="overrides the plan's tuning.backend")
    p.add_argument("--address", default=None, help="send trials and seed runs to this Ray cluster ('auto' or ip:port)")
    p.add_argument("--workers", type=int, default=None,
                   help="runs at once in local processes: seed runs, and random or exhaustive trials (overrides the plan's "
                   "tuning.workers; default 1)")
    return p


def main(argv):
    args = parser().parse_args(argv)
    plan = load_plan(args.plan)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = [s for s in steps if s not in ("tune", "seeds", "report")]
    if unknown:
        raise ConfigError(f"--steps: unknown step '{unknown[0]}' (expected tune, seeds, report)")
    out_dir = args.out_dir or os.path.join("results", f"study-{plan['name']}")
    resume = args.resume or steps == ("report",)
    entries = run_study(args.plan, out_dir, resume, steps, args.backend, args.address, args.workers)
    missing = sum(1 for e in entries for r in e["runs"] if r.get("status") != "ok")
    print(f"report: {os.path.join(out_dir, 'report.md')} ({len(entries)} rows; {missing} runs not finished)")
    return 1 if missing and "seeds" in steps else 0
