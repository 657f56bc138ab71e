"""The multimodal baselines at Amazon Sports scale: each model's epoch time ÷ LightGCN's epoch time.

Interactions: the real Amazon Sports interactions of the MMRec benchmark
(``<shared>/multimodal/sports-interactions/sports.inter``). Features: GENERATED, of the real shapes (image
18,357 × 4,096, text 18,357 × 384; clustered Gaussian rows, benchmarks/mm_loading.py), because the real
features are not available here. Generated and converted files live in ``--work`` (by default the same folder
as benchmarks/ssr_scale.py, so both reuse one copy), outside the repository. Timings only; nothing here says
anything about recommendation quality.

One process, one dataset, the same dataloader (train_batch_size for every model). For each model in turn:
build it (construction time, including its kNN graphs from a cold cache on the first model that needs them),
then alternate LightGCN and the model for ``--rounds`` rounds of the training part of RecBole's epoch
(``trainer._train_epoch``, per-epoch hooks included, e.g. FREEDOM's edge pruning), or of the first
``--batches`` batches of an epoch when given. Ratio = model time ÷ the LightGCN time of the same round.

    nice -n 5 python benchmarks/mm_scale.py --batches 20 --out benchmarks/results/mm_scale.md
"""
import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from ssr_scale import NAME, FirstBatches, current_rss_mib, rss_mib  # noqa: E402  (shared pieces)

MODELS = ["VBPR", "FREEDOM", "LGMRec", "SMORE", "SSR"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "datasets"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ssr_scale"))
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--rounds", type=int, default=1, help="alternated epochs per model")
    parser.add_argument("--batches", type=int, default=0, help="time only the first N batches of an epoch (0 = all)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.work = os.path.abspath(args.work)
    if os.path.commonpath([args.work, ROOT]) == ROOT:
        sys.exit("error: --work must be outside the repository (generated and converted data are never committed)")

    import torch

    torch.set_num_threads(args.threads)
    from mm_loading import generate_mmrec_folder
    from recbole.utils import init_seed
    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.data import create_dataset, data_preparation
    from recbole_spectral.data.converters.mmrec import convert
    from recbole_spectral.registry import get_model
    from recbole_spectral.trainer import trainer_class

    load_before = os.getloadavg()
    folder, n_items, _ = generate_mmrec_folder(os.path.abspath(args.shared), args.work)
    data_dir = os.path.join(args.work, "data")
    if not os.path.isdir(os.path.join(data_dir, NAME)):
        convert(folder, NAME, out=data_dir, force=True, log=lambda line: None)
    settings = {"state": "ERROR", "data_path": data_dir, "use_gpu": False,
                "knn_cache_dir": os.path.join(args.work, "knn_cache"), "train_batch_size": args.batch_size,
                "seed": 2020, "show_progress": False, "checkpoint_dir": os.path.join(args.work, "saved")}

    lconfig = SpectralConfig("LightGCN", NAME, config_dict=settings)
    init_seed(lconfig["seed"], lconfig["reproducibility"])
    dataset = create_dataset(lconfig)
    train_data, _, _ = data_preparation(lconfig, dataset)
    lightgcn = get_model("LightGCN")(lconfig, train_data._dataset)
    lightgcn_trainer = trainer_class(lconfig)(lconfig, lightgcn)
    loader = FirstBatches(train_data, args.batches) if args.batches else train_data
    scope = "one full epoch" if not args.batches else f"the first {args.batches} of {len(train_data)} batches of an epoch"
    result = {"batch_size": args.batch_size, "threads": args.threads, "scope": scope, "models": {},
              "users": dataset.user_num - 1, "items": dataset.item_num - 1,
              "train_interactions": len(train_data._dataset), "rss_after_load_mib": current_rss_mib()}

    for name in args.models:
        config = SpectralConfig(name, NAME, config_dict=settings)
        init_seed(config["seed"], config["reproducibility"])
        start = time.perf_counter()
        model = get_model(name)(config, train_data._dataset)
        build_s = time.perf_counter() - start
        trainer = trainer_class(config)(config, model)
        rounds = []
        for round_ in range(args.rounds):
            t = time.perf_counter()
            lightgcn_trainer._train_epoch(loader, round_, show_progress=False)
            light = time.perf_counter() - t
            t = time.perf_counter()
            trainer._train_epoch(loader, round_, show_progress=False)
            own = time.perf_counter() - t
            rounds.append({"lightgcn_s": light, "model_s": own, "ratio": own / light})
            print(f"{name} round {round_}: LightGCN {light:.1f} s, {name} {own:.1f} s, ratio {own / light:.2f}", flush=True)
        result["models"][name] = {"build_s": build_s, "rounds": rounds,
                                  "params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
        del trainer, model
        gc.collect()
    result["peak_rss_mib"] = rss_mib()
    load_after = os.getloadavg()

    lines = [
        "# Multimodal baselines at Amazon Sports scale (GENERATED features; timings only)", "",
        "Command: `nice -n 5 python benchmarks/mm_scale.py " + " ".join(sys.argv[1:]) + "` "
        f"(work folder {args.work}, outside the repo)", "",
        f"Interactions: real Amazon Sports (MMRec) `sports.inter`: {result['users']:,} users, {result['items']:,} items, "
        f"{result['train_interactions']:,} training interactions. Features: **GENERATED** image {n_items:,} × 4,096 and "
        f"text {n_items:,} × 384 (clustered Gaussian rows). No quality claims.", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other sessions (load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after); torch threads {args.threads}; "
        f"train_batch_size {args.batch_size} for every model; timed: {scope}, {args.rounds} round(s), each model "
        "alternated with LightGCN.", "",
        "| model | build s (incl. kNN graphs, cold cache for the first model needing them) | LightGCN s | model s | **model ÷ LightGCN** | parameters |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in result["models"].items():
        light = ", ".join(f"{r['lightgcn_s']:.1f}" for r in entry["rounds"])
        own = ", ".join(f"{r['model_s']:.1f}" for r in entry["rounds"])
        ratio = ", ".join(f"{r['ratio']:.2f}" for r in entry["rounds"])
        lines.append(f"| {name} | {entry['build_s']:.1f} | {light} | {own} | **{ratio}** | {entry['params']:,} |")
    lines += ["", f"Peak RSS of the process: {result['peak_rss_mib']:.0f} MiB.", "",
              "Raw:", "", "```json", json.dumps(result, indent=1), "```", ""]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as out:
            out.write(report)


if __name__ == "__main__":
    main()
