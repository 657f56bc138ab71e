"""tools/official_spectramb.py: our atomic split written in the official SpectraMB data layout, exactly; its
log parsed into a trajectory with the official best-epoch rule."""
from argparse import Namespace

import pytest

from recbole_spectral.errors import DataError
from tools.official_spectramb import BLOCK, best_epoch, command, official_layout, parse_log, report_block, update_report

HEADER = "user_id:token\titem_id:token\tbehavior:token\n"


def atomic(root, train, valid="ub\ti1\tbuy\n", test="ua\ti3\tbuy\nub\ti2\tbuy\n"):
    """A hand-built atomic folder: users ub, ua, uc (ids 1, 2, 3 in .user order), items i3, i1, i2 (ids 1, 2, 3)."""
    folder = root / "mini"
    folder.mkdir(parents=True)
    (folder / "mini.yaml").write_text("behaviors: [view, cart, buy]\ntarget_behavior: buy\n")
    (folder / "mini.user").write_text("user_id:token\nub\nua\nuc\n")
    (folder / "mini.item").write_text("item_id:token\ni3\ni1\ni2\n")
    for split, rows in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"mini.{split}.inter").write_text(HEADER + rows)
    return folder


TRAIN = ("ua\ti1\tview\n"
         "ua\ti2\tview\n"
         "uc\ti3\tview\n"
         "ua\ti1\tview\n"  # a duplicate pair: written once
         "ub\ti2\tcart\n"
         "ua\ti2\tbuy\n"
         "ub\ti3\tbuy\n"
         "ub\ti2\tbuy\n")


def test_layout_files_exactly(tmp_path):
    files, behaviors = official_layout(atomic(tmp_path, TRAIN))
    assert behaviors == ["view", "cart", "buy"]
    assert files == {
        "count.txt": '{"user": 3, "item": 3}',
        # per behavior: training pairs in row order (ua=2, ub=1, uc=3; i3=1, i1=2, i2=3)
        "view.txt": "2 2\n2 3\n3 1\n",
        "view_dict.txt": '{"2": [2, 3], "3": [1]}',
        "cart.txt": "1 3\n",
        "cart_dict.txt": '{"1": [3]}',
        "buy.txt": "2 3\n1 1\n1 3\n",
        "buy_dict.txt": '{"2": [3], "1": [1, 3]}',
        "train_dict.txt": '{"2": [3], "1": [1, 3]}',  # the BPR pairs: the target's training rows
        # the union of all behaviors, users in first-appearance order, items sorted
        "all.txt": "2 2\n2 3\n3 1\n1 1\n1 3\n",
        "all_dict.txt": '{"2": [2, 3], "3": [1], "1": [1, 3]}',
        "validation_dict.txt": '{"1": [2]}',
        "test_dict.txt": '{"2": [1], "1": [3]}',
    }


def test_layout_refuses_unknown_tokens_and_non_target_evaluation_rows(tmp_path):
    with pytest.raises(DataError, match=r"mini\.train\.inter: item_id 'i9' is not in the dataset's \.item file"):
        official_layout(atomic(tmp_path / "a", TRAIN + "ua\ti9\tview\n"))
    with pytest.raises(DataError, match=r"mini\.test\.inter: holds a 'cart' row; expected target \('buy'\) rows only"):
        official_layout(atomic(tmp_path / "b", TRAIN, test="ua\ti3\tcart\n"))
    with pytest.raises(DataError, match=r"behavior 'share' is not in the YAML's behaviors"):
        official_layout(atomic(tmp_path / "c", TRAIN + "ua\ti3\tshare\n"))


def test_run_command_uses_the_readme_preset_on_cpu_and_refuses_other_behaviors(tmp_path):
    files, _ = official_layout(atomic(tmp_path, TRAIN))
    data, code = tmp_path / "layout", tmp_path / "code"
    data.mkdir(), code.mkdir()
    (code / "main.py").write_text("")
    for name, text in files.items():
        (data / name).write_text(text)
    args = Namespace(code=str(code), data=str(data), data_name="taobao", deps=str(tmp_path / "deps"),
                     python="py", extra=["--epochs=2"])
    cwd, argv, env = command(args)
    assert cwd == code.resolve()
    assert argv == ["py", "main.py", "--data_name=taobao", "--content_coeff=1.25", "--processed_global_coeff=0",
                    "--device=cpu", "--epochs=2"]
    assert (code / "data" / "taobao").resolve() == data.resolve()  # main.py reads ./data/taobao
    assert env["PYTHONPATH"].split(":")[0] == str((tmp_path / "deps").resolve())
    args.data_name = "tmall"  # the official tmall preset reads click/collect/cart/buy: a view layout is refused
    with pytest.raises(DataError, match=r"is missing: the official 'tmall' preset reads behaviors"):
        command(args)


LOG = """\x1b[1;35m Train     1\x1b[0m:   0%|          | 0/75 [00:00<?, ?it/s]loss: (0.31, 0.0002)
2026-12-07 02:45:00.0 | INFO | trainer:_train_one_epoch:138 - epoch 1 300.50s Train loss is [0.3100] 
Evaluate : 100%|##########| 16/16 [00:10<00:00]\r2026-12-07 02:45:10.0 | INFO | trainer:_train_one_epoch:146 - validate 1 cost time 10.00s, result: {'hit@10': 0.05, 'ndcg@10': 0.02, 'hit@20': 0.08, 'ndcg@20': 0.03} 
2026-12-07 02:45:20.0 | INFO | trainer:_train_one_epoch:154 - test 1 cost time 11.00s, result: {'hit@10': np.float64(0.04), 'ndcg@10': 0.021, 'hit@20': 0.07, 'ndcg@20': 0.028} 
2026-12-07 02:50:00.0 | INFO | trainer:_train_one_epoch:138 - epoch 2 299.50s Train loss is [0.2000] 
2026-12-07 02:50:10.0 | INFO | trainer:_train_one_epoch:146 - validate 2 cost time 9.00s, result: {'hit@10': 0.07, 'ndcg@10': 0.03, 'hit@20': 0.1, 'ndcg@20': 0.04} 
2026-12-07 02:50:20.0 | INFO | trainer:_train_one_epoch:154 - test 2 cost time 10.00s, result: {'hit@10': 0.06, 'ndcg@10': 0.03, 'hit@20': 0.09, 'ndcg@20': 0.035} 
2026-12-07 02:55:00.0 | INFO | trainer:_train_one_epoch:138 - epoch 3 301.00s Train loss is [0.1500] 
2026-12-07 02:55:10.0 | INFO | trainer:_train_one_epoch:146 - validate 3 cost time 9.00s, result: {'hit@10': 0.07, 'ndcg@10': 0.031, 'hit@20': 0.1, 'ndcg@20': 0.04} 
2026-12-07 02:55:20.0 | INFO | trainer:_train_one_epoch:154 - test 3 cost time 10.00s, result: {'hit@10': 0.065, 'ndcg@10': 0.032, 'hit@20': 0.09, 'ndcg@20': 0.035} 
2026-12-07 03:00:00.0 | INFO | trainer:_train_one_epoch:138 - epoch 4 300.00s Train loss is [0.1400] 
"""


def test_parse_log_reads_each_complete_epoch_and_picks_the_first_strictly_best_validation():
    parsed = parse_log(LOG)
    assert [r["epoch"] for r in parsed["epochs"]] == [1, 2, 3]  # epoch 4 has no evaluation yet
    first = parsed["epochs"][0]
    assert first["loss"] == 0.31 and first["train_s"] == 300.5 and first["eval_s"] == 21.0
    assert first["test"] == {"hit@10": 0.04, "ndcg@10": 0.021, "hit@20": 0.07, "ndcg@20": 0.028}
    assert parsed["ended"] is None and parsed["steps"] == 75
    assert best_epoch(parsed["epochs"])["epoch"] == 2  # epoch 3 ties at 0.07: the official '>' keeps epoch 2
    assert parse_log(LOG + "x | training end, best iteration 2, results: {}\n")["ended"] == 2



def test_report_block_replaces_only_the_generated_part(tmp_path):
    report = tmp_path / "report.md"
    report.write_text(f"# head\n{BLOCK[0]}\nold\n{BLOCK[1]}\n\nkept\n")
    update_report(report, report_block(parse_log(LOG), "run.log", 2))
    text = report.read_text()
    assert text.startswith(f"# head\n{BLOCK[0]}\n") and text.endswith(f"{BLOCK[1]}\n\nkept\n") and "old" not in text
    assert "| official code, README taobao command, CPU | 1 (2026) | 0.0700 | 0.0600 | 0.0300 | 2 (75 steps/epoch: 150) |" in text
    assert "| 2 (best valid) | 0.2000 | 0.0700 | 0.0300 | 0.0600 | 0.0300 | 300 | 19 |" in text
    assert "| 3 | 0.1500 |" in text and "| 1 | 0.3100 |" in text  # the last and the first epoch are always listed
    report.write_text("no markers\n")
    with pytest.raises(DataError, match=r"report\.md: expected the markers"):
        update_report(report, "x")
