#!/usr/bin/env bash
# Prepares .gpu-carry/ for tools/gpu/decoder-check.sh: everything the GPU machine needs that it
# does not have (it has no Node.js, no npm and reaches no registry), under the device tool's 64 MiB:
#   bench.mjs          bench/decoder/run.mjs bundled with the decoder builder and session driver
#   node.xz            this machine's Node.js binary, xz-compressed
#   onnxruntime-node/  the binding for linux x64 (libonnxruntime.so.1 xz-compressed) and its JS
#   onnxruntime-common/
#   gl/*.deb           Debian's Vulkan loader and glvnd (the NVIDIA ICD comes with the machine's driver)
#   graph-capture-probe the step graph under onnxruntime's WebGPU graph capture (tools/gpu/graph-capture)
# Run from the repository root after `npm ci && npm run build`; then, with the device tool:
#   run(command: "bash tools/gpu/decoder-check.sh", carry: [".gpu-carry"], timeout_s: 580)
set -euo pipefail
cd "$(dirname "$0")/../.."
carry=.gpu-carry
rm -rf "$carry"
mkdir -p "$carry/onnxruntime-node/bin/napi-v6/linux/x64" "$carry/onnxruntime-common"
npx --no-install rolldown -c tools/gpu/rolldown.config.mjs --file "$carry/bench.mjs" >/dev/null
xz -T0 -6 -c "$(command -v node)" >"$carry/node.xz"
ort=node_modules/onnxruntime-node
cp -r "$ort/package.json" "$ort/dist" "$carry/onnxruntime-node/"
cp "$ort/bin/napi-v6/linux/x64/onnxruntime_binding.node" "$carry/onnxruntime-node/bin/napi-v6/linux/x64/"
xz -T0 -6 -c "$ort/bin/napi-v6/linux/x64/libonnxruntime.so.1" >"$carry/onnxruntime-node/libonnxruntime.so.1.xz"
cp -r node_modules/onnxruntime-common/package.json node_modules/onnxruntime-common/dist "$carry/onnxruntime-common/"
gcc -O2 -Wall -Wextra -o "$carry/graph-capture-probe" tools/gpu/graph-capture/probe.c -ldl
# The NVIDIA Vulkan ICD (libGLX_nvidia.so.0) needs glvnd's libraries as well as the loader.
mkdir -p "$carry/gl"
(cd "$carry/gl" && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1) ||
  echo "prepare: apt-get download of the Vulkan/glvnd packages failed: the check relies on what the GPU machine has" >&2
du -sh "$carry"
du -sh "$carry"/* | sort -h
