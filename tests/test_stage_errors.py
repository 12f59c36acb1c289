"""A user's mistake is one line from the stage's own error class; a programming error keeps its traceback."""
import subprocess
import sys

import pytest

from conftest import ROOT
from data_prep.download import DataPrepError
from finetune.run import FinetuneError
from pipeline.errors import UserError, one_line_errors, require_path
from selection.run import SelectionError
from zoo_training.__main__ import ZooTrainingError


@pytest.mark.parametrize("error", [DataPrepError, ZooTrainingError, FinetuneError, SelectionError])
def test_each_stage_has_its_own_user_error(error):
    assert issubclass(error, UserError)


def test_user_error_is_one_line_and_a_bug_keeps_its_type():
    @one_line_errors("demo")
    def fails(error):
        raise error

    with pytest.raises(SystemExit, match="^demo: error: no such expert$"):
        fails(FinetuneError("no such expert"))
    with pytest.raises(KeyError):
        fails(KeyError("a bug"))


def test_require_path_names_the_key(tmp_path):
    assert require_path(tmp_path, "data_root", SelectionError) == tmp_path
    with pytest.raises(SelectionError, match=r"^expert_path=.*/missing.pt: no such file or directory$"):
        require_path(tmp_path / "missing.pt", "expert_path", SelectionError)


def test_stage_command_line_prints_one_line_for_a_missing_expert(tmp_path):
    r = subprocess.run([sys.executable, "-m", "finetune", "preset=smoke/finetune", "expert=resnet-x",
                        f"expert_path={tmp_path / 'none.pt'}", f"data_root={tmp_path}", "targets=[t]",
                        f"out={tmp_path / 'o.json'}", f"hydra.run.dir={tmp_path / 'run'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"finetune: error: expert_path={tmp_path / 'none.pt'}: no such file or directory"
    assert "Traceback" not in r.stderr
