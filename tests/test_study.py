"""Studies: a plan file run end to end (tune with equal budgets -> seeds at the chosen settings -> report),
resumed after a kill, locked against a second process, and refused in one line when malformed."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from recbole_spectral.cli import main as cli_main
from recbole_spectral.errors import ConfigError
from recbole_spectral import study as study_module
from recbole_spectral.study import Lock, load_plan, run_study
from tests.helpers import ROOT

# 2 learned rows x 2 trials, 1 training-free row, 2 seeds, 1 variant, on the shipped multi-behavior dataset
TINY = {
    "name": "tiny",
    "datasets": ["ml-100k-mb"],
    "seeds": [2020, 2021],
    "protocol": {"epochs": 2, "stopping_step": 10, "embedding_size": 16, "train_batch_size": 4096,
                 "show_progress": False, "use_gpu": False, "state": "WARNING"},
    "tuning": {"algo": "bayes", "trials": 2},
    "rows": [
        {"name": "HistoryPop", "model": "HistoryPop"},
        {"name": "BPR", "model": "BPR", "space": {"learning_rate": "loguniform -6,-3"},
         "published": {"ml-100k-mb": {"hit@10": 0.5, "source": "a test", "why": "not a real figure"}},
         "variants": [{"name": "8 dimensions", "settings": {"embedding_size": 8}}]},
        {"name": "LightGCN", "model": "LightGCN", "settings": {"n_layers": 1},
         "space": {"learning_rate": "choice [0.01, 0.002]"}},
    ],
}
TIMING = ("total_time_s", "epoch_time_s", "model_file")


def read_csv(path):
    with open(path, newline="") as fp:
        return list(csv.DictReader(fp))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny plan run once, uninterrupted: (study folder, the report's entries)."""
    root = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("RECBOLE_SPECTRAL_DATA", str(root / "data"))
        (root / "plan.yaml").write_text(yaml.safe_dump(TINY))
        entries = run_study(str(root / "plan.yaml"), str(root / "out"))
    return root, entries


def test_a_tiny_plan_runs_end_to_end_and_the_report_matches_its_trials(finished):
    root, entries = finished
    out = root / "out"
    assert {p.name for p in out.iterdir()} >= {"report.md", "runs.csv", "trials.csv", "chart.png", "results.jsonl"}

    # every learned row had the same budget; the training-free row none
    trials = read_csv(out / "trials.csv")
    assert [(t["row"], t["trial"]) for t in trials] == [("BPR", "1"), ("BPR", "2"), ("LightGCN", "1"), ("LightGCN", "2")]
    assert all(t["status"] == "ok" for t in trials)
    by_row = {e["row"]: e for e in entries if not e["variant"]}
    assert [(name, e["trials"]) for name, e in by_row.items()] == [("HistoryPop", 0), ("BPR", 2), ("LightGCN", 2)]

    # the chosen settings are the trial with the best validation score, and the seed runs use them
    for name in ("BPR", "LightGCN"):
        rows = [t for t in trials if t["row"] == name]
        best = max(rows, key=lambda t: float(t["valid_score"]))
        assert [t["chosen"] for t in rows if t["chosen"] == "True"] and best["chosen"] == "True"
        assert by_row[name]["chosen"] == {"learning_rate": pytest.approx(float(best["learning_rate"]))}
        # the seed run at the tuning seed is the chosen trial itself (same settings key: not run twice)
        seed_run = next(r for r in by_row[name]["runs"] if r["seed"] == 2020)
        assert seed_run["settings_key"] == best["settings_key"]

    runs = read_csv(out / "runs.csv")
    assert [(r["row"], r["variant"], r["seed"]) for r in runs] == [
        ("HistoryPop", "", "2020"), ("BPR", "", "2020"), ("BPR", "", "2021"),
        ("BPR", "8 dimensions", "2020"), ("BPR", "8 dimensions", "2021"),
        ("LightGCN", "", "2020"), ("LightGCN", "", "2021")]
    assert all(r["status"] == "ok" for r in runs)
    # the variant inherits the chosen settings: its runs differ from the base's only by embedding_size
    variant = [r for r in runs if r["variant"]]
    assert {json.loads(r["chosen_settings"])["learning_rate"] for r in variant} == {by_row["BPR"]["chosen"]["learning_rate"]}
    assert {r["n_params"] for r in variant} == {str((944 + 1683) * 8)}
    assert {r["n_params"] for r in runs if r["row"] == "BPR" and not r["variant"]} == {str((944 + 1683) * 16)}

    # the report's table: one line per row with trials used / planned and mean ± std of the seed runs
    report = (out / "report.md").read_text()
    bpr_line = next(line for line in report.splitlines() if line.startswith("| BPR |"))
    hits = [float(r["test_hit@10"]) for r in runs if r["row"] == "BPR" and not r["variant"]]
    assert bpr_line.split(" | ")[1:4] == ["2/2", f"learning_rate={by_row['BPR']['chosen']['learning_rate']:.4g}", "2/2"]
    assert f"{sum(hits) / 2:.4f} ± " in bpr_line and "hit@10 0.5" in bpr_line
    assert "| HistoryPop | 0/0 | — | 1/1 |" in report
    assert "| BPR | 8 dimensions | 2/2 |" in report and "- BPR: a test — not a real figure" in report


def test_a_killed_study_resumes_to_the_same_report(finished, tmp_path):
    root, _ = finished
    out = tmp_path / "out"
    env = {**os.environ, "RECBOLE_SPECTRAL_DATA": str(root / "data")}
    command = [sys.executable, str(ROOT / "run_recbole_spectral.py"), "study", str(root / "plan.yaml"),
               "--out_dir", str(out)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = out / "results.jsonl"
    deadline = time.time() + 300
    # kill it in the middle: after two runs have finished and while a third one is training
    while time.time() < deadline and proc.poll() is None:
        if store.is_file() and len(store.read_text().splitlines()) >= 2 and list((out / "saved").glob("*.state.pth")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the study ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_lines = len(store.read_text().splitlines())
    assert killed_lines < 8

    # without --resume a folder with results is refused, in one line
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip().splitlines() == [f"error: study folder {out} holds results already; pass --resume "
                                                 "to continue it, or another --out_dir"]

    resumed = subprocess.run(command + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(store.read_text().splitlines()) == 8  # the runs that finished before the kill were not run again

    def table(folder):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in read_csv(folder / "runs.csv")]

    assert table(out) == table(root / "out")
    assert [{k: v for k, v in t.items()} for t in read_csv(out / "trials.csv")] == read_csv(root / "out" / "trials.csv")


def test_seed_runs_in_two_local_processes_give_the_same_table(finished, tmp_path, monkeypatch):
    """workers 2 on a folder holding the tuning trials only: the seed runs go to a pool of two spawned processes
    and the table is the one of the study run in one process."""
    import concurrent.futures

    root, _ = finished
    trial_keys = {t["settings_key"] for t in read_csv(root / "out" / "trials.csv")}
    out = tmp_path / "out"
    out.mkdir()
    lines = (root / "out" / "results.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["settings_key"] in trial_keys]
    (out / "results.jsonl").write_text("".join(line + "\n" for line in kept))
    pools, pool_class = [], concurrent.futures.ProcessPoolExecutor

    def recorded_pool(workers, **kwargs):
        pools.append((workers, kwargs["mp_context"].get_start_method()))
        return pool_class(workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", recorded_pool)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECBOLE_SPECTRAL_DATA", str(root / "data"))
    run_study(str(root / "plan.yaml"), str(out), resume=True, workers=2)
    assert pools == [(2, "spawn")]
    assert len(lines) - len(kept) == 5  # HistoryPop, BPR 2021, the variant's two seeds, LightGCN 2021
    assert len((out / "results.jsonl").read_text().splitlines()) == len(lines)

    def table(folder):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in read_csv(folder / "runs.csv")]

    assert table(out) == table(root / "out")


def test_random_trials_in_two_local_processes_are_the_sequential_search(workdir, monkeypatch):
    """A random search's draws do not read the scores: with workers 2 they train in the pool first, and the
    search replays them to the same trials and the same choice as the one-process search."""
    import concurrent.futures

    plan = {**TINY, "seeds": [2020], "tuning": {"algo": "random", "trials": 2},
            "rows": [{"name": "BPR", "model": "BPR", "space": {"learning_rate": "choice [0.01, 0.002, 0.0005]"}}]}
    pools, pool_class = [], concurrent.futures.ProcessPoolExecutor

    def recorded_pool(workers, **kwargs):
        pools.append(workers)
        return pool_class(workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", recorded_pool)
    one = run_study(plan, str(workdir / "one"))
    in_this_process = []
    monkeypatch.setattr(study_module, "run_one", lambda *args, **kwargs: in_this_process.append(args))
    two = run_study(plan, str(workdir / "two"), workers=2)
    assert pools == [2]  # the two trials; the seed run at the tuning seed is the chosen trial
    assert in_this_process == []  # the replay found every drawn trial in the store
    assert two[0]["chosen"] == one[0]["chosen"]
    assert read_csv(workdir / "two" / "trials.csv") == read_csv(workdir / "one" / "trials.csv")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers' end with the study is Linux's PR_SET_PDEATHSIG")
def test_a_killed_study_takes_its_workers_with_it(finished, tmp_path):
    psutil = pytest.importorskip("psutil")
    root, _ = finished
    env = {**os.environ, "RECBOLE_SPECTRAL_DATA": str(root / "data")}
    command = [sys.executable, str(ROOT / "run_recbole_spectral.py"), "study", str(root / "plan.yaml"),
               "--out_dir", str(tmp_path / "out"), "--workers", "2"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 300, []
    # kill it while both workers train (a run's training state exists)
    while time.time() < deadline and proc.poll() is None and not (len(workers) == 2 and list(
            (tmp_path / "out" / "saved").glob("*.state.pth"))):
        workers = [c for c in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(c.cmdline())]
        time.sleep(0.05)
    assert len(workers) == 2, "the pool's two workers never started"
    assert proc.poll() is None, "the study ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == []


@pytest.mark.parametrize("workers", [0, "2", True])
def test_workers_other_than_a_positive_integer_are_refused(workers):
    with pytest.raises(ConfigError, match=r"tuning.workers: expected an integer >= 1"):
        load_plan({**TINY, "tuning": {**TINY["tuning"], "workers": workers}})


def test_a_second_process_on_the_same_folder_is_refused_in_one_line(finished, capsys):
    root, _ = finished
    with Lock(root / "out"):
        code = cli_main(["study", str(root / "plan.yaml"), "--out_dir", str(root / "out"), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == f"error: study folder {root / 'out'} is in use by process {os.getpid()}; wait for it or use another --out_dir"


def test_the_report_alone_is_rewritten_from_the_store_without_training(finished, capsys):
    root, _ = finished
    before = (root / "out" / "report.md").read_text()
    (root / "out" / "report.md").unlink()
    assert cli_main(["study", str(root / "plan.yaml"), "--out_dir", str(root / "out"), "--steps", "report"]) == 0
    assert "started" not in capsys.readouterr().out  # nothing trained
    assert (root / "out" / "report.md").read_text() == before


def test_a_report_of_a_study_not_yet_run_shows_no_trial_done(finished, tmp_path, capsys):
    root, _ = finished
    out = tmp_path / "fresh"
    assert cli_main(["study", str(root / "plan.yaml"), "--out_dir", str(out), "--steps", "report"]) == 0
    assert "started" not in capsys.readouterr().out  # nothing trained
    assert read_csv(out / "trials.csv") == []  # trials not run are not listed
    report = (out / "report.md").read_text()
    assert "| BPR | 0/2 | — |" in report and "| LightGCN | 0/2 | — |" in report


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "plan: unknown key 'colour'"),
    ({"seeds": []}, "plan: 'seeds' is missing or empty"),
    ({"tuning": {"trials": -1}}, "plan: tuning.trials: expected an integer >= 0, got -1"),
    ({"tuning": {"algo": "grid"}}, "plan: tuning.algo: expected exhaustive, random or bayes, got 'grid'"),
    ({"rows": [{"model": "NoSuchModel"}]}, "plan: row 'NoSuchModel': "),
    ({"rows": [{"model": "BPR", "lr": 0.1}]}, "plan: rows[0]: unknown key 'lr'"),
    ({"rows": [{"model": "BPR"}], "tuning": {"trials": 3}},
     "plan: row 'BPR': 3 tuning trials need a search space ('space'), or set 'trials: 0'"),
    ({"rows": [{"model": "BPR", "space": {"learning_rate": "normal 0,1"}}]},
     "plan: row 'BPR': space, line 1: unknown type 'normal'"),
    ({"rows": [{"model": "BPR", "config_files": ["nowhere.yaml"]}]},
     "plan: row 'BPR': config_files: config file 'nowhere.yaml' not found"),
    ({"rows": [{"model": "BPR"}, {"model": "BPR"}]}, "plan: row 'BPR': the name is used twice"),
    ({"rows": [{"model": "BPR", "variants": [{"settings": {}}]}]}, "plan: row 'BPR': variants[0]: 'name' is missing"),
])
def test_a_malformed_plan_is_refused_with_the_key_named(change, message):
    plan = {**TINY, "tuning": {"trials": 0}, **change}
    with pytest.raises(ConfigError) as err:
        load_plan(plan)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_mistyped_setting_is_refused_before_anything_trains(workdir):
    plan = {**TINY, "rows": [{"name": "BPR", "model": "BPR", "space": {"learning_rate": "choice [0.01]"},
                              "variants": [{"name": "small", "settings": {"embeding_size": 8}}]}]}
    with pytest.raises(ConfigError) as err:
        run_study(plan, str(workdir / "out"))
    assert str(err.value).startswith("plan: row 'BPR', variant 'small' on ml-100k-mb: config key 'embeding_size' ")
    assert "did you mean 'embedding_size'" in str(err.value)
    assert not (workdir / "out" / "results.jsonl").exists()


def test_a_training_free_row_runs_once_and_is_never_tuned():
    plan = load_plan({**TINY, "tuning": {"trials": 5}, "rows": [{"model": "HistoryPop", "seeds": [1, 2, 3]}]})
    assert plan["rows"][0]["trials"] == 0 and plan["rows"][0]["seeds"] == [1]


def test_shipped_plans_load():
    plans = sorted((ROOT / "studies").glob("*.yaml"))
    assert plans, "no plan under studies/"
    for path in plans:
        plan = load_plan(str(path))
        assert plan["name"] == path.stem and plan["rows"]


def test_trials_and_seed_runs_go_to_a_local_ray_instance(workdir):
    pytest.importorskip("ray")
    plan = {**TINY, "seeds": [2021], "tuning": {"algo": "random", "trials": 2, "backend": "ray", "num_cpus": 2,
                                                 "scheduler": "fifo"},
            "rows": [{"name": "BPR", "model": "BPR", "space": {"learning_rate": "choice [0.01, 0.002]"}}]}
    entries = run_study(plan, str(workdir / "out"))
    trials = read_csv(workdir / "out" / "trials.csv")
    assert len(trials) == 2 and all(t["status"] == "ok" for t in trials)
    best = max(trials, key=lambda t: float(t["valid_score"]))
    assert entries[0]["chosen"] == {"learning_rate": float(best["learning_rate"])} and entries[0]["trials"] == 2
    assert [(r["seed"], r["status"]) for r in entries[0]["runs"]] == [(2021, "ok")]
    assert (workdir / "out" / "tuning" / "ml-100k-mb--bpr" / "ray").is_dir()  # the trials ran as Ray Tune trials
