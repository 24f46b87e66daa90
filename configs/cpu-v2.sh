#!/usr/bin/env bash
# Every v2 run of issues 15 and 18, in order, on the 2-core CPU machine: the data, the v2
# teacher, the distilled v2 student, the README's results table, the no-distillation student
# (its row added to the table), the system row with a model, the plugin end to end, then the
# two sweeps of issue 18.
#
# Run it in the background and simply run it again after an interruption (a stopped session, a
# killed job): each step either finds its output and is skipped, or continues from its newest
# checkpoint (kdassert train and kdassert sweep keep finished stages and points).
#   mkdir -p runs && OMP_NUM_THREADS=2 nohup bash configs/cpu-v2.sh > runs/cpu-v2.log 2>&1 &
#   grep '^==' runs/cpu-v2.log        # which step it is on; each step's own log is in runs/logs/
# Steps one after another on both threads: with two jobs on the two cores each ran at well under
# half its speed (configs/cpu-v2-teacher.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs/logs runs/bench

step() {  # step NAME OUTPUT COMMAND...: run COMMAND unless OUTPUT exists; its log in runs/logs/NAME.log
    local name=$1 output=$2
    shift 2
    if [[ -n $output && -e $output ]]; then
        echo "== $name: done ($output)"
        return
    fi
    echo "== $name: running since $(date -u +%FT%TZ)"
    local rc=0
    "$@" >> "runs/logs/$name.log" 2>&1 || rc=$?
    if ((rc)); then
        echo "== $name: FAILED (exit $rc) $(date -u +%FT%TZ); see runs/logs/$name.log"
        return "$rc"
    fi
    echo "== $name: finished $(date -u +%FT%TZ)"
}
# A training step that fails stops the runbook (what follows needs its model); a benchmark
# that fails is reported and the runbook goes on (`|| true`), so one bug costs no CPU hours.

teacher=runs/cpu-v2/teacher/final
student=runs/cpu-v2/students/student-mini-topk-a0.5-T1/final
nodistill=runs/cpu-v2/students/student-mini-topk-a0-T1/final
bench_common=(--data data/corpus-32k/test.jsonl --in-project --exemplar-pool data/corpus/test.jsonl
              --limit 2000 --no-memory --threads 2)
# every point on the table's 2,000 test examples: they span all 15 test projects, while the
# file's first 1,000 hold only 2 (scikit-learn, faker), where even the teacher is never exact
sweep_common=(--config configs/sweep-v2.toml --bench-data data/corpus-32k/test.jsonl
              --bench-exemplar-pool data/corpus/test.jsonl --bench-limit 2000 --latency-examples 30)

step mine data/corpus/train.jsonl kdassert mine --corpus default -o data/corpus
step sample-32k data/corpus-32k/test.jsonl \
    kdassert sample data/corpus -o data/corpus-32k --train 32000 --valid 1000 --test 2000 --seed 0
step sample-16k data/corpus-16k/test.jsonl \
    kdassert sample data/corpus -o data/corpus-16k --train 16000 --valid 500 --test 1000 --seed 0
step sample-58k data/corpus-58k/train.jsonl kdassert sample data/corpus -o data/corpus-58k --train 57600 --seed 0

# kdassert train skips finished stages and continues an interrupted one from its checkpoint
step teacher "" kdassert train --config configs/cpu-v2-teacher.toml
step student "" kdassert train --config configs/cpu-v2-student.toml

# issue 15: the results table (every row on the same 2,000 test examples), as soon as the
# distilled student exists; the no-distillation row joins it later (--add-to keeps the rows)
step bench-table runs/bench/v2-table-test2000.json \
    kdassert bench "${bench_common[@]}" --teacher "$teacher" --model default --model "v2-distilled=$student" \
        --train data/corpus/train.jsonl --system-valid data/corpus/valid.jsonl --latency-examples 50 \
        --out runs/bench/v2-table-test2000.json || true
# the table's no-distillation row: the same student, budget and data with alpha 0
step nodistill "" kdassert train --config configs/cpu-v2-student-nodistill.toml
step bench-nodistill runs/bench/v2-table-test2000-all.json \
    kdassert bench "${bench_common[@]}" --model "v2-nodistill=$nodistill" --latency-examples 50 \
        --add-to runs/bench/v2-table-test2000.json --out runs/bench/v2-table-test2000-all.json || true
step system-student runs/bench/system-with-v2-student.json \
    python benchmarks/system_with_model.py --model "$student" --threads 2 --out runs/bench/system-with-v2-student.json || true
step grounding-student runs/bench/grounding-v2-student.json \
    python benchmarks/grounding_onoff.py --model "$student" --modes templates,exemplars --per-project 20 --threads 2 \
        --out runs/bench/grounding-v2-student.json || true
step system-teacher runs/bench/system-with-v2-teacher.json \
    python benchmarks/system_with_model.py --model "$teacher" --threads 2 --out runs/bench/system-with-v2-teacher.json || true

# issue 18: the teacher-signal stores, then the student sizes (one point at a time; resumable).
# Stores in order of importance (a stopped sweep has the most telling points first): the
# original logits, the study's full-vocabulary 8 bits, the v2 student's top-32 int4, then
# the bit width and the k of top-k one at a time.
step sweep-stores runs/sweep-v2/stores-done kdassert sweep "${sweep_common[@]}" --results runs/sweep-v2/stores.json \
    --store online,quantized-8bit,topk-k32-int4,quantized-4bit,topk-k32-int8,topk-k8-int8,topk-k128-int8,quantized-16bit \
    --alpha 0,0.5 --temperature 1 --reference student-mini-online-a0.5-T1 && touch runs/sweep-v2/stores-done || true
step sweep-sizes runs/sweep-v2/sizes-done kdassert sweep "${sweep_common[@]}" --results runs/sweep-v2/sizes.json \
    --student tiny,student-mini,student-small,student --store topk-k32-int4 --alpha 0.5 --temperature 1 \
    && touch runs/sweep-v2/sizes-done || true
echo "== all done $(date -u +%FT%TZ)"
