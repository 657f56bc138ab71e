"""Run the released SSR code (arXiv 2512.01372; Jinfeng-Xu/Multimodal-Recommendation-Library) on an MMRec split.

Their code is never copied into this repository: unpack it outside (e.g. /tmp), install the imports our venv
lacks into a folder of their own, then

    python tools/official_ssr.py write --src ../shared/datasets/multimodal/tiktok --name tiktok \\
        --out /tmp/official-ssr/data --text-from audio --atomic /tmp/mmdata/tiktok
    OMP_NUM_THREADS=1 nohup nice -n 10 python tools/official_ssr.py run --code /tmp/ssr-official \\
        --data /tmp/official-ssr/data --name tiktok --work /tmp/official-ssr/work \\
        --deps /tmp/ssr-official/pydeps > tiktok.log 2>&1 &
    python tools/official_ssr.py parse tiktok.log [--every 5] [--report docs/studies/official-ssr/report.md]

``write`` lays out the folder their ``RecDataset`` and ``GeneralRecommender`` read, ``<out>/<name>/``, by
symbolic links into the MMRec folder (nothing is copied): ``<name>.inter`` (userID itemID ... x_label, read as
is), ``image_feat.npy`` and ``text_feat.npy``. Their model discovers every ``*_feat.npy`` of the folder and
uses exactly two, image and text (``visual_feat``, ``textual_feat``); ``--image-from`` / ``--text-from`` name
the source modality behind each (TikTok has image and audio: ``--text-from audio``). With ``--atomic`` (our
``prepare mmrec`` folder of the same data) it checks that our train/valid/test rows are the same (user, item)
pairs as the x_label split, and counts the evaluation rows their loader drops (users with no training row).

``run`` starts their ``utils.quick_start.quick_start(model='SSR', ...)`` in a fresh interpreter (their
``main.py`` does not run: it reads ``arg.gpu_id``, an undefined name) with the released single configuration
(``RELEASED``: every key of their grid fixed to the one value of arkina3931/Frequency's ``SSR.yaml``, and the
training keys of that repository's ``overall.yaml``), on CPU, in ``--work`` (their ./log, ./saved, ./cache).
``parse`` reads its log into a per-epoch trajectory (loss, train seconds, valid and test Recall/NDCG) and
picks the best validation epoch by their rule (``utils.early_stopping``: the first epoch whose validation
Recall@20, rounded to 4 decimals by their evaluator, is strictly above every earlier one).
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from recbole_spectral.errors import DataError

try:  # the 'parse' subcommand (report block, summary) is shared with the SpectraMB tool
    from tools.official_spectramb import finish_cli
except ImportError:  # run as a script: tools/ itself is on sys.path
    from official_spectramb import finish_cli

# The released single configuration: arkina3931/Frequency src/configs/model/SSR.yaml (one value per grid key;
# their quick_start iterates the product of every `hyper_parameters` list, so each is a one-element list) ...
RELEASED_GRID = {
    "embedding_size": 64, "knn_k": 10, "n_mm_layers": 1, "num_layers": 2, "aggr_mode": "add", "out_mode": "aggr",
    "reg_weight": 0.1, "ma_rate": 0.1, "band_num": 3, "k_poly": 5, "tau": 0.2, "learning_rate": 0.0001,
    "cl_weight": 0.0001, "mix_alpha": 0.1, "ma_weight": 0.001, "seed": 999,
}
# ... its scalar keys, and the training keys of Frequency's src/configs/overall.yaml (the library's own
# overall.yaml differs in epochs 1000 and seed 2026; metrics/topk are the library's, ours too)
RELEASED = {
    "feat_embed_dim": 64, "mm_image_weight": 0.1,
    "epochs": 300, "stopping_step": 20, "train_batch_size": 2048, "learner": "adam", "weight_decay": 0.0,
    "learning_rate_scheduler": [1.0, 50], "eval_step": 1, "training_neg_sample_num": 1, "use_neg_sampling": True,
    "use_full_sampling": False, "valid_metric": "Recall@20", "eval_batch_size": 4096, "metrics": ["Recall", "NDCG"],
    "topk": [10, 20], "filter_out_cod_start_users": True, "inter_splitting_label": "x_label",
    "is_multimodal_model": True, "end2end": False, "req_training": True,
}
# their src/configs/dataset/tiktok.yaml, for any MMRec-format dataset
MMREC_FIELDS = {"USER_ID_FIELD": "userID", "ITEM_ID_FIELD": "itemID", "TIME_FIELD": "timestamp",
                "field_separator": "\t"}
INTER_COLUMNS = ("userID", "itemID", "x_label")


# -- write: the MMRec folder -> their data folder (links) ---------------------------------------------------------

def read_inter(path):
    """The MMRec interactions (userID, itemID, x_label) of ``path``, checked."""
    if not path.is_file():
        raise DataError(f"{path} is missing: expected the MMRec interactions (userID itemID ... x_label, tab-separated)")
    frame = pd.read_csv(path, sep="\t")
    missing = [c for c in INTER_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: expected columns {list(INTER_COLUMNS)}, found {list(frame.columns)}")
    labels = sorted(set(frame["x_label"].tolist()) - {0, 1, 2})
    if labels:
        raise DataError(f"{path}: x_label {labels[0]!r}; expected 0/1/2 (train/valid/test)")
    return frame[list(INTER_COLUMNS)]


def feature_rows(path):
    if not path.is_file():
        raise DataError(f"{path} is missing: expected an item feature matrix (row i = itemID i)")
    array = np.load(path, mmap_mode="r")
    if array.ndim != 2:
        raise DataError(f"{path}: expected a 2-d item x feature matrix, got shape {array.shape}")
    return array.shape[0]


def layout(src, name, image_from="image", text_from="text"):
    """{file name in <out>/<name>/: the file it links to}, and the interactions, for the MMRec folder ``src``."""
    src = Path(src).resolve()
    inter = read_inter(src / f"{name}.inter")
    links = {f"{name}.inter": src / f"{name}.inter"}
    n_items = int(inter["itemID"].max()) + 1  # their item count (RecDataset.item_num)
    for role, modality in (("image", image_from), ("text", text_from)):
        target = src / f"{modality}_feat.npy"
        if feature_rows(target) < n_items:
            raise DataError(f"{target}: {feature_rows(target)} rows; expected at least {n_items} (max itemID + 1)")
        links[f"{role}_feat.npy"] = target
    return links, inter


def split_pairs(frame, user, item):
    return set(zip(frame[user].astype(str), frame[item].astype(str)))


def compare_split(inter, atomic):
    """Lines comparing the MMRec split with our converted folder ``atomic`` (<name>.train/valid/test.inter)."""
    atomic = Path(atomic)
    lines, train_users = [], set(inter.loc[inter["x_label"] == 0, "userID"])
    for label, split in enumerate(("train", "valid", "test")):
        path = atomic / f"{atomic.name}.{split}.inter"
        if not path.is_file():
            raise DataError(f"{path} is missing: expected our converted split (run_recbole_spectral.py prepare mmrec)")
        ours = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        ours.columns = [c.split(":")[0] for c in ours.columns]
        theirs = inter[inter["x_label"] == label]
        if split_pairs(ours, "user_id", "item_id") != split_pairs(theirs, "userID", "itemID"):
            raise DataError(f"{path}: its (user, item) rows differ from the x_label == {label} rows of the MMRec file")
        line = f"{split}: {len(theirs)} rows, the same (user, item) pairs in both"
        if label:
            cold = theirs[~theirs["userID"].isin(train_users)]
            line += (f"; {theirs['userID'].nunique()} users, of whom {cold['userID'].nunique()} have no training row "
                     f"({len(cold)} rows): their loader drops them (filter_out_cod_start_users), RecBole ranks them")
        lines.append(line)
    return lines


def write(args):
    links, inter = layout(args.src, args.name, args.image_from, args.text_from)
    checks = compare_split(inter, args.atomic) if args.atomic else []
    folder = Path(args.out) / args.name
    folder.mkdir(parents=True, exist_ok=True)
    stray = sorted(p.name for p in folder.glob("*_feat.*") if p.name not in links)
    if stray:
        raise DataError(f"{folder / stray[0]}: their model loads every *_feat file of the folder; remove it")
    for file, target in links.items():
        link = folder / file
        if link.is_symlink() or link.exists():
            if link.resolve() != target:
                raise DataError(f"{link} already exists and is not a link to {target}")
            continue
        link.symlink_to(target)
    print(f"wrote {folder}: " + ", ".join(f"{f} -> {t}" for f, t in links.items()))
    print(f"{inter['userID'].max() + 1} users, {inter['itemID'].max() + 1} items (max id + 1, as their loader counts)")
    for line in checks:
        print(line)


# -- run: their quick_start on CPU ---------------------------------------------------------------------------------

def config_dict(data, name, overrides=()):
    """The config_dict handed to their quick_start: the released configuration on CPU for ``data``/``name``."""
    config = {key: [value] for key, value in RELEASED_GRID.items()}
    config.update(RELEASED, **MMREC_FIELDS, inter_file_name=f"{name}.inter", use_gpu=False, gpu_id=0,
                  data_path=str(Path(data).resolve()) + os.sep, enable_visualization=True)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise DataError(f"--set {item!r}: expected key=value (a YAML value, e.g. epochs=2)")
        value = yaml.safe_load(text)
        config[key] = [value] if key in RELEASED_GRID else value
    return config


RUNNER = ("import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
          "from utils.quick_start import quick_start; "
          "quick_start(model='SSR', dataset=sys.argv[2], config_dict=json.loads(sys.argv[3]), save_model=True)")


def command(args):
    """(cwd, argv, env) that run their quick_start with the released configuration on ``args.data``."""
    src = Path(args.code).resolve() / "src"
    grid_file = src / "configs" / "model" / "SSR.yaml"
    if not (src / "utils" / "quick_start.py").is_file() or not grid_file.is_file():
        raise DataError(f"{src / 'utils' / 'quick_start.py'} or {grid_file} is missing: expected the unpacked "
                        "Multimodal-Recommendation-Library (its src/ folder)")
    grid = (yaml.safe_load(grid_file.read_text()) or {}).get("hyper_parameters") or []
    loose = [key for key in grid if key not in RELEASED_GRID]
    if loose:
        raise DataError(f"{grid_file}: grid key '{loose[0]}' has no released value here; their quick_start "
                        "would search over it")
    folder = Path(args.data).resolve() / args.name
    for file in (f"{args.name}.inter", "image_feat.npy", "text_feat.npy"):
        if not (folder / file).is_file():
            raise DataError(f"{folder / file} is missing: write the layout with the 'write' subcommand")
    config = config_dict(args.data, args.name, args.set)
    paths = [str(src)] + ([str(Path(args.deps).resolve())] if args.deps else [])
    argv = [args.python, "-c", RUNNER, json.dumps(paths), args.name, json.dumps(config)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return Path(args.work).resolve(), argv, env


def run(args):
    work, argv, env = command(args)
    work.mkdir(parents=True, exist_ok=True)
    print(f"cd {work} && {' '.join(argv[:2])} \"{argv[2]}\" '{argv[3]}' {argv[4]} '{argv[5]}'", flush=True)
    os.chdir(work)
    os.execvpe(argv[0], argv, env)  # this process becomes their run: its PID is the run's PID


# -- parse: their log -> trajectory ----------------------------------------------------------------------------------

EPOCH = re.compile(r"║ Epoch\s+(\d+)/\s*(\d+) │ Train Loss: (\S+) │ Time: ([\d.]+)s")
VALID = re.compile(r"║ Evaluation │ Valid: ([\d.]+) │ Time: ([\d.]+)s")
RESULT = re.compile(r"║ (Metrics|Test): (.*)")
PAIR = re.compile(r"(\w+@\d+): ([-\d.]+|nan)")
BEST = re.compile(r"🏆 \w+ - Best \S+ = ([\d.]+) \(Epoch (\d+)\)")
FINISHED = re.compile(r"Training finished at epoch (\d+)")
NAN = re.compile(r"Loss is nan at epoch: (\d+)")
GRID = re.compile(r"=========(\d+)/(\d+): Parameters:")


def parse_log(text):
    """{"epochs": [{epoch, loss, train_s, valid_s, valid: {...}, test: {...}}], "cap": epochs asked, "best_lines":
    epochs their trainer announced as a new best, "finished": their early stop's epoch or None, "nan": epoch or
    None, "grid": number of configurations their quick_start iterates}."""
    epochs, current = {}, None
    out = {"cap": None, "best_lines": [], "finished": None, "nan": None, "grid": None}
    for line in text.splitlines():
        if m := EPOCH.search(line):
            current = epochs.setdefault(int(m[1]), {"epoch": int(m[1])})
            current.update(loss=float(m[3]), train_s=float(m[4]))
            out["cap"] = int(m[2])
        elif (m := VALID.search(line)) and current is not None:
            current["valid_s"] = float(m[2])
        elif (m := RESULT.search(line)) and current is not None:
            current["valid" if m[1] == "Metrics" else "test"] = {k: float(v) for k, v in PAIR.findall(m[2])}
        elif m := BEST.search(line):
            out["best_lines"].append(int(m[2]))
        elif m := FINISHED.search(line):
            out["finished"] = int(m[1])
        elif m := NAN.search(line):
            out["nan"] = int(m[1]) + 1  # their epoch_idx is 0-based; the logged epochs are 1-based
        elif m := GRID.search(line):
            out["grid"] = int(m[2])
    out["epochs"] = [epochs[e] for e in sorted(epochs) if "valid" in epochs[e] and "test" in epochs[e]]
    return out


def best_epoch(epochs, key="recall@20"):
    """Their choice (utils.early_stopping from best = -1): the first epoch strictly above every earlier one."""
    best, score = None, -1.0
    for row in epochs:
        if row["valid"][key] > score:
            best, score = row, row["valid"][key]
    return best


COLUMNS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def trajectory_markdown(parsed, every=1):
    epochs = parsed["epochs"]
    best = best_epoch(epochs)
    lines = ["| epoch | train loss | " + " | ".join(f"valid {c}" for c in ("recall@20", "ndcg@20"))
             + " | " + " | ".join(f"test {c}" for c in COLUMNS) + " | train s | valid s |",
             "|" + "---|" * 10]
    for row in epochs:
        if row["epoch"] % every and row is not best and row is not epochs[-1] and row["epoch"] != 1:
            continue
        mark = " (best valid)" if row is best else ""
        cells = [f"{row['valid'][c]:.4f}" for c in ("recall@20", "ndcg@20")] + [f"{row['test'][c]:.4f}" for c in COLUMNS]
        lines.append(f"| {row['epoch']}{mark} | {row['loss']:.4f} | " + " | ".join(cells)
                     + f" | {row['train_s']:.0f} | {row.get('valid_s', float('nan')):.0f} |")
    return "\n".join(lines)


def state(parsed):
    epochs = parsed["epochs"]
    best = best_epoch(epochs)
    if parsed["nan"]:
        return f"stopped by a NaN loss at epoch {parsed['nan']}"
    if parsed["finished"]:
        return f"early-stopped at epoch {parsed['finished']} (their patience {RELEASED['stopping_step']})"
    if parsed["cap"] and epochs[-1]["epoch"] == parsed["cap"]:
        return f"ended at the epoch cap {parsed['cap']}, {parsed['cap'] - best['epoch']} epochs after the best"
    return f"not ended: {len(epochs)} epochs complete, {epochs[-1]['epoch'] - best['epoch']} since the best"


def summary(parsed):
    epochs = parsed["epochs"]
    if not epochs:
        return "no complete epoch in the log yet"
    best = best_epoch(epochs)
    announced = parsed["best_lines"][-1] if parsed["best_lines"] else None
    check = "" if announced in (None, best["epoch"]) else f" (their log announced epoch {announced}: check the log)"
    grid = "" if parsed["grid"] in (None, 1) else f"; WARNING: their quick_start iterated {parsed['grid']} configurations"
    return (f"{state(parsed)}; best validation epoch {best['epoch']}{check}: valid Recall@20 "
            f"{best['valid']['recall@20']:.4f}, test Recall@20 {best['test']['recall@20']:.4f}, NDCG@20 "
            f"{best['test']['ndcg@20']:.4f}, Recall@10 {best['test']['recall@10']:.4f}, NDCG@10 "
            f"{best['test']['ndcg@10']:.4f}; train {np.mean([r['train_s'] for r in epochs]):.0f} s/epoch, validation "
            f"{np.mean([r.get('valid_s', 0.0) for r in epochs]):.0f} s/epoch (mean of {len(epochs)}){grid}")


BLOCK = ("<!-- official_ssr parse: start -->", "<!-- official_ssr parse: end -->")


def result_lines(parsed, best, every):
    """The result table (the best-validation epoch) and the trajectory, as markdown lines."""
    return ["| run | seeds | valid Recall@20 | test Recall@10 | test Recall@20 | test NDCG@10 | test NDCG@20 "
            "| best epoch |", "|---|---|---|---|---|---|---|---|",
            f"| released code and configuration, CPU | 1 ({RELEASED_GRID['seed']}) | {best['valid']['recall@20']:.4f} | "
            + " | ".join(f"{best['test'][c]:.4f}" for c in COLUMNS) + f" | {best['epoch']} |",
            "", "Trajectory (" + ("every epoch" if every == 1 else
                                  f"every {every}th epoch, the first, the best and the last") + "):",
            "", trajectory_markdown(parsed, every)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("write", help="link an MMRec folder into the data folder their code reads")
    p.add_argument("--src", required=True, help="MMRec folder: <name>.inter and <modality>_feat.npy")
    p.add_argument("--name", required=True, help="dataset name (their config 'dataset'), e.g. tiktok")
    p.add_argument("--out", required=True, help="their data_path (outside the repository); writes <out>/<name>/")
    p.add_argument("--image-from", default="image", help="source modality linked as image_feat.npy")
    p.add_argument("--text-from", default="text", help="source modality linked as text_feat.npy (TikTok: audio)")
    p.add_argument("--atomic", help="our 'prepare mmrec' folder of the same data: check the split is the same")
    p.set_defaults(func=write)
    p = sub.add_parser("run", help="run their quick_start (released configuration, CPU) on a written folder")
    p.add_argument("--code", required=True, help="the unpacked library (holds src/utils/quick_start.py)")
    p.add_argument("--data", required=True, help="the --out folder of 'write'")
    p.add_argument("--name", required=True, help="dataset name, as given to 'write'")
    p.add_argument("--work", required=True, help="working folder of the run (their ./log, ./saved, ./cache)")
    p.add_argument("--deps", help="folder put on sys.path after their src/ (pip install --target: the imports we lack)")
    p.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration key (e.g. epochs=2 for a smoke run); repeatable")
    p.set_defaults(func=run)
    finish_cli(parser, sub, sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
