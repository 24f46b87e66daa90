"""The shipped configs and the v2 runbook: every file they name exists and every config loads,
so a run started from them fails at its first step, not hours in."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from distillation.pipeline import load_train_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture
def in_fresh_checkout(tmp_path, monkeypatch):
    """Run from an empty directory holding only what a config may check exists: the mined
    corpus an exemplar pool names (configs name paths relative to the checkout)."""
    (tmp_path / "data" / "corpus").mkdir(parents=True)
    (tmp_path / "data" / "corpus" / "train.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path, in_fresh_checkout):
    config = load_train_config(path)
    assert config.out_dir and config.data_dir


def test_the_runbook_parses_and_names_configs_that_exist():
    script = CONFIGS / "cpu-v2.sh"
    bash = shutil.which("bash")
    if bash is not None:
        result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    named = re.findall(r"--config (configs/[\w.-]+\.toml)", script.read_text())
    assert "configs/cpu-v2-teacher.toml" in named and "configs/sweep-v2.toml" in named
    assert [name for name in named if not (CONFIGS.parent / name).is_file()] == []


def test_the_v2_student_learns_from_the_v2_teacher(in_fresh_checkout):
    teacher = load_train_config(CONFIGS / "cpu-v2-teacher.toml")
    student = load_train_config(CONFIGS / "cpu-v2-student.toml")
    nodistill = load_train_config(CONFIGS / "cpu-v2-student-nodistill.toml")
    assert student.teacher == f"{teacher.out_dir}/teacher/final"
    assert student.input_format() == teacher.input_format() == nodistill.input_format()
    assert (student.distill.alpha, nodistill.distill.alpha) == (0.5, 0.0)
    assert student.max_steps == nodistill.max_steps
    assert student.data_dir == nodistill.data_dir and student.exemplar_pool == nodistill.exemplar_pool
    # the runbook makes the sample both students train on before training them
    runbook = (CONFIGS / "cpu-v2.sh").read_text()
    assert runbook.index(f"-o {student.data_dir} ") < runbook.index("configs/cpu-v2-student.toml")
