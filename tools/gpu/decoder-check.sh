#!/usr/bin/env bash
# The decoder on a GPU: a LLaMA-7B-shaped decoder (32 layers, dim 4096, 32 heads, vocabulary
# 32,000, random weights) built on the GPU machine in int4 (MatMulNBits) and fp16 (float16
# matmuls), run through onnxruntime-node's WebGPU provider (Dawn over the NVIDIA Vulkan driver)
# with the slot KV cache (float16) on the device. Prints decode tok/s at 1 and 16 streams for
# contexts 512 and 2,048, each ÷ the HBM bound (weight bytes per token ÷ the device copy bandwidth
# measured in the same run), and the bytes that cross host ↔ device per row and step. Decode steps
# run the step graph (model.step.onnx: one fused GroupQueryAttention per layer writing the cache in
# place, 13 kernels per layer where the general graph has 38); the general graph's steps are timed
# beside them in the same session (`step_graph_speedup` in the JSON).
#
# Here (CPU machine): npm ci && npm run build && bash tools/gpu/prepare.sh
# Device tool:        run(command: "bash tools/gpu/decoder-check.sh", carry: [".gpu-carry"], timeout_s: 580)
# Results:            $OUT/decoder-check.log, $OUT/int4.json, $OUT/fp16.json, $OUT/nvidia-smi.txt
# Budget: about 8.5 minutes (2026-12-04 on an H200: two builds in parallel, 5.2 min, then one
# measurement after the other). DECODER_CHECK_QUICK=1 (a few minutes past the smoke run) builds
# int4 at 1 and 4 layers of the 7B width with onnxruntime's profile of one-row and 16-row steps
# (kernels per step, the host's time around them, the GPU programs' own time), the 4-layer step
# graph with and without onnxruntime's graph capture (tools/gpu/graph-capture/probe.c, through the
# C API), then the 4-layer model with Dawn's validation disabled. DECODER_CHECK_CAPTURE=1 adds the
# capture probe on the 32-layer int4 model to the full check.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ibllm-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/decoder-check.log") 2>&1
started=$SECONDS
note() { printf '\n== [%4ss] %s\n' "$((SECONDS - started))" "$*"; }

carry=.gpu-carry
[[ -f $carry/bench.mjs ]] || { echo "no $carry/bench.mjs: run tools/gpu/prepare.sh and carry .gpu-carry"; exit 2; }
run=/tmp/ibllm-gpu
rm -rf "$run" && mkdir -p "$run/node_modules" "$run/vk" "$run/models"
unxz_to() {
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}

note "unpacking node, onnxruntime-node and the Vulkan loader"
unxz_to "$carry/node.xz" "$run/node" && chmod +x "$run/node"
cp -r "$carry/onnxruntime-node" "$carry/onnxruntime-common" "$run/node_modules/"
unxz_to "$carry/onnxruntime-node/libonnxruntime.so.1.xz" "$run/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
cp "$carry/bench.mjs" "$run/"
# The Vulkan loader and glvnd, which the NVIDIA ICD (libGLX_nvidia.so.0) loads through, into /
# (the machine is bare and given back after the lease).
for deb in "$carry"/gl/*.deb; do [[ -f $deb ]] && dpkg -x "$deb" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $icd ]] && export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
export XDG_RUNTIME_DIR=/tmp/ibllm-xdg && mkdir -p "$XDG_RUNTIME_DIR"
"$run/node" --version
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv | tee "$OUT/nvidia-smi.txt"
nproc && free -g | head -2 && df -h /tmp | tail -1

cp "$carry/graph-capture-probe" "$run/" 2>/dev/null || echo "no graph-capture-probe in $carry (prepare.sh builds it)"
cd "$run"
bench() { ./node --max-old-space-size=16384 bench.mjs "$@"; }
# capture_probe MODEL LAYERS NAME: tools/gpu/graph-capture/probe.c on a 7B-width step graph (32
# heads of 128, capacity 2,056), capture off then on, at 1 and 16 rows, 100 steps (lengths 0 … 99:
# on lavapipe the captured steps turn to zeros from length 64 on); JSON to $OUT/NAME-capture*.json
capture_probe() {
  [[ -x ./graph-capture-probe ]] || { echo "no graph-capture-probe"; return 0; }
  for rows in 1 16; do
    for capture in 0 1; do
      note "graph capture $capture, $rows row(s): $1"
      ./graph-capture-probe node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1 "$1" "$2" 32 128 2056 4096 \
        "$capture" 100 "$rows" | tee "capture-$capture-$rows.log" | tail -1
      tail -1 "capture-$capture-$rows.log" | grep '^{' >"$OUT/$3-capture$capture-rows$rows.json" || true
    done
  done
}
note "smoke: a small model on webgpu (the provider reaches the GPU through Vulkan)"
bench --provider webgpu --dim 256 --layers 2 --heads 4 --vocab 8000 --streams 4 --capacity 512 \
  --contexts 64,480 --reps 3 --kv float16 --sections steps || { echo "smoke run failed"; exit 1; }

# DECODER_CHECK_QUICK=1: one format (int4) at 1 and 4 layers of the 7B width (a short lease: how
# the step time grows per layer, and the bandwidth probe), instead of the full 32-layer builds,
# each with onnxruntime's profile of its steps, and the 4-layer model once more with Dawn's
# validation disabled.
if [[ ${DECODER_CHECK_QUICK:-0} == 1 ]]; then
  quick=(--provider webgpu --dim 4096 --heads 32 --vocab 32000 --streams 16 --capacity 2056
    --contexts 512,2048 --kv float16 --sections steps --reps 5 --profile-steps 3 --profile-streams --json
    --format int4)
  for layers in 1 4; do
    note "quick: int4, dim 4096, $layers layers"
    bench "${quick[@]}" --layers "$layers" --model-dir "models/quick-$layers" | tee "quick-$layers.log"
    tail -1 "quick-$layers.log" | grep '^{' >"$OUT/quick-int4-$layers-layers.json" || true
  done
  # The 4-layer step graph under onnxruntime's WebGPU graph capture (which onnxruntime-node cannot
  # switch on) against the same without it, 1 and 16 rows: the same tokens, and what capture saves
  capture_probe models/quick-4/decoder.step.onnx 4 quick-int4-4-layers
  # Dawn's validation off (--webgpu-validation disabled): what it costs per kernel on this driver
  note "quick: int4, dim 4096, 4 layers, WebGPU validation disabled"
  bench "${quick[@]}" --layers 4 --model-dir models/quick-4 --webgpu-validation disabled | tee quick-4-novalidation.log
  tail -1 quick-4-novalidation.log | grep '^{' >"$OUT/quick-int4-4-layers-novalidation.json" || true
  note "done"
  exit 0
fi

# Decode steps run the step graph (model.step.onnx, the attention fused); the general graph's steps
# are timed beside them once each (at 16 rows and context 2,048 a general step took 6 s on 12-04,
# and the full check then took 508 s of the 580 a call may use).
shape=(--provider webgpu --dim 4096 --layers 32 --heads 32 --vocab 32000 --streams 16 --capacity 2056
  --contexts 512,2048 --kv float16 --sections steps --reps 5 --general-reps 1 --json)
# DECODER_CHECK_SMALL=1: the same steps on a small model, to try the script on a CPU machine.
[[ ${DECODER_CHECK_SMALL:-0} == 1 ]] && shape=(--provider webgpu --dim 256 --layers 2 --heads 4 --vocab 8000
  --streams 4 --capacity 600 --contexts 64,512 --kv float16 --sections steps --reps 2 --json)
note "building int4 and fp16 in parallel (CPU)"
bench "${shape[@]}" --format int4 --model-dir models/int4 --build-only >build-int4.log 2>&1 &
p1=$!
bench "${shape[@]}" --format fp16 --half-compute --model-dir models/fp16 --build-only >build-fp16.log 2>&1 &
p2=$!
wait $p1; s1=$?
wait $p2; s2=$?
cat build-int4.log build-fp16.log
du -sh models/* || true
[[ $s1 == 0 && $s2 == 0 ]] || { echo "a build failed (int4 $s1, fp16 $s2)"; exit 1; }

for format in int4 fp16; do
  note "measuring $format"
  extra=()
  [[ $format == fp16 ]] && extra=(--half-compute)
  # DECODER_CHECK_PROFILE=1: also onnxruntime's profile of two one-row int4 steps (a session of its
  # own: about 40 s more on the H200, past the 8 minutes the full check took on 2026-12-04)
  [[ $format == int4 && ${DECODER_CHECK_PROFILE:-0} == 1 ]] && extra=(--profile-steps 2)
  bench "${shape[@]}" --format "$format" "${extra[@]}" --model-dir "models/$format" | tee "measure-$format.log"
  tail -1 "measure-$format.log" | grep '^{' >"$OUT/$format.json" || echo "no JSON from the $format run"
  # DECODER_CHECK_CAPTURE=1: the 32-layer int4 step graph with and without graph capture as well
  [[ $format == int4 && ${DECODER_CHECK_CAPTURE:-0} == 1 ]] && capture_probe models/int4/decoder.step.onnx 32 int4
  rm -rf "models/$format"
done
note "done"
