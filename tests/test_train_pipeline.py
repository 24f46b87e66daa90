"""``kdassert train`` end to end on tiny presets, the stage cache, and the distillation trainer."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner

from distillation.bench import BenchConfig, run_bench
from distillation.cli import main
from distillation.pipeline import (
    TrainConfig,
    load_train_config,
    run_train,
    train_config_from_keys,
    train_config_keys,
)
from distillation.trainer import DistillConfig
from pytest_kdassert.core.errors import ConfigError, VocabMismatchError
from pytest_kdassert.core.loading import load_seq2seq
from tests.train_data import write_dataset

TINY = ["--teacher", "tiny", "--student", "tiny", "--topk", "8", "--vocab-size", "300",
        "--max-steps", "3", "--teacher-max-steps", "3", "--batch-size", "4", "--eval-steps", "2",
        "--bench-limit", "2", "--bf16", "off"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny pipeline run through the CLI, shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("train")
    data = write_dataset(root / "data")
    result = CliRunner().invoke(main, ["train", "--data", str(data), "-o", str(root / "runs"), *TINY])
    assert result.exit_code == 0, result.output
    return root, result


@pytest.mark.slow
def test_train_leaves_a_loadable_student(trained):
    root, result = trained
    final = root / "runs" / "students" / "tiny-topk-a0.5-T2" / "final"
    assert f"student: {final}" in result.output
    model, tokenizer = load_seq2seq(final)
    assert model.config.vocab_size == len(tokenizer) == 300
    assert (final / "kdassert_format.json").is_file()
    stage = json.loads((final.parent / "kdassert_stage.json").read_text())
    assert stage["config"]["alpha"] == 0.5 and stage["config"]["temperature"] == 2.0
    bench = json.loads((final.parent / "bench" / "bench.json").read_text())
    assert bench["kdassert_bench"] == 1 and bench["examples"] == 2
    assert [row["name"] for row in bench["rows"]] == ["tiny-topk-a0.5-T2"]
    assert 0.0 <= bench["rows"][0]["metrics"]["exact_match"] <= 1.0
    manifest = json.loads((root / "runs" / "logits" / "topk-k8-int8" / "manifest.json").read_text())
    assert manifest["num_examples"] == 24 and manifest["k"] == 8


@pytest.mark.slow
def test_bench_stage_is_kdassert_bench(trained, tmp_path):
    """The pipeline's benchmark is `kdassert bench` on valid.jsonl: same metrics, same schema."""
    root, _ = trained
    final = root / "runs" / "students" / "tiny-topk-a0.5-T2" / "final"
    staged = json.loads((final.parent / "bench" / "bench.json").read_text())
    config = BenchConfig(data=str(root / "data" / "valid.jsonl"), models=(str(final),),
                         out=str(tmp_path / "bench.json"), limit=2, beams=5, latency_examples=0,
                         memory=False)
    direct = run_bench(config)
    assert staged.keys() == direct.keys() and staged["rows"][0].keys() == direct["rows"][0].keys()
    assert staged["rows"][0]["metrics"] == direct["rows"][0]["metrics"]
    assert (final.parent / "bench" / "bench.predictions.jsonl").is_file()


@pytest.mark.slow
def test_second_run_is_cached(trained):
    root, _ = trained
    weights = [root / "runs" / d / "model.safetensors" for d in
               ("teacher/final", "students/tiny-topk-a0.5-T2/final")]
    before = [w.stat().st_mtime_ns for w in weights]
    result = CliRunner().invoke(main, ["train", "--data", str(root / "data"), "-o", str(root / "runs"), *TINY])
    assert result.exit_code == 0, result.output
    assert [w.stat().st_mtime_ns for w in weights] == before


@pytest.mark.slow
def test_sweep_reuses_teacher_and_separates_students(trained):
    root, _ = trained
    teacher_weights = root / "runs" / "teacher" / "final" / "model.safetensors"
    before = teacher_weights.stat().st_mtime_ns
    config = load_train_config(None, data_dir=str(root / "data"), out_dir=str(root / "runs"),
                               teacher="tiny", student="tiny", topk=8, vocab_size=300, max_steps=2,
                               teacher_max_steps=3, batch_size=4, eval_steps=2, bench_limit=0, bf16="off")
    result = run_train(config.with_distill(alpha=0.0, temperature=1.0))
    assert result.student_dir.parent.name == "tiny-topk-a0-T1"
    assert result.bench_report is None
    assert result.logits_dir is None  # alpha = 0 never reads teacher logits
    assert teacher_weights.stat().st_mtime_ns == before
    load_seq2seq(result.student_dir)


@pytest.mark.slow
def test_logits_stage_finds_the_shards_other_processes_wrote(trained, monkeypatch):
    """`logits_config_for(..., shard_index=i)` in separate processes fills the stage's store."""
    from distillation import logit_extract
    from distillation.logit_extract import extract_logits
    from distillation.pipeline import logits_config_for

    monkeypatch.setattr(logit_extract, "SHARD_EXAMPLES", 10)  # 24 examples: 3 shards
    root, _ = trained
    config = load_train_config(None, data_dir=str(root / "data"), out_dir=str(root / "runs"),
                               teacher="tiny", student="tiny", topk=4, vocab_size=300, max_steps=3,
                               teacher_max_steps=3, batch_size=4, eval_steps=2, bench_limit=0,
                               bf16="off", stop_after="logits")
    teacher = root / "runs" / "teacher" / "final"
    for index in (2, 0, 1):
        extract_logits(logits_config_for(config, teacher, shard_index=index))
    store = root / "runs" / "logits" / "topk-k4-int8"
    shards = sorted(store.glob("shard-*-of-00003.npy"))
    assert len(shards) == 3
    before = [shard.stat().st_mtime_ns for shard in shards]
    result = run_train(config)
    assert result.logits_dir == store
    assert [shard.stat().st_mtime_ns for shard in shards] == before
    assert json.loads((store / "manifest.json").read_text())["num_examples"] == 24


@pytest.mark.slow
def test_mismatched_student_vocabulary_is_refused(trained, tiny_model_dir):
    root, _ = trained
    result = CliRunner().invoke(main, ["train", "--data", str(root / "data"), "-o", str(root / "runs"),
                                       *TINY, "--student", str(tiny_model_dir), "--max-steps", "1"])
    assert result.exit_code == 1
    assert "vocabularies differ" in result.output


def test_toml_config_and_overrides(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('[train]\ndata_dir = "d"\nalpha = 0.25\nlogits_mode = "quantized"\nbits = 4\n')
    config = load_train_config(path, alpha=0.75, temperature=None)
    assert config.distill == DistillConfig(alpha=0.75, logits_mode="quantized", bits=4, temperature=2.0)
    assert config.data_dir == "d" and train_config_from_keys(train_config_keys(config)) == config
    assert train_config_keys(config)["alpha"] == 0.75 and "distill" not in train_config_keys(config)
    path.write_text("alpah = 0.5\n")
    with pytest.raises(ConfigError, match="alpah"):
        load_train_config(path)
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\], got 1.5"):
        load_train_config(None, alpha=1.5)


@pytest.mark.parametrize(("settings", "message"), [
    ({"alpha": -0.1}, "alpha must be in"), ({"temperature": 0}, "temperature must be > 0"),
    ({"logits_mode": "dense"}, "logits_mode must be one of"), ({"topk": 0}, "topk must be >= 1"),
    ({"topk_dtype": "int2"}, "topk_dtype must be one of"), ({"bits": 3}, "bits must be one of"),
])
def test_distill_config_is_validated_once(settings, message):
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**settings)


def test_distill_config_decides_the_teacher_signal():
    assert DistillConfig(alpha=0.5).reads_store and not DistillConfig(alpha=0.5).runs_teacher
    assert not DistillConfig(alpha=0.0).reads_store and not DistillConfig(alpha=0.0, logits_mode="online").runs_teacher
    assert DistillConfig(logits_mode="online").runs_teacher and not DistillConfig(logits_mode="online").reads_store
    assert DistillConfig(topk=8, topk_dtype="int4").store_name() == "topk-k8-int4"
    assert DistillConfig(logits_mode="quantized", bits=4).store_name() == "quantized-4bit"
    assert TrainConfig(student="tiny", distill=DistillConfig(alpha=0.25, temperature=4)).student_name() == "tiny-topk-a0.25-T4"


def _trainer(model, tokenizer, cls, **kwargs):
    from distillation.trainer import OptimConfig, training_args

    args = training_args(OptimConfig(max_steps=1, bf16="off"), "/tmp/kdassert-unused", has_eval=False)
    return cls(model=model, args=args, processing_class=tokenizer, **kwargs)


def _inputs(tokenizer):
    from distillation.data import Seq2SeqCollator, encode_examples
    from pytest_kdassert.core.input_format import InputFormatConfig
    from tests.train_data import make_examples

    items = encode_examples(make_examples(3), tokenizer, InputFormatConfig())
    return Seq2SeqCollator(tokenizer)(items)


def test_alpha_zero_is_plain_fine_tuning(tiny_model_dir):
    from transformers import Seq2SeqTrainer

    from distillation.signals import DenseSignal, signal_to_batch
    from distillation.trainer import DistillationTrainer

    model, tokenizer = load_seq2seq(tiny_model_dir)
    inputs = _inputs(tokenizer)
    plain = _trainer(model, tokenizer, Seq2SeqTrainer).compute_loss(model, dict(inputs))
    noise = DenseSignal(torch.randn(*inputs["labels"].shape, model.config.vocab_size))
    distil = _trainer(model, tokenizer, DistillationTrainer, distill=DistillConfig(alpha=0.0, temperature=2.0))
    assert torch.equal(distil.compute_loss(model, {**inputs, **signal_to_batch(noise)}), plain)
    mixed = _trainer(model, tokenizer, DistillationTrainer, distill=DistillConfig(alpha=0.5, temperature=2.0))
    assert mixed.compute_loss(model, {**inputs, **signal_to_batch(noise)}).item() != pytest.approx(plain.item())


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("kind", ["dense", "topk"])
def test_trainer_loss_is_distillation_loss(tiny_model_dir, alpha, kind):
    """The trainer's loss is the tested pure function on the same batch, bit for bit."""
    from distillation.losses import distillation_loss
    from distillation.signals import DenseSignal, signal_to_batch, topk_signal
    from distillation.trainer import DistillationTrainer

    model, tokenizer = load_seq2seq(tiny_model_dir)
    inputs = _inputs(tokenizer)
    torch.manual_seed(1)
    teacher_logits = torch.randn(*inputs["labels"].shape, model.config.vocab_size)
    signal = DenseSignal(teacher_logits) if kind == "dense" else topk_signal(teacher_logits, 8)
    trainer = _trainer(model, tokenizer, DistillationTrainer, distill=DistillConfig(alpha=alpha, temperature=2.0))
    loss, outputs = trainer.compute_loss(model, {**inputs, **signal_to_batch(signal)}, return_outputs=True)
    expected = distillation_loss(outputs.logits, inputs["labels"], signal, alpha, temperature=2.0)
    assert torch.equal(loss, expected)
    assert (loss.item() == pytest.approx(outputs.loss.item())) == (alpha == 0)


def test_online_teacher_signal(tiny_model_dir):
    from distillation.trainer import DistillationTrainer

    model, tokenizer = load_seq2seq(tiny_model_dir)
    teacher, _ = load_seq2seq(tiny_model_dir)
    inputs = _inputs(tokenizer)
    trainer = _trainer(model, tokenizer, DistillationTrainer, teacher_model=teacher,
                       distill=DistillConfig(alpha=1.0, temperature=1.0, logits_mode="online"))
    model.train()
    for module in model.modules():  # same weights and no dropout: the student equals the teacher
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):  # attention's functional dropout
            module.dropout = 0.0
    assert trainer.compute_loss(model, dict(inputs)).item() == pytest.approx(0.0, abs=1e-5)
    model.eval()  # evaluation reports plain CE, not the KL
    assert trainer.compute_loss(model, dict(inputs)).item() > 1.0


def test_init_model_refuses_other_vocabulary(tiny_model_dir):
    from distillation.stages import init_model
    from distillation.tokenizer import TokenizerConfig, train_tokenizer

    other = train_tokenizer(["completely different text"] * 5, TokenizerConfig(vocab_size=270, min_frequency=1))
    with pytest.raises(VocabMismatchError, match="same tokenizer"):
        init_model(str(tiny_model_dir), other, seed=0)


def test_stage_runs_its_work_once_per_settings(tmp_path, caplog):
    from distillation.stages import STAGE_FILE, Stage, config_hash, stage_seconds

    calls = []

    def work():
        calls.append(1)
        (tmp_path / "s" / "out.txt").write_text("done")

    (tmp_path / "s").mkdir()
    stage = Stage("demo", tmp_path / "s", {"lr": 1}, ("out.txt",))
    assert stage.run(work) == config_hash({"stage": "demo", "lr": 1}) == stage.hash
    assert stage.run(work) == stage.hash and calls == [1]
    recorded = json.loads((tmp_path / "s" / STAGE_FILE).read_text())
    seconds = recorded.pop("seconds")  # wall time of the work, read back by stage_seconds
    assert recorded == {"hash": stage.hash, "config": {"stage": "demo", "lr": 1}}
    assert 0 <= seconds < 5 and stage_seconds(tmp_path / "s") == seconds
    assert stage_seconds(tmp_path / "never-ran") is None
    Stage("demo", tmp_path / "s", {"lr": 2}, ("out.txt",)).run(work)
    assert calls == [1, 1]
    (tmp_path / "s" / "out.txt").unlink()  # a missing output redoes the stage
    Stage("demo", tmp_path / "s", {"lr": 2}, ("out.txt",)).run(work)
    assert calls == [1, 1, 1]


def test_failed_stage_work_leaves_no_marker(tmp_path):
    from distillation.stages import STAGE_FILE, Stage

    stage = Stage("demo", tmp_path, {"lr": 1})
    stage.run(lambda: None)

    def crash():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        Stage("demo", tmp_path, {"lr": 2}).run(crash)
    assert not (tmp_path / STAGE_FILE).exists()


def test_checkpoints_of_other_settings_are_discarded(tmp_path):
    from distillation.stages import clear_stage, mark_stage, stage_is_valid

    clear_stage(tmp_path, {"lr": 1})
    (tmp_path / "checkpoints" / "checkpoint-2").mkdir()
    clear_stage(tmp_path, {"lr": 1})  # same settings: an interrupted run resumes
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir()
    mark_stage(tmp_path, {"lr": 1})
    assert stage_is_valid(tmp_path, {"lr": 1}, ()) and not stage_is_valid(tmp_path, {"lr": 2}, ())
    clear_stage(tmp_path, {"lr": 2})
    assert not (tmp_path / "checkpoints" / "checkpoint-2").exists()
    assert not stage_is_valid(tmp_path, {"lr": 1}, ())


@dataclasses.dataclass(frozen=True)
class _OptimV1:
    lr: float = 1e-3
    max_steps: int = 10


@dataclasses.dataclass(frozen=True)
class _OptimV2(_OptimV1):
    """_OptimV1 after an upgrade added a field."""

    progress_bar: bool = True


def test_a_field_added_at_its_default_keeps_outputs_and_checkpoints(tmp_path):
    from distillation.stages import Stage, clear_stage, config_hash

    calls = []
    before = Stage("teacher", tmp_path, {"optim": _OptimV1(lr=5e-4)}, resumable=True)
    before.run(lambda: calls.append("v1"))
    after = Stage("teacher", tmp_path, {"optim": _OptimV2(lr=5e-4)}, resumable=True)
    assert after.hash == before.hash
    assert after.run(lambda: calls.append("v2")) == before.hash and calls == ["v1"]
    changed = Stage("teacher", tmp_path, {"optim": _OptimV2(lr=5e-4, progress_bar=False)})
    assert changed.hash != before.hash
    assert config_hash({"optim": _OptimV1()}) == config_hash({"optim": {}})  # defaults count as unset

    clear_stage(tmp_path / "run", {"optim": _OptimV1(lr=5e-4)})
    (tmp_path / "run" / "checkpoints" / "checkpoint-4").mkdir()
    clear_stage(tmp_path / "run", {"optim": _OptimV2(lr=5e-4, max_steps=20)}, resume=True)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-4").is_dir()


def test_stage_records_of_older_versions_still_match(tmp_path):
    """Before sparse hashes a record listed, and hashed, every field: such an output stays
    cached under its recorded hash (so its dependents stay cached too) unless a value differs."""
    from distillation.stages import STAGE_FILE, Stage

    old = {"hash": "0123456789abcdef", "config": {"stage": "tokenizer", "data": "sha",
                                                  "optim": {"lr": 5e-4, "max_steps": 10}}}
    (tmp_path / STAGE_FILE).write_text(json.dumps(old))
    calls = []
    same = Stage("tokenizer", tmp_path, {"data": "sha", "optim": _OptimV2(lr=5e-4)})
    assert same.run(lambda: calls.append(1)) == "0123456789abcdef" and calls == []
    other = Stage("tokenizer", tmp_path, {"data": "sha", "optim": _OptimV2(lr=1e-3)})
    assert other.run(lambda: calls.append(1)) == other.hash and calls == [1]
    record = json.loads((tmp_path / STAGE_FILE).read_text())
    assert record["config"]["optim"] == {"lr": 1e-3, "max_steps": 10, "progress_bar": True}


@pytest.mark.slow
def test_format_v2_trains_on_inputs_with_exemplars(tmp_path):
    """--exemplars 2: every stage sees inputs with in-project exemplars; the model says v2."""
    data = write_dataset(tmp_path / "data")
    result = CliRunner().invoke(main, ["train", "--data", str(data), "-o", str(tmp_path / "runs"),
                                       *TINY, "--exemplars", "2", "--max-source-tokens", "96"])
    assert result.exit_code == 0, result.output
    final = tmp_path / "runs" / "students" / "tiny-topk-a0.5-T2" / "final"
    fmt = json.loads((final / "kdassert_format.json").read_text())
    assert (fmt["version"], fmt["exemplars"], fmt["max_source_tokens"]) == (2, 2, 96)
    _, tokenizer = load_seq2seq(final)
    assert "<ExemplarSep>" in tokenizer.get_vocab()


def test_v2_sources_hold_other_tests_assertions_of_the_project():
    from distillation.sources import example_sources
    from pytest_kdassert.core.input_format import EXEMPLAR_SEP, InputFormatConfig
    from tests.train_data import make_examples

    examples = make_examples(6)
    sources = example_sources(examples, InputFormatConfig(version=2, exemplars=2))
    for example, source in zip(examples, sources, strict=True):
        assert source.count(EXEMPLAR_SEP) == 2
        assert example.assertion not in source.split(EXEMPLAR_SEP, 1)[0]
        own_test = example.test_name
        assert f"def {own_test}(" not in source.split(EXEMPLAR_SEP, 1)[1]
