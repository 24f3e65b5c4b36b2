#!/bin/sh
# The build stage of every image: install, compile, prune, then stage one service's run-time tree in
# $OUT. Shared by deploy/docker/Dockerfile (CPU) and deploy/docker/Dockerfile.gpu, so the build
# logic lives here once and the Dockerfiles only declare what differs (service, ports, base image).
#   sh deploy/docker/build-service.sh --workspace
#   sh deploy/docker/build-service.sh <service> [cpu|cuda12]
# --workspace installs, compiles every service and prunes the dev dependencies. The Dockerfiles run
# it as a step of its own before the per-service one: that step (same base, same context, same
# command) is identical in every image, so a machine that builds them all runs it once and takes
# its layer from the build cache afterwards (tools/docker/ci-images.sh). <service> then only stages
# that service; run without --workspace first, it installs and compiles that one service itself.
# cuda12 also installs onnxruntime-node's CUDA 12 execution provider (the GPU images).
set -eu
usage='usage: build-service.sh --workspace | <service> [cpu|cuda12]'
service="${1:?$usage}"
# Left by --workspace: everything is installed, compiled and pruned.
marker=.workspace-built
variant="${2:-cpu}"
out="${OUT:-/out}"
case "$variant" in
  cpu | cuda12) ;;
  *) echo "build-service: the variant must be cpu or cuda12, not '$variant'" >&2; exit 1 ;;
esac
if [ "$service" != --workspace ] && [ ! -f "services/$service/package.json" ]; then
  echo "build-service: there is no service '$service' under services/" >&2
  exit 1
fi

# No install scripts, whatever npm the base image carries (npm 10 would run them all): the same
# policy as package.json's allowScripts. The native packages (onnxruntime-node's CPU provider,
# usearch, sharp, msgpackr-extract) load prebuilt binaries that ship inside their packages, and
# onnxruntime-node's own script would only fetch CUDA files, which cuda12 installs explicitly below.
if [ -f "$marker" ]; then
  echo "build-service: the workspace is installed, compiled and pruned already (--workspace)"
else
  # The ibllm_media preprocessing addon (libs/preprocess/native): the system C compiler against
  # libjpeg-turbo and FFmpeg's headers. Required here: an image must not fall back silently to the
  # slower portable path. The run-time stages install the matching libraries (libjpeg62-turbo, and
  # FFmpeg's through the ffmpeg package where video is decoded).
  if ! command -v cc >/dev/null 2>&1 ||
    ! printf '#include <stddef.h>\n#include <stdio.h>\n#include <jpeglib.h>\n' | cc -E -x c - >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev pkg-config \
      libjpeg62-turbo-dev libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
    rm -rf /var/lib/apt/lists/*
  fi
  IBLLM_NATIVE_REQUIRED=1 node libs/preprocess/native/build.mjs
  npm ci --ignore-scripts --no-audit --no-fund
  if [ "$service" = --workspace ]; then
    npx --no-install tsc -b tsconfig.build.json
  else
    npx --no-install tsc -b "services/$service"
  fi
  if [ "$service" = gateway ] || [ "$service" = --workspace ]; then
    # The web playground the gateway serves at / (vite is a dev dependency: build before the prune).
    npx --no-install vite build services/gateway/web --logLevel warn
  fi
  npm prune --omit=dev --ignore-scripts --no-audit --no-fund
fi

ort="$(node -p "require('node:path').dirname(require.resolve('onnxruntime-node/package.json', { paths: ['libs/inference'] }))")"
platform="linux/$(node -p process.arch)"
# onnxruntime-node carries binaries for every OS and CPU (about 300 MB): keep this platform's only.
for dir in "$ort"/bin/napi-v6/*/*; do
  if [ "$dir" != "$ort/bin/napi-v6/$platform" ]; then rm -rf "$dir"; fi
done

if [ "$service" = --workspace ]; then
  touch "$marker"
  exit 0
fi

if [ "$variant" = cuda12 ]; then
  # onnxruntime-node's installer downloads Microsoft.ML.OnnxRuntime.Gpu.Linux (the same version as
  # the package, built for CUDA 12.x + cuDNN 9.x) from NuGet and puts the provider libraries next to
  # the binding. ONNXRUNTIME_NODE_INSTALL wins over the --onnxruntime-node-install=cuda12 flag, so
  # the variable is what selects cuda12 here (the stage's ENV sets it to skip).
  ONNXRUNTIME_NODE_INSTALL=cuda12 node "$ort/script/install.js"
  for lib in libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
    if [ ! -s "$ort/bin/napi-v6/$platform/$lib" ]; then
      echo "build-service: onnxruntime-node's installer did not install $lib" >&2
      exit 1
    fi
  done
fi

sh deploy/docker/stage-service.sh "$service" "$out"
