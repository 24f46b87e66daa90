"""The teacher logit store: codecs round-trip within their stated error, shards are checked."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from distillation.logit_codec import EliasFano, QuantizedCodec, TopKCodec
from distillation.logit_extract import LogitsConfig, extract_logits
from distillation.logit_store import LogitStore
from distillation.signals import topk_signal
from pytest_kdassert.core.errors import ConfigError, CorruptModelError, CorruptShardError, DataError
from tests.train_data import write_split


def _logits(rows=40, vocab=300, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 3, (rows, vocab)).astype(np.float32))


@pytest.mark.parametrize(("vocab", "k"), [(8192, 32), (300, 300), (300, 7), (97, 5)])
def test_elias_fano_ids_round_trip(vocab, k):
    rng = np.random.default_rng(1)
    ids = np.sort(np.stack([rng.choice(vocab, k, replace=False) for _ in range(30)]), axis=1)
    codec = EliasFano(k, vocab)
    assert np.array_equal(codec.decode(codec.encode(ids)), ids)


@pytest.mark.parametrize(("dtype", "tolerance"), [("fp16", 2e-3), ("int8", 0.06), ("int4", 1.0)])
def test_topk_rows_round_trip(dtype, tolerance):
    logits = _logits()
    signal = topk_signal(logits, 16)
    codec = TopKCodec(16, 300, dtype)
    ids, values, leftover = codec.decode(codec.encode(
        signal.ids.numpy(), signal.logprobs.numpy(), signal.leftover_logprob.numpy()))
    order = np.argsort(signal.ids.numpy(), axis=1)
    assert np.array_equal(ids, np.take_along_axis(signal.ids.numpy(), order, axis=1))
    expected = np.take_along_axis(signal.logprobs.numpy(), order, axis=1)
    # int codes: half a step of the row's range; fp16: relative rounding
    span = expected.max(axis=1) - expected.min(axis=1)
    bound = span / 255 / 2 + 0.01 if dtype == "int8" else (span / 15 / 2 + 0.01 if dtype == "int4" else tolerance)
    assert (np.abs(values - expected).max(axis=1) <= bound).all()
    assert np.abs(leftover - signal.leftover_logprob.numpy()).max() < 2e-3


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_quantized_rows_round_trip_within_half_a_step(bits):
    logits = _logits().numpy()
    codec = QuantizedCodec(300, bits)
    restored = codec.decode(codec.encode(logits))
    bound = QuantizedCodec.max_error(logits, bits) * 1.01 + 1e-6
    assert (np.abs(restored - logits).max(axis=1) <= bound).all()
    assert codec.row_bytes == 300 * bits // 8 + 8


def test_topk_storage_budget_at_k32():
    sizes = {dtype: TopKCodec(32, 8192, dtype).row_bytes for dtype in ("fp16", "int8", "int4")}
    assert sizes == {"fp16": 110, "int8": 78, "int4": 62}
    assert sizes["int4"] <= 64


@pytest.fixture
def split(tmp_path):
    return write_split(tmp_path / "data", "train", 12)


def _extract(model_dir, data, out, **kwargs):
    return extract_logits(LogitsConfig(teacher=str(model_dir), data=str(data), out_dir=str(out),
                                       batch_size=5, **kwargs))


def test_store_matches_live_teacher(tiny_model_dir, split, tmp_path):
    from distillation.data import Seq2SeqCollator, load_dataset
    from pytest_kdassert.core.loading import load_format_config, load_seq2seq

    store = LogitStore.open(_extract(tiny_model_dir, split, tmp_path / "store", k=8, dtype="fp16"))
    manifest = store.manifest
    assert (manifest["mode"], manifest["k"], manifest["num_examples"]) == ("topk", 8, 12)
    assert manifest["teacher"]["model.safetensors_sha256"]
    model, tokenizer = load_seq2seq(tiny_model_dir)
    dataset = load_dataset(split, tokenizer, load_format_config(tiny_model_dir), with_index=True)
    batch = Seq2SeqCollator(tokenizer, store=store)([dataset[i] for i in (3, 0, 7)])
    with torch.no_grad():
        live = topk_signal(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 labels=batch["labels"]).logits, 8)
    mask = batch["labels"] != -100
    stored_ids = batch["teacher_ids"][mask].sort(dim=-1)
    live_ids = live.ids[mask].sort(dim=-1)
    assert torch.equal(stored_ids.values, live_ids.values)
    stored_lp = batch["teacher_logprobs"][mask].gather(-1, stored_ids.indices)
    live_lp = live.logprobs[mask].gather(-1, live_ids.indices)
    assert torch.allclose(stored_lp, live_lp, atol=5e-3)
    assert store.bytes_per_token() == TopKCodec(8, manifest["vocab_size"], "fp16").row_bytes


def test_extraction_into_a_log_reports_progress_at_any_log_level(tiny_model_dir, split, tmp_path,
                                                                 capsys, monkeypatch):
    """stderr is no terminal here, as in a background run's log: no bar, but progress lines,
    which do not depend on the log level (a background `kdassert train` logs at WARNING)."""
    monkeypatch.setattr("distillation.progress.QUIET_SECONDS", 0.0)  # the real work takes minutes
    _extract(tiny_model_dir, split, tmp_path / "store", k=8)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("teacher logits")]
    assert len(lines) == 1 and re.fullmatch(r"teacher logits \S+: 12 of 12 examples \(\d+/s\)", lines[0])


def test_quantized_store_gives_dense_logits(tiny_model_dir, split, tmp_path):
    store = LogitStore.open(_extract(tiny_model_dir, split, tmp_path / "q", mode="quantized", bits=8))
    labels = torch.full((1, 9), -100)
    count = len(store.example_rows(2))
    labels[0, :count] = 1
    signal = store.batch_signal([2], labels)
    assert signal.logits.shape == (1, 9, store.vocab_size)
    assert signal.logits[0, count:].abs().sum().item() == 0.0
    with pytest.raises(DataError, match="does not match"):
        store.batch_signal([3 if len(store.example_rows(3)) != count else 0], labels[:, :1].clone().fill_(1))


def test_a_teacher_with_nan_weights_gives_no_store(tiny_model_dir, split, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    model = AutoModelForSeq2SeqLM.from_pretrained(broken)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    model.save_pretrained(broken)
    with pytest.raises(CorruptModelError, match="not finite"):
        _extract(broken, split, tmp_path / "store", k=4)
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_split_extraction_equals_single_process(tiny_model_dir, split, tmp_path):
    single = LogitStore.open(_extract(tiny_model_dir, split, tmp_path / "one", k=4))
    _extract(tiny_model_dir, split, tmp_path / "two", k=4, num_shards=2, shard_index=1)
    assert not (tmp_path / "two" / "manifest.json").exists()
    with pytest.raises(DataError, match="--shard-index"):
        LogitStore.open(tmp_path / "two")
    _extract(tiny_model_dir, split, tmp_path / "two", k=4, num_shards=2, shard_index=0)
    split_store = LogitStore.open(tmp_path / "two")
    assert len(split_store.shards) == 2
    for index in range(12):
        assert np.array_equal(split_store.example_rows(index), single.example_rows(index))


def test_shards_of_a_v2_store_draw_exemplars_from_the_whole_split(tiny_model_dir, split, tmp_path):
    """A shard's inputs are the split's inputs: exemplars come from every test of the
    project, not only from the tests that fall in the same shard."""
    import shutil

    from distillation.data import encode_examples
    from pytest_kdassert.core.input_format import InputFormatConfig
    from pytest_kdassert.core.loading import load_seq2seq, save_format_config
    from pytest_kdassert.core.records import load_examples

    v2 = tmp_path / "v2-model"
    shutil.copytree(tiny_model_dir, v2)
    fmt = InputFormatConfig(max_source_tokens=128, version=2, exemplars=2)
    save_format_config(v2, fmt)
    examples = load_examples(split)
    _, tokenizer = load_seq2seq(v2)
    whole = encode_examples(examples, tokenizer, fmt)
    assert encode_examples(examples[6:], tokenizer, fmt, pool=examples) == whole[6:]
    assert encode_examples(examples[6:], tokenizer, fmt) != whole[6:]  # the pool matters here

    single = LogitStore.open(_extract(v2, split, tmp_path / "one", k=4))
    sharded = LogitStore.open(_extract(v2, split, tmp_path / "three", k=4, num_shards=3))
    for index in range(12):
        assert np.array_equal(sharded.example_rows(index), single.example_rows(index))


def test_one_pass_fills_several_stores_as_separate_passes_would(tiny_model_dir, split, tmp_path):
    from distillation.logit_extract import extract_logit_stores

    settings = [dict(mode="topk", k=4, dtype="int8"), dict(mode="quantized", bits=8),
                dict(mode="topk", k=2, dtype="fp16")]
    configs = [LogitsConfig(teacher=str(tiny_model_dir), data=str(split), out_dir=str(tmp_path / f"one-{i}"),
                            batch_size=5, num_shards=2, **kw) for i, kw in enumerate(settings)]
    together = [LogitStore.open(out) for out in extract_logit_stores(configs)]
    for i, kw in enumerate(settings):
        alone = LogitStore.open(_extract(tiny_model_dir, split, tmp_path / f"alone-{i}", num_shards=2, **kw))
        assert together[i].manifest["sha256"] == alone.manifest["sha256"]
        for index in range(12):
            assert np.array_equal(together[i].example_rows(index), alone.example_rows(index))
    part = json.loads((tmp_path / "one-0" / "shard-00000-of-00002.json").read_text())
    assert part["pass_shared_by"] == 3 and part["seconds"] > 0
    with pytest.raises(ConfigError, match="share limit"):
        extract_logit_stores([configs[0], dataclasses.replace(configs[1], limit=4)])
    with pytest.raises(ConfigError, match="one directory each"):
        extract_logit_stores([configs[0], dataclasses.replace(configs[1], out_dir=configs[0].out_dir)])


def test_shard_claims_keep_processes_off_each_others_shards(tmp_path):
    import os
    import subprocess
    import sys

    from distillation.logit_store import ShardClaims

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (a / "shard-00001-of-00002.claim").write_text(f"{other.pid}\n")  # a live process holds it
        with ShardClaims([a, b], "shard-00001-of-00002") as claimed:
            assert claimed == {b}
            assert (b / "shard-00001-of-00002.claim").read_text() == f"{os.getpid()}\n"
        assert not (b / "shard-00001-of-00002.claim").exists()  # dropped on leaving
        assert (a / "shard-00001-of-00002.claim").exists()  # not ours: left alone
    finally:
        other.kill()
        other.wait()
    with ShardClaims([a], "shard-00001-of-00002") as claimed:  # its process is gone: taken over
        assert claimed == {a}


def test_a_helper_skips_a_shard_claimed_elsewhere(tiny_model_dir, split, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "store"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / "shard-00000-of-00002.claim").write_text(f"{other.pid}\n")
        _extract(tiny_model_dir, split, out, k=4, num_shards=2, shard_index=0)
        assert not (out / "shard-00000-of-00002.json").exists()  # being written elsewhere
        _extract(tiny_model_dir, split, out, k=4, num_shards=2, shard_index=1)
        assert (out / "shard-00001-of-00002.json").exists() and not (out / "manifest.json").exists()
    finally:
        other.kill()
        other.wait()
    _extract(tiny_model_dir, split, out, k=4, num_shards=2, shard_index=0)  # the claim is stale now
    assert len(LogitStore.open(out).shards) == 2


def test_the_whole_store_waits_for_a_shard_written_elsewhere(tiny_model_dir, split, tmp_path,
                                                             monkeypatch, caplog):
    """What `kdassert train` does while a helper process writes one of its shards: it waits,
    and takes the shard over when the helper dies without finishing it."""
    import logging
    import subprocess
    import sys
    import threading

    from distillation import logit_extract

    monkeypatch.setattr(logit_extract, "CLAIM_POLL_SECONDS", 0.05)
    out = tmp_path / "store"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (out / "shard-00000-of-00002.claim").write_text(f"{other.pid}\n")
    killer = threading.Timer(1.0, other.kill)  # not waited for: a zombie until the end
    killer.start()
    try:
        with caplog.at_level(logging.INFO, logger="distillation.logit_extract"):
            _extract(tiny_model_dir, split, out, k=4, num_shards=2)
    finally:
        killer.cancel()
        other.kill()
        other.wait()
    assert "waiting for teacher logits shard(s) [0]" in caplog.text
    assert len(LogitStore.open(out).shards) == 2 and not any(out.glob("*.claim"))


def test_interrupted_extraction_continues_and_keeps_finished_shards(tiny_model_dir, split, tmp_path,
                                                                 monkeypatch):
    from distillation import logit_extract

    monkeypatch.setattr(logit_extract, "SHARD_EXAMPLES", 5)  # 12 examples: 3 automatic shards
    single = LogitStore.open(_extract(tiny_model_dir, split, tmp_path / "one", k=4))
    out = _extract(tiny_model_dir, split, tmp_path / "auto", k=4, num_shards=0)
    assert len(LogitStore.open(out).shards) == 3
    # as if stopped while writing the last shard: its record is gone, its rows half there
    (out / "manifest.json").unlink()
    (out / "shard-00002-of-00003.json").unlink()
    (out / "shard-00002-of-00003.npy").write_bytes(b"half")
    kept = {name: (out / name).stat().st_mtime_ns for name in ("shard-00000-of-00003.npy",
                                                             "shard-00001-of-00003.npy")}
    _extract(tiny_model_dir, split, out, k=4, num_shards=0)
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept
    resumed = LogitStore.open(out)
    for index in range(12):
        assert np.array_equal(resumed.example_rows(index), single.example_rows(index))


def test_ctrl_c_while_writing_a_shard_leaves_no_partial_file(tiny_model_dir, split, tmp_path,
                                                             monkeypatch):
    from distillation import logit_extract

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(logit_extract, "_encode_window", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _extract(tiny_model_dir, split, tmp_path / "store", k=4)
    assert sorted(p.name for p in (tmp_path / "store").iterdir()
                  if "shard" in p.name and not p.name.endswith(".claim")) == []
    assert not any((tmp_path / "store").glob("*.claim"))
    monkeypatch.undo()
    assert len(LogitStore.open(_extract(tiny_model_dir, split, tmp_path / "store", k=4)).shards) == 1


def test_a_claim_held_by_an_exited_unreaped_process_is_taken_over(tmp_path):
    import subprocess
    import sys

    from distillation.logit_store import ShardClaims

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(200):  # exited, not waited for: a zombie that still answers kill(pid, 0)
            if Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                break
            time.sleep(0.05)
        (tmp_path / "shard-00000-of-00001.claim").write_text(f"{zombie.pid}\n")
        with ShardClaims([tmp_path], "shard-00000-of-00001") as claimed:
            assert claimed == {tmp_path}
    finally:
        zombie.wait()


def test_shards_of_other_settings_are_rewritten(tiny_model_dir, split, tmp_path):
    out = _extract(tiny_model_dir, split, tmp_path / "store", k=4, num_shards=2)
    k4_row_bytes = LogitStore.open(out).shards[0].rows.shape[1]
    rewritten = LogitStore.open(_extract(tiny_model_dir, split, out, k=2, num_shards=2))
    assert rewritten.manifest["k"] == 2
    assert [shard.rows.shape[1] for shard in rewritten.shards] == [rewritten.codec.row_bytes] * 2
    assert rewritten.codec.row_bytes < k4_row_bytes


def test_truncated_shard_is_named(tiny_model_dir, split, tmp_path):
    out = _extract(tiny_model_dir, split, tmp_path / "store", k=4)
    shard = out / "shard-00000-of-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(CorruptShardError, match="shard-00000-of-00001.npy.*truncated"):
        LogitStore.open(out)


def test_flipped_byte_is_detected(tiny_model_dir, split, tmp_path):
    out = _extract(tiny_model_dir, split, tmp_path / "store", k=4)
    shard = out / "shard-00000-of-00001.npy"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x40
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="shard-00000-of-00001.npy.*checksum"):
        LogitStore.open(out)
    assert json.loads((out / "manifest.json").read_text())["shards"][0]["sha256"]


def test_config_validation():
    with pytest.raises(ConfigError, match="mode"):
        LogitsConfig(teacher="t", data="d", out_dir="o", mode="dense")
    with pytest.raises(ConfigError, match="bits"):
        LogitsConfig(teacher="t", data="d", out_dir="o", bits=3)
    with pytest.raises(ConfigError, match="shard_index"):
        LogitsConfig(teacher="t", data="d", out_dir="o", num_shards=2, shard_index=2)


def test_cli_tokenizer_and_logits(tiny_model_dir, split, tmp_path):
    from click.testing import CliRunner

    from distillation.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["tokenizer", "--data", str(split), "-o", str(tmp_path / "tok"),
                                  "--vocab-size", "280", "--min-frequency", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "tok" / "tokenizer.json").read_text())["model"]["type"] == "BPE"
    result = runner.invoke(main, ["logits", "--teacher", str(tiny_model_dir), "--data", str(split),
                                  "-o", str(tmp_path / "store"), "--mode", "quantized", "--bits", "4"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert (manifest["mode"], manifest["bits"], manifest["dtype"]) == ("quantized", 4, "uint4")
    result = runner.invoke(main, ["logits", "--teacher", str(tmp_path / "nope"), "--data", str(split),
                                  "-o", str(tmp_path / "x")])
    assert result.exit_code == 1 and "not found" in result.output
