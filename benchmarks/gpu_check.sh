#!/usr/bin/env bash
# The GPU checks of the latency and speed benchmarks, prepared to fit a short lease of one GPU:
# two stages, each one command of under 10 minutes (an estimate: not yet run on a GPU).
#
#   speed:   sim_speed.py on CUDA, T = 128, cnn / vgg16 (w0.25) / resnet20, batch 32 and 256:
#            a/b and images x steps per second (the speed benchmark's GPU target).
#   latency: latency.py on CUDA with the default subset (2,000 test images, T_max = 128):
#            resnet20 (the shipped width-1 weights) and vgg16 at width 1 (trained there,
#            3 epochs): the latency benchmark's full-width GPU runs.
#
# The machine has no internet and no Debian package: carry the data. Once, here:
#   mkdir -p .data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/
# (.data/ is git-ignored), then run each stage with `.data` carried:
#   bash benchmarks/gpu_check.sh speed
#   bash benchmarks/gpu_check.sh latency
# Results go to $OUT (or runs/gpu_check_out): a log per stage and the JSON files (latency: with
# its two plots per model), at most 8 files.
# GPU_CHECK_SMOKE=1 shrinks every run (CPU, a few images and steps) to test the plumbing.
set -u
stage=${1:?usage: gpu_check.sh speed|latency}
out=${OUT:-runs/gpu_check_out}
mkdir -p "$out"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -d .data/fashion-mnist ] && export DTIF_DATA=${DTIF_DATA:-.data}
py=${PYTHON:-python3}
smoke=${GPU_CHECK_SMOKE:-0}
device=cuda
[ "$smoke" = 1 ] && device=cpu
log="$out/$stage.log"
stamp=$(mktemp)  # results newer than this one are this call's
runs=runs/gpu_check  # training runs stay out of $OUT (only 8 files come back)

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    || echo "no nvidia-smi"
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  git rev-parse --short HEAD 2>/dev/null || true
} >"$log" 2>&1

run() {  # run LIMIT_S CMD...: one step, its output appended to the log, its status noted
  local limit=$1
  shift
  echo "== $* (limit ${limit} s)" >>"$log"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$log" 2>&1
  echo "== exit $? after $((SECONDS - t0)) s" >>"$log"
}

case "$stage" in
  speed)
    steps=128 repeats=5 batches="32 256"
    [ "$smoke" = 1 ] && steps=8 repeats=1 batches="4"
    for b in $batches; do
      run 240 "$py" benchmarks/sim_speed.py --device "$device" --steps "$steps" --batch "$b" \
        --repeats "$repeats" --no-spikingjelly --no-memory \
        --out "$out/sim_speed_gpu_b$b.json"
    done
    ;;
  latency)
    extra=()
    vgg_width=1
    if [ "$smoke" = 1 ]; then
      extra=(--test-limit 20 --num-steps 4 --calib-size 32 --methods if-max,dtif)
      vgg_width=0.25  # the shipped weights: no training in a smoke run
    fi
    run 280 "$py" benchmarks/latency.py --model resnet20 --device "$device" \
      --runs "$runs" --resume "${extra[@]}"
    run 280 "$py" benchmarks/latency.py --model vgg16 --width "$vgg_width" --device "$device" \
      --runs "$runs" --resume "${extra[@]}"
    for f in benchmarks/results/latency_*resnet20-w1_* "benchmarks/results/latency_fashion-mnist-vgg16-w${vgg_width}_"*; do
      [ "$f" -nt "$stamp" ] && cp "$f" "$out/gpu_$(basename "$f")"
    done
    ;;
  *)
    echo "unknown stage $stage: speed or latency" >&2
    exit 2
    ;;
esac
echo "== done $(date -u +%FT%TZ)" >>"$log"
