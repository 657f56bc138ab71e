"""SpectraMB at the level of the field: every number, through ``recbole_spectral.compare``.

Each (part, dataset, variant) is one ``compare_models(["SpectraMB"], ...)`` call with ``resume=True`` in a
folder per dataset and (effective settings, seeds): ``<out-dir>/<dataset>/runs/<key>-seeds-.../`` (runs.csv,
summary.md, chart.png, rewritten after every run), so an interrupted benchmark resumes where it stopped, parts
can run one after another, and variants with equal settings (e.g. "3 layers", "noise 0 %" and the ablations'
base) reuse each other's runs.
Each variant's rows and settings also go to ``<out-dir>/<dataset>/<part>/<variant>.json``; the Markdown
report (``--report``) is rebuilt from those.

Parts (``--parts``):
  grid        default selection on VALIDATION HR@10, 1 seed (``--grid-seeds``), every dataset: the base (the
              official model part + the auxiliary-edge term, beyond the paper, 3 layers), the official
              recipe (properties/recipes/SpectraMB-official[-tmall].yaml, model part, CPU schedule: the
              paper's model), the auxiliary-edge term at its earlier init 0.1, the defaults before this grid,
              options on top of the base (cascading views, MuLe views, view softmax, context filters) and
              the YAML default (the base at 1 layer).
  ablations   on the 3-layer base: w/o the auxiliary-edge term, no spectral filter, mean fusion, no residual
              global, view vs feature softmax, 1 (the YAML default) / 2 / 3 layers; then the same ablations
              and context filters on the YAML default (1 layer); first dataset, ``--seeds``.
  robustness  random pairs added to every auxiliary behavior (noise 0/10/30/50 %) and each auxiliary
              behavior dropped, on the 3-layer base and then on the YAML default (1 layer); first dataset,
              ``--seeds``.
Every variant without a config file runs at 3 layers (``BASE_DEPTH``) unless it sets ``n_layers``: these
parts were run before validation picked 1 layer for the YAML.
The main table (SpectraMB's default and the paper's model next to every multi-behavior baseline, 3 seeds,
same split, same metrics, full ranking with only training target items masked, early stopping on validation
HR@10) is benchmarks/mb_field.py's.

Training schedule: the model YAML's (batch, lr, epochs, eval_step, stopping_step: the CPU recipe, see
properties/model/SpectraMB.yaml), for every variant including the official recipe's model part; flags
override it (``--epochs`` etc.; smoke runs). ``--official-schedule`` adds the official GPU schedule
(batch 1024, lr 1e-3) as one more grid variant.

Commands (repository root; converted data in $RECBOLE_SPECTRAL_DATA, e.g. by
``run_recbole_spectral.py prepare crgcn --src <shared>/multibehavior/taobao-15k --name taobao-15k``):

    nice -n 10 python benchmarks/spectramb_field.py --parts grid --datasets taobao-15k tmall-41k --epochs 1000
    nice -n 10 python benchmarks/spectramb_field.py --parts ablations robustness --datasets taobao-15k --epochs 1000

Smoke (tiny epochs, shipped dataset):
    python benchmarks/spectramb_field.py --datasets ml-100k-mb --parts grid ablations robustness \
        --seeds 2020 --grid-seeds 2020 --epochs 1 --out-dir /tmp/smf --report /tmp/smf/report.md
"""
import argparse
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recbole_spectral import paths  # noqa: E402

PARTS = ("grid", "ablations", "robustness")
METRICS = ["hit@10", "ndcg@10", "hit@20", "ndcg@20"]
NOISE_RATIOS = (0.0, 0.1, 0.3, 0.5)

# published full-ranking figures on the same data (MuLe paper, CIKM'24; /work/shared/datasets/README.md):
# HR@10, NDCG@10; the training-free CascadingRank from its README (taobao only)
PUBLISHED = {
    "taobao-15k": {"LightGCN (buy only)": (0.0411, 0.0240), "CRGCN": (0.0855, 0.0439), "MB-CGCN": (0.1233, 0.0677),
                   "PKEF": (0.1385, 0.0785), "MuLe": (0.1918, 0.1103), "CascadingRank (training-free)": (0.3324, 0.1626)},
    "tmall-41k": {"LightGCN (buy only)": (0.0393, 0.0209), "CRGCN": (0.0840, 0.0442), "MB-CGCN": (0.0984, 0.0558),
                  "PKEF": (0.1277, 0.0721), "MuLe (with click, missing here)": (0.2112, 0.1177)},
}


def official_recipe(dataset):
    return str(paths.recipe_file("SpectraMB-official-tmall.yaml" if "tmall" in dataset else "SpectraMB-official.yaml"))


# the defaults before the grid chose the official model part + the auxiliary-edge term (kept as a grid row)
PREVIOUS_DEFAULTS = {"init": "xavier", "n_layers": 1, "filter_init": "identity", "fused_weight": 1.0,
                     "global_weight": 1.0, "residual_weight": 1.0, "reg_weight": 1e-4, "final_reg_weight": 0.0,
                     "weight_decay": 0.0, "aux_edge_term": False}


# The grid, the ablations and the robustness runs were made at the official depth, 3 layers, before validation
# at 3 seeds picked 1 layer on both datasets (the YAML default since): they stay based there, so every variant
# without a config file runs at 3 layers unless it sets n_layers itself ("1 layer" is the YAML default).
BASE_DEPTH = {"n_layers": 3}
# (label on the 3-layer base, name at the YAML default's 1 layer, option): one part of the model removed or changed
ABLATIONS = (("w/o spectral filter", "w/o spectral filter", {"spectral_filter": False}),
             ("mean fusion", "mean fusion", {"fusion": "mean"}),
             ("w/o residual global", "w/o residual global", {"residual_global": False}),
             ("view softmax (paper) instead of feature softmax", "view softmax", {"attention_softmax": "view"}))


def variants(part, dataset, first):
    """(label, config overrides, config files) of one part on one dataset; every variant without a config
    file runs at BASE_DEPTH and on the dataset's official output preset (taobao 1.25 = the YAML default,
    dropped by effective_overrides; tmall 1.0, as in mb_field.py's SpectraMB rows)."""
    official = [official_recipe(dataset)]
    with open(official[0]) as fp:
        preset = {"residual_weight": yaml.safe_load(fp)["residual_weight"]}
    for label, overrides, files in part_variants(part, dataset, first, official):
        yield label, (overrides if files else {**preset, **BASE_DEPTH, **overrides}), files


def part_variants(part, dataset, first, official):
    if part == "grid":
        yield "base: official model part + aux-edge term, init 1.0, 3 layers (beyond the paper)", {}, []
        yield "official recipe (model part; the paper's model)", {}, official
        yield "official recipe + aux-edge term, init 0.1 (beyond the paper)", {"aux_edge_term": True, "aux_edge_init": 0.1}, official
        yield "previous defaults (1 layer, xavier, identity filters, unit output mix, ID-row L2)", dict(PREVIOUS_DEFAULTS), []
        yield "base + cascade", {"view_mode": "cascade"}, []
        yield "base + cascade from global", {"view_mode": "cascade_global"}, []
        yield "base + also/not-bought views", {"extra_views": ["also_bought", "not_bought"]}, []
        yield "base + fused views at full weight (c_f = 1, F carrying the factor d)", {"fused_weight": 1.0}, []
        yield "base + view softmax", {"attention_softmax": "view"}, []
        yield "base + context filters", {"filter_mode": "context"}, []
        yield "YAML default: the base at 1 layer (chosen at 3 seeds, ablations)", {"n_layers": 1}, []
    elif part == "ablations" and dataset == first:
        yield "SpectraMB at 3 layers (the base of these ablations)", {}, []
        yield "w/o aux-edge term (the paper's model: official recipe, model part)", {}, official
        for label, _, option in ABLATIONS:
            yield label, option, []
        for layers in (1, 2, 3):
            yield f"{layers} layer{'s' if layers > 1 else ' (the YAML default)'}", {"n_layers": layers}, []
        # the same ablations at the YAML default's depth (1 layer), after the grid option that validated best at
        # 3 layers (context filters)
        for _, name, option in (("", "context filters", {"filter_mode": "context"}),) + ABLATIONS:
            yield f"1 layer + {name} (vs the YAML default)", {"n_layers": 1, **option}, []
    elif part == "robustness" and dataset == first:
        # first on the 3-layer base (where they were run first), then on the YAML default (1 layer)
        for depth, prefix in (({}, ""), ({"n_layers": 1}, "1 layer, ")):
            for ratio in NOISE_RATIOS:
                yield (f"{prefix}noise {int(ratio * 100)} % on every auxiliary behavior",
                       {**depth, "noise_add_ratio": ratio, "noise_behaviors": None}, [])
            for behavior in auxiliary_behaviors(dataset):
                yield f"{prefix}without {behavior}", {**depth, "drop_behaviors": [behavior]}, []


def auxiliary_behaviors(dataset):
    from recbole_spectral.config import SpectralConfig

    config = SpectralConfig("SpectraMB", dataset, config_dict={"use_gpu": False})
    if not config["behaviors"]:  # the converted dataset's YAML names them; without it there is nothing to drop
        raise SystemExit(f"spectramb_field.py: dataset '{dataset}' has no 'behaviors' (is it converted under "
                         f"$RECBOLE_SPECTRAL_DATA = {os.environ.get('RECBOLE_SPECTRAL_DATA')!r}?)")
    return [b for b in config["behaviors"] if b != config["target_behavior"]]


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


SCHEDULE = ("epochs", "eval_step", "stopping_step", "train_batch_size", "learning_rate")


def yaml_schedule():
    """The CPU training schedule of properties/model/SpectraMB.yaml; put in every run's config_dict so that
    it also replaces the official recipe file's GPU schedule (config_dict beats config files)."""
    import yaml

    with open(paths.model_properties_file("SpectraMB")) as fp:
        defaults = yaml.safe_load(fp)
    return {k: defaults[k] for k in SCHEDULE}


def common_settings(args, workdir):
    settings = {
        **yaml_schedule(),
        "use_gpu": False, "show_progress": False, "state": "INFO", "reproducibility": True,
        "metrics": ["Hit", "NDCG"], "topk": [10, 20], "valid_metric": "Hit@10",
        "checkpoint_dir": os.path.join(workdir, "saved"), "log_root": os.path.join(workdir, "log"),
    }
    for key in SCHEDULE:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    return settings


def effective_overrides(dataset, overrides, files):
    """``overrides`` without the keys that equal the run's default anyway (model and dataset YAML), so that
    e.g. "1 layer" or "noise 0 %" reuse the default's runs instead of repeating them."""
    if files:
        return dict(overrides)
    from recbole_spectral.config import SpectralConfig

    config = SpectralConfig("SpectraMB", dataset, config_dict={"use_gpu": False})
    return {k: v for k, v in overrides.items() if k not in config.final_config_dict or config[k] != v}


def run_dir(args, dataset, overrides, files, seeds):
    """One compare folder per (settings, seeds): variants with the same effective settings share their runs
    (and compare's resume); a different seed list never rewrites another list's runs.csv."""
    import hashlib

    text = json.dumps([[os.path.relpath(f, ROOT) for f in files], overrides], sort_keys=True, default=str)
    key = "default" if not files and not overrides else "v" + hashlib.sha1(text.encode()).hexdigest()[:10]
    return os.path.join(args.out_dir, dataset, "runs", f"{key}-seeds-{'-'.join(map(str, seeds))}")


def finished_in_other_seed_lists(out_dir):
    """The finished runs, one per seed, that the other seed lists of ``out_dir``'s settings hold for a seed in
    its list (the first folder in name order wins a seed)."""
    from recbole_spectral.compare import read_rows

    prefix, seed_list = os.path.basename(out_dir).split("-seeds-")
    seeds = {int(s) for s in seed_list.split("-")}
    rows = {}
    for other in sorted(Path(out_dir).parent.glob(f"{prefix}-seeds-*")):
        if str(other) != str(out_dir):
            for r in read_rows(str(other)):
                if r.get("status") == "ok" and r.get("seed") in seeds:
                    rows.setdefault(r["seed"], r)
    return [rows[s] for s in sorted(rows)]


def start_from_other_seed_lists(out_dir):
    """A new seed list of a variant starts from the finished runs of its other seed lists with a seed in the
    new list (e.g. the grid's seed 2020 inside the 3-seed ablation): compare's resume then skips each run
    whose settings key matches."""
    from recbole_spectral.compare import write_results

    if os.path.isfile(os.path.join(out_dir, "runs.csv")):
        return
    rows = finished_in_other_seed_lists(out_dir)
    if rows:
        write_results(rows, out_dir)


def planned(args, part, dataset):
    """(label, overrides, config files, compare folder) of every variant of ``part`` on ``dataset`` that the
    arguments select; each variant's meta file (label, settings, folder, seeds, command) is written first, so
    the report shows a variant from its first finished seed on."""
    seeds = args.grid_seeds if part == "grid" else args.seeds
    todo = list(variants(part, dataset, args.datasets[0]))
    if part == "grid" and args.official_schedule:
        todo.append(("official recipe, official batch 1024 and lr 1e-3", {"train_batch_size": 1024,
                     "learning_rate": 1e-3}, [official_recipe(dataset)]))
    for order, (label, overrides, files) in enumerate(todo):
        if args.only and not any(o.lower() in label.lower() for o in args.only):
            continue
        overrides = effective_overrides(dataset, overrides, files)
        out_dir = run_dir(args, dataset, overrides, files, seeds)
        meta = {"part": part, "dataset": dataset, "label": label, "order": order, "overrides": overrides,
                "config_files": [os.path.relpath(f, ROOT) for f in files], "run_dir": os.path.relpath(out_dir, args.out_dir),
                "seeds": seeds, "command": args.command.replace(" --report-only", "")}
        meta_file = os.path.join(args.out_dir, dataset, part, slug(label) + ".json")
        os.makedirs(os.path.dirname(meta_file), exist_ok=True)
        with open(meta_file, "w") as fp:
            json.dump(meta, fp, indent=1, default=str)
        yield label, overrides, files, out_dir, seeds


def run_part(args, part, dataset, workdir):
    from recbole_spectral.compare import compare_models

    for label, overrides, files, out_dir, seeds in planned(args, part, dataset):
        print(f"== {part} / {dataset} / {label} -> {out_dir}", flush=True)
        settings = {**common_settings(args, workdir), **overrides}
        start_from_other_seed_lists(out_dir)
        compare_models(["SpectraMB"], dataset, seeds, config_dict=settings, out_dir=out_dir,
                       config_file_list=files or None, resume=True)


# -- report ----------------------------------------------------------------------------------------
def collect(out_dir):
    """Every variant's meta file, with the finished rows of its compare folder (the rows stored in the meta
    by earlier versions of this script where the folder has no runs.csv; where neither has a finished run,
    those of the same settings' other seed lists)."""
    from recbole_spectral.compare import read_rows

    found = []
    for path in sorted(Path(out_dir).glob("*/*/*.json")):
        with open(path) as fp:
            meta = json.load(fp)
        run_dir = os.path.join(out_dir, meta["run_dir"])
        if os.path.isfile(os.path.join(run_dir, "runs.csv")):
            meta["rows"] = read_rows(run_dir)
        meta.setdefault("rows", [])
        if not any(r.get("status") == "ok" for r in meta["rows"]):
            # the same settings may have finished under another seed list (the grid's seed 2020 inside a
            # 3-seed ablation that started first)
            meta["rows"] = finished_in_other_seed_lists(run_dir) or meta["rows"]
        found.append(meta)
    return found


def fmt(values, digits=4):
    values = [float(v) for v in values if v not in (None, "")]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(entries, sort_by_valid=False):
    head = ("| variant | seeds ok | valid HR@10 | HR@10 | NDCG@10 | HR@20 | NDCG@20 | best epoch / epochs run | "
            "epoch time (s) |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    if sort_by_valid:
        def key(e):
            ok = [float(r["valid_hit@10"]) for r in e["rows"] if r.get("status") == "ok" and r.get("valid_hit@10") not in (None, "")]
            return -statistics.fmean(ok) if ok else 0.0
        entries = sorted(entries, key=key)
    for e in entries:
        ok = [r for r in e["rows"] if r.get("status") == "ok"]
        epochs = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in ok) or "—"
        planned_seeds = len(e.get("seeds") or e["rows"])
        lines.append(
            f"| {e['label']} | {len(ok)}/{planned_seeds} | {fmt([r.get('valid_hit@10') for r in ok])} | "
            + " | ".join(fmt([r.get(f'test_{m}') for r in ok]) for m in METRICS)
            + f" | {epochs} | {fmt([r.get('epoch_time_s') for r in ok], 1)} |"
        )
    return lines


def published_lines(dataset):
    if dataset not in PUBLISHED:
        return []
    lines = ["", f"Published on {dataset} (HR@10 / NDCG@10, full ranking; MuLe paper, CascadingRank README):", "",
             "| model | HR@10 | NDCG@10 |", "|---|---|---|"]
    lines += [f"| {m} | {h:.4f} | {n:.4f} |" for m, (h, n) in PUBLISHED[dataset].items()]
    return lines


def write_report(out_dir, report):
    entries = collect(out_dir)
    titles = {"grid": "Default selection (validation HR@10, sorted best first)", "ablations": "Ablations",
              "robustness": "Robustness"}
    commands = sorted({e["command"] for e in entries})
    lines = [
        "# SpectraMB at the level of the field", "",
        "Made by (repository root, converted datasets in $RECBOLE_SPECTRAL_DATA; each command resumes finished runs):", "",
        "```", *commands, "```", "",
        "Protocol: RecBole full ranking over all items on the converted CRGCN-layout datasets (one training buy per "
        "user held out for validation), only the user's training target items masked, early stopping on validation "
        "HR@10; metrics on the test target rows. Mean ± sample std over the seeds that finished. Training schedule: "
        "properties/model/SpectraMB.yaml's CPU recipe unless the command says otherwise; the official recipe's "
        "model part comes from properties/recipes/. Multi-behavior baselines on the same split and harness: "
        "benchmarks/mb_field.py (its results file).", "",
    ]
    for part in PARTS:
        for dataset in dict.fromkeys(e["dataset"] for e in entries if e["part"] == part):
            chosen = sorted((e for e in entries if e["part"] == part and e["dataset"] == dataset),
                            key=lambda e: e.get("order", 0))
            lines += [f"## {titles[part]}: {dataset}", ""]
            lines += table(chosen, sort_by_valid=(part == "grid"))
            if part == "grid":
                lines += published_lines(dataset)
            lines.append("")
    text = "\n".join(lines) + "\n"
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_text(text)
    print(text)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--datasets", nargs="+", default=["taobao-15k", "tmall-41k"])
    p.add_argument("--seeds", nargs="+", type=int, default=[2020, 2021, 2022])
    p.add_argument("--grid-seeds", nargs="+", type=int, default=[2020])
    p.add_argument("--only", nargs="+", default=None, help="run only variants whose label contains one of these")
    p.add_argument("--official-schedule", action="store_true", help="grid: also the official GPU schedule")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--eval-step", dest="eval_step", type=int, default=None)
    p.add_argument("--stopping-step", dest="stopping_step", type=int, default=None)
    p.add_argument("--train-batch-size", dest="train_batch_size", type=int, default=None)
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    p.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results" / "spectramb_field"))
    p.add_argument("--report", default=str(ROOT / "benchmarks" / "results" / "spectramb_field.md"))
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "spectramb_field"),
                   help="checkpoints and RecBole logs (outside the repository)")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    args.command = "python benchmarks/spectramb_field.py " + " ".join(shlex.quote(a) for a in argv)
    args.out_dir, args.report = os.path.abspath(args.out_dir), os.path.abspath(args.report)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.report_only:
        import torch

        torch.set_num_threads(args.threads)
        os.makedirs(args.work, exist_ok=True)
        cwd = os.getcwd()
        os.chdir(args.work)  # RecBole writes log_tensorboard/ etc. to the cwd
        try:
            for part in args.parts:
                for dataset in args.datasets:
                    run_part(args, part, dataset, args.work)
        finally:
            os.chdir(cwd)
    else:  # the selected variants' meta files, so that the report lists them with what has finished
        for part in args.parts:
            for dataset in args.datasets:
                list(planned(args, part, dataset))
    write_report(args.out_dir, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
