#!/bin/sh
# Copies what one built service needs at run time into OUT, which becomes /app in its image:
# package.json, node_modules (workspace links kept: they point into libs/), libs/* without their
# sources (the preprocessing addon's built modules kept), services/<service>/{package.json,dist} and healthcheck.mjs. Models are never copied:
# they are mounted at run time (MODEL_REPO).
#   sh deploy/docker/stage-service.sh <service> <out>
# tools/deploy/test/dockerfiles.int-spec.ts stages a service with it and boots the result.
set -eu
usage='usage: stage-service.sh <service> <out>'
service="${1:?$usage}"
out="${2:?$usage}"
if [ ! -f "services/$service/dist/main.js" ]; then
  echo "stage-service: services/$service/dist/main.js is missing; build it first (npx tsc -b services/$service)" >&2
  exit 1
fi

mkdir -p "$out/services/$service"
cp package.json "$out/"
cp -a node_modules "$out/node_modules"
cp -a libs "$out/libs"
# Run-time assets stay (libs/proto/descriptors, libs/preprocess/assets); sources and build info go.
find "$out/libs" -mindepth 2 -maxdepth 2 \( -name src -o -name test -o -name 'tsconfig*.json' \) \
  -exec rm -rf {} +
# The preprocessing addon: its built modules (native/build) stay, its C sources go.
find "$out/libs/preprocess/native" -maxdepth 1 -type f -delete
cp -a "services/$service/package.json" "services/$service/dist" "$out/services/$service/"
if [ -d "services/$service/web/dist" ]; then
  # The gateway's playground bundle (it reads services/gateway/web/dist beside its dist/).
  mkdir -p "$out/services/$service/web"
  cp -a "services/$service/web/dist" "$out/services/$service/web/"
fi
if [ -d "services/$service/node_modules" ]; then
  cp -a "services/$service/node_modules" "$out/services/$service/"
fi
find "$out/libs" "$out/services" -name '*.tsbuildinfo' -not -path '*/node_modules/*' -delete
cp deploy/docker/healthcheck.mjs "$out/healthcheck.mjs"
