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

    nice -n 5 python -m benchmarks.mm_scale --batches 20 --out benchmarks/results/mm_scale.md
"""
import argparse
import gc
import json
import os
import platform
import sys
import time

from benchmarks.ssr_scale import NAME, FirstBatches, add_scale_arguments, current_rss_mib, data_description, prepare_scale_data, rss_mib, write_report

MODELS = ["VBPR", "FREEDOM", "LGMRec", "SMORE", "SSR"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--models", nargs="+", default=MODELS)
    args = parser.parse_args()
    settings, n_items = prepare_scale_data(args)

    from recbole_spectral.config import SpectralConfig
    from recbole_spectral.quick_start import build_data, build_model

    load_before = os.getloadavg()

    lconfig = SpectralConfig("LightGCN", NAME, config_dict=settings)
    dataset, (train_data, _, _) = build_data(lconfig)
    _, lightgcn_trainer = build_model(lconfig, train_data)
    loader = FirstBatches(train_data, args.batches) if args.batches else train_data
    scope = "one full epoch" if not args.batches else f"the first {args.batches} of {len(train_data)} batches of an epoch"
    result = {"batch_size": args.batch_size, "threads": args.threads, "scope": scope, "models": {},
              "users": dataset.user_num - 1, "items": dataset.item_num - 1,
              "train_interactions": len(train_data._dataset), "rss_after_load_mib": current_rss_mib()}

    for name in args.models:
        config = SpectralConfig(name, NAME, config_dict=settings)
        start = time.perf_counter()
        model, trainer = build_model(config, train_data)
        build_s = time.perf_counter() - start
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
        "Command: `nice -n 5 python -m benchmarks.mm_scale " + " ".join(sys.argv[1:]) + "` "
        f"(work folder {args.work}, outside the repo)", "",
        data_description(result, n_items), "",
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
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
