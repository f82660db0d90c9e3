"""A non-editable install carries the data folders and package files mibench reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import TESTS


def test_wheel_carries_data_folders(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(TESTS.parent)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("mibench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("mibench/_data/prompts/paper.yaml", "mibench/_data/prompts/extended.yaml",
                     "mibench/_data/prompts/questions/paper.yaml", "mibench/_data/baselines/musicinfuser.yaml",
                     "mibench/_data/baselines/videollama2.yaml", "mibench/_data/reports/paper_reported.yaml",
                     "mibench/report/templates/index.html", "mibench/train/configs/paper.yaml",
                     "mibench/study/templates/rater.html", "mibench/study/questions/paper.yaml",
                     "mibench/judges/videollama2/tiny_tokenizer/vocab.json"):
        assert required in names, required
    assert not any(n.startswith("mibench/_data/") and "__pycache__" in n for n in names)
