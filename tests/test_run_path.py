"""The run path (recbole_spectral.quick_start): evaluation batches sized by a score budget with
identical metrics, run facts in the result, and the import boundary of the converters."""
import subprocess
import sys

import pytest

from recbole_spectral.config import SpectralConfig
from recbole_spectral.quick_start import full_sort_users_per_batch, run_recbole_spectral
from tests.helpers import FAST, ROOT


@pytest.mark.parametrize("budget,eval_batch_size,users", [
    (16_777_216, 4096, 16_777_216 // 1683), (1000, 4096, 1), (None, 4096, 2), (None, 100, 1),
])
def test_users_per_full_sort_batch(budget, eval_batch_size, users):
    config = SpectralConfig("BPR", "ml-100k", config_dict={"eval_score_budget": budget, "eval_batch_size": eval_batch_size})
    assert full_sort_users_per_batch(config, 1683) == users


def test_metrics_do_not_depend_on_the_evaluation_batch_size(workdir):
    runs = [run_recbole_spectral("LightGCN", "ml-100k", config_dict={**FAST, "train_batch_size": 8192, **sizing})
            for sizing in ({"eval_score_budget": None, "eval_batch_size": 40000}, {"eval_score_budget": 2 ** 24})]
    assert runs[0]["test_result"] == runs[1]["test_result"]
    assert runs[0]["best_valid_result"] == runs[1]["best_valid_result"]
    assert runs[0]["epochs_run"] == 1 and runs[0]["best_epoch"] == 1 and runs[0]["model_file"].endswith(".pth")


def test_converters_do_not_import_recboles_dataset():
    code = ("import sys, recbole_spectral.data.converters.crgcn, recbole_spectral.data.converters.mmrec, "
            "recbole_spectral.prepare; print(sorted(m for m in sys.modules if m.startswith('recbole.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
