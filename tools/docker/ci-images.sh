#!/usr/bin/env bash
# CI image tier (issue #20): builds every service image on a private Docker engine and runs it.
#
#   tools/docker/ci-images.sh [--no-compose] [--keep-daemon] [--services a,b,...]
#
# 1. Starts a private dockerd (data under $IBLLM_DOCKER_DIR, default /tmp/ibllm-docker; socket
#    $IBLLM_DOCKER_DIR/docker.sock; no iptables, no default bridge), installing Debian's docker.io,
#    debootstrap and docker-compose when they are missing. A daemon already answering on that
#    socket is reused and left running.
# 2. Makes the base images, since no registry is reachable: ibllm-ci/debian:bookworm from
#    `debootstrap --variant=minbase`, and ibllm-ci/node:<version>-bookworm-slim from it plus this
#    machine's node, npm and CA bundle (tools/docker/node-base.Dockerfile). Kept in the daemon's data
#    root, so later runs on the same machine reuse them.
# 3. Builds every service image from deploy/docker/Dockerfile with --build-arg SERVICE=<name>,
#    --build-arg NODE_IMAGE=<that image> and --network host. The build stage's first step
#    (build-service.sh --workspace) and the per-service stages of that file are the same in every
#    image: they run for the first image and come from the build cache for the others.
# 4. Checks each image: USER and `id` say uid 1000, the container runs with a read-only root file
#    system (a write outside /tmp fails with EROFS), its HEALTHCHECK turns healthy, the ibllm_media
#    preprocessing addon loads where the service uses it, SIGTERM drains and the exit status is 0;
#    prints its size.
# 5. Unless --no-compose: docker-compose.yml + docker-compose.ci.yml up on the built images, the
#    README's curl (chat completion, streamed) and a 20-item embed batch job through the gateway
#    container's published ports, then `down -v`, and checks that no container, volume or network
#    of the project is left.
#
# Every check prints one line starting with "ci-images:"; the last line is
# "ci-images: ok ..." or "ci-images: FAILED ..." (exit status 1).
# The build context is the repository root unless IBLLM_CI_CONTEXT names another folder (e.g. a
# `git archive` export, to build the committed tree only).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work="${IBLLM_DOCKER_DIR:-/tmp/ibllm-docker}"
context="${IBLLM_CI_CONTEXT:-$repo}"
sock="$work/docker.sock"
export DOCKER_HOST="unix://$sock"
# The classic builder: its layer cache is what shares the workspace step between the images.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
tag=ci
project="ibllm-ci"
debian_image="ibllm-ci/debian:bookworm"
redis_image="ibllm-ci/redis:bookworm"
node_version="$(node -p process.versions.node)"
node_image="ibllm-ci/node:${node_version}-bookworm-slim"
all_services=(gateway encoder-vision encoder-audio encoder-text encoder-point bind decoder retriever batch-worker)

compose_too=1
keep_daemon=0
services=("${all_services[@]}")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-compose) compose_too=0 ;;
    --keep-daemon) keep_daemon=1 ;;
    --services)
      IFS=, read -r -a services <<<"${2:?--services needs a comma-separated list}"
      shift
      ;;
    *)
      echo "usage: tools/docker/ci-images.sh [--no-compose] [--keep-daemon] [--services a,b,...]" >&2
      exit 2
      ;;
  esac
  shift
done
if [[ $compose_too == 1 && ${#services[@]} != "${#all_services[@]}" ]]; then
  echo "ci-images: the compose stack needs every image; add --no-compose to build a few" >&2
  exit 2
fi

started=$SECONDS
step_name="setup"
step() {
  step_name="$*"
  printf '\n==> [ci-images %4ss] %s\n' "$((SECONDS - started))" "$*"
}
say() { echo "ci-images: $*"; }
mkdir -p "$work/logs"

# --- the private daemon ----------------------------------------------------------------------
own_daemon=0
stop_daemon() {
  if [[ $own_daemon == 1 && $keep_daemon == 0 && -f "$work/dockerd.pid" ]]; then
    local pid
    pid="$(cat "$work/dockerd.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "ci-images: dockerd ($pid) did not stop within 30 s" >&2
    else
      # dockerd leaves its default network namespace mounted under the exec root.
      awk -v root="$work/exec/" 'index($2, root) == 1 { print $2 }' /proc/mounts | xargs -r -n1 umount
      echo "ci-images: private dockerd stopped"
    fi
  fi
}
compose_project_up=0
finish() {
  local status=$?
  set +e
  if [[ $compose_project_up == 1 ]]; then compose down -v --remove-orphans >/dev/null 2>&1; fi
  docker ps -aq --filter label=ibllm-ci-check | xargs -r "${docker_bin:-docker}" rm -f >/dev/null 2>&1
  stop_daemon
  if [[ $status != 0 ]]; then
    echo "ci-images: FAILED in step '$step_name' (exit $status) after $((SECONDS - started)) s; logs in $work/logs"
  fi
  exit "$status"
}
trap finish EXIT
# A signal (e.g. CI's timeout) still cleans up: the EXIT trap runs on these exits.
trap 'exit 143' TERM
trap 'exit 130' INT

apt_updated=0
apt_install() {
  if [[ $apt_updated == 0 ]]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

step "tools: dockerd, docker, debootstrap, docker-compose"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [[ ${#missing[@]} -gt 0 ]]; then apt_install "${missing[@]}"; fi
# Debian's client matches Debian's daemon; another docker on PATH may be a newer CLI.
docker_bin=/usr/bin/docker
[[ -x $docker_bin ]] || docker_bin="$(command -v docker)"
docker() { "$docker_bin" "$@"; }
dockerd --version
docker-compose version --short

# The builds need room on the file system of the data root: the workspace stage, nine images and
# the compose stack's containers (measured: see min_free_gib). A machine short of it fails here, named,
# instead of with ENOSPC in the middle of some image's build.
min_free_gib="${IBLLM_DOCKER_MIN_FREE_GIB:-12}"
mkdir -p "$work"
free_gib="$(df -Pk "$work" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')"
if ((free_gib < min_free_gib)); then
  say "only $free_gib GiB free on the file system of $work (df -h: $(df -h "$work" | awk 'NR == 2 { print $1 }'));" \
    "the image tier needs $min_free_gib GiB: free space there, or point IBLLM_DOCKER_DIR at a roomier disk"
  exit 1
fi
say "$free_gib GiB free under $work (needs $min_free_gib)"

step "private dockerd on $sock"
if docker version >/dev/null 2>&1; then
  say "a daemon already answers on $sock: reusing it"
else
  mkdir -p "$work/data" "$work/exec"
  rm -f "$sock"
  dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
    --storage-driver overlay2 --iptables=false --bridge=none --host "unix://$sock" \
    >"$work/logs/dockerd.log" 2>&1 &
  own_daemon=1
  for _ in $(seq 1 120); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version >/dev/null 2>&1 || {
    tail -20 "$work/logs/dockerd.log"
    exit 1
  }
fi
docker version --format 'ci-images: dockerd {{.Server.Version}}, storage {{.Server.Os}}/{{.Server.Arch}}'

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
mib() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%d MiB", $1 / 1048576 }'; }

step "base image $debian_image (debootstrap --variant=minbase bookworm)"
if have_image "$debian_image"; then
  say "$debian_image: present ($(mib "$debian_image"))"
else
  rootfs="$work/rootfs-bookworm"
  if [[ ! -f "$rootfs/.ibllm-complete" ]]; then
    rm -rf "$rootfs"
    t0=$SECONDS
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/logs/debootstrap.log" 2>&1 || {
      tail -20 "$work/logs/debootstrap.log"
      exit 1
    }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    touch "$rootfs/.ibllm-complete"
    say "debootstrap: $((SECONDS - t0)) s"
  fi
  tar -C "$rootfs" --exclude=./.ibllm-complete -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$debian_image" >/dev/null
  say "$debian_image: imported ($(mib "$debian_image"))"
fi

step "base image $node_image (the Debian image + this machine's node, its headers, npm and CA bundle)"
# An image made before it carried Node's headers (the ibllm_media addon compiles against them, as
# on the official node image) is made again.
if have_image "$node_image" &&
  docker run --rm "$node_image" test -f /usr/local/include/node/node_api.h >/dev/null 2>&1; then
  say "$node_image: present ($(mib "$node_image"))"
else
  node_context="$work/node-context"
  rm -rf "$node_context"
  mkdir -p "$node_context"
  node_bin="$(readlink -f "$(command -v node)")"
  cp "$node_bin" "$node_context/node"
  cp -a "$(dirname "$(dirname "$node_bin")")/include/node" "$node_context/include-node"
  npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
  cp -a "$npm_dir" "$node_context/npm"
  cp /etc/ssl/certs/ca-certificates.crt "$node_context/ca-certificates.crt"
  docker build --network host -q -f tools/docker/node-base.Dockerfile \
    --build-arg BASE="$debian_image" --build-arg NODE_VERSION="$node_version" \
    -t "$node_image" "$node_context" >/dev/null
  rm -rf "$node_context"
  say "$node_image: built ($(mib "$node_image"))"
fi

# --- the service images ------------------------------------------------------------------------
revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
declare -A build_seconds size_of
for service in "${services[@]}"; do
  step "build imagebind-llm/$service:$tag"
  t0=$SECONDS
  log="$work/logs/build-$service.log"
  if ! docker build --network host -f "$context/deploy/docker/Dockerfile" --build-arg SERVICE="$service" \
    --build-arg NODE_IMAGE="$node_image" --build-arg REVISION="$revision" \
    -t "imagebind-llm/$service:$tag" "$context" >"$log" 2>&1; then
    tail -40 "$log"
    say "$service: build FAILED (log: $log)"
    exit 1
  fi
  build_seconds[$service]=$((SECONDS - t0))
  size_of[$service]="$(mib "imagebind-llm/$service:$tag")"
  say "$service: built in ${build_seconds[$service]} s, size ${size_of[$service]}"
done

# --- per-image checks ----------------------------------------------------------------------------
# The CLI of the tree the images were built from (built: `npm run build`), so that the demo models
# and the batch client match the services' code.
ibllm=(node "$context/tools/cli/bin/ibllm.js")
models="$work/models/demo"
step "demo model repository for the model services ($models)"
# Made again whenever the model builder or the CLI changed (a stale repository would not load).
stamp="$(find "$context/libs/model-builder/dist" "$context/tools/cli/dist" -type f -name '*.js' -print0 |
  sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$models/.ibllm-complete" 2>/dev/null)" != "$stamp" ]]; then
  rm -rf "$models"
  "${ibllm[@]}" models demo --out "$models" >"$work/logs/models-demo.log" 2>&1 || {
    tail -20 "$work/logs/models-demo.log"
    exit 1
  }
  echo "$stamp" >"$models/.ibllm-complete"
fi
chmod -R a+rX "$models"
say "model repository: $(du -sh "$models" | cut -f1)"

check_net="ibllm-ci-check"
docker network inspect "$check_net" >/dev/null 2>&1 || docker network create "$check_net" >/dev/null

random_key() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# Extra `docker run` arguments that let a service start alone: its settings and its dependencies.
run_args_for() {
  case "$1" in
    gateway)
      # Alone, the gateway runs standalone (every service in its process); keys are required on 0.0.0.0.
      echo "-e GATEWAY_MODE=standalone -e GATEWAY_MODEL_REPO=/models -e GATEWAY_API_KEYS=ci:$(random_key) -v $models:/models:ro"
      ;;
    retriever) echo "-e RETRIEVER_DRIVER=embedded -v $models:/models:ro -e RETRIEVER_SEED_FROM_REPO=/models --tmpfs /data:uid=1000,gid=1000" ;;
    batch-worker) echo "-e REDIS_URL=redis://ibllm-ci-check-redis:6379 -e GATEWAY_TARGET=127.0.0.1:50051" ;;
    *) echo "-v $models:/models:ro" ;;
  esac
}

wait_healthy() {
  local name="$1" limit="$2" state=""
  for _ in $(seq 1 "$limit"); do
    state="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")"
    case "$state" in
      healthy) return 0 ;;
      unhealthy | none) break ;;
    esac
    if [[ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]]; then break; fi
    sleep 1
  done
  echo "ci-images: $name is '$state'; its last health probes and log lines:" >&2
  docker inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' "$name" 2>/dev/null | tail -5 >&2 || true
  docker logs --tail 30 "$name" >&2 2>&1 || true
  return 1
}

redis_up=0
start_check_redis() {
  if [[ $redis_up == 1 ]]; then return; fi
  if ! have_image "$redis_image"; then
    docker build --network host -q -f tools/docker/redis.Dockerfile --build-arg BASE="$debian_image" \
      -t "$redis_image" tools/docker >/dev/null
  fi
  docker run -d --name ibllm-ci-check-redis --label ibllm-ci-check --network "$check_net" "$redis_image" \
    redis-server --protected-mode no --save "" --appendonly no >/dev/null
  redis_up=1
}

declare -A verdict
for service in "${services[@]}"; do
  step "check imagebind-llm/$service:$tag"
  image="imagebind-llm/$service:$tag"
  name="ibllm-ci-check-$service"
  docker rm -f "$name" >/dev/null 2>&1 || true
  [[ $service == batch-worker ]] && start_check_redis

  user="$(docker image inspect -f '{{.Config.User}}' "$image")"
  [[ $user == 1000:1000 ]] || { say "$service: USER is '$user', not 1000:1000"; exit 1; }
  # The image's own HEALTHCHECK is what runs below (only its interval is shortened, to 2 s).
  probe="$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$image")"
  [[ $probe == *'"/app/healthcheck.mjs"'* ]] || { say "$service: HEALTHCHECK is $probe"; exit 1; }
  # SERVICE picked this service's stage of deploy/docker/Dockerfile (its entry point and title).
  cmd="$(docker image inspect -f '{{json .Config.Cmd}}' "$image")"
  title="$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.title"}}' "$image")"
  [[ $cmd == "[\"node\",\"services/$service/dist/main.js\"]" && $title == "imagebind-llm-$service" ]] ||
    { say "$service: CMD $cmd, title '$title'"; exit 1; }
  # shellcheck disable=SC2046 # the extra arguments are words on purpose
  docker run -d --name "$name" --label ibllm-ci-check --network "$check_net" \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges:true \
    --health-interval 2s \
    $(run_args_for "$service") "$image" >/dev/null
  t0=$SECONDS
  wait_healthy "$name" 240 || { say "$service: never turned healthy"; exit 1; }
  healthy_after=$((SECONDS - t0))
  uid="$(docker exec "$name" id -u)"
  [[ $uid == 1000 ]] || { say "$service: runs as uid $uid"; exit 1; }
  [[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$name")" == true ]] || exit 1
  write="$(docker exec "$name" node -e "try { require('fs').writeFileSync('/app/.probe', 'x'); console.log('written') } catch (e) { console.log(e.code) }")"
  [[ $write == EROFS ]] || { say "$service: a write to /app gave '$write', not EROFS"; exit 1; }
  tmp_write="$(docker exec "$name" node -e "require('fs').writeFileSync('/tmp/.probe', 'x'); console.log('ok')")"
  [[ $tmp_write == ok ]] || { say "$service: /tmp is not writable"; exit 1; }
  # The ibllm_media addon loads where the service preprocesses with it (else it would fall back,
  # correct but several times slower): both modules for images + video and for compressed audio,
  # the core one for points.
  # Checked key by key: the status object also names the resize loop and the allocator state, and
  # its key order is not part of the contract.
  case "$service" in
    encoder-vision) want_native='image:true video:true audio:true point:true' ;;
    encoder-audio) want_native='image:true video:true audio:true point:true' ;;
    encoder-point) want_native='image:true video:false audio:false point:true' ;;
    *) want_native='' ;;
  esac
  if [[ -n $want_native ]]; then
    native="$(docker exec "$name" node -p "JSON.stringify(require('/app/libs/preprocess/dist/index.js').mediaNativeStatus())")"
    for field in $want_native; do
      [[ $native =~ \"${field%%:*}\":${field#*:}[,}] ]] || { say "$service: the ibllm_media addon: $native (want ${field%%:*}=${field#*:})"; exit 1; }
    done
    say "$service: ibllm_media addon $native"
  fi

  t1=$SECONDS
  docker kill --signal TERM "$name" >/dev/null
  code="$(timeout 60 docker wait "$name" || echo timeout)"
  drained_after=$((SECONDS - t1))
  if [[ $code != 0 ]]; then
    docker logs --tail 20 "$name" 2>&1 | sed 's/^/    /'
    say "$service: SIGTERM gave exit $code"
    exit 1
  fi
  docker rm "$name" >/dev/null
  verdict[$service]="uid 1000, read-only root (EROFS), healthy after ${healthy_after} s, SIGTERM exit 0 after ${drained_after} s, size ${size_of[$service]}"
  say "$service: ${verdict[$service]}"
done
docker ps -aq --filter label=ibllm-ci-check | xargs -r "$docker_bin" rm -f >/dev/null
docker network rm "$check_net" >/dev/null

# --- the compose stack ---------------------------------------------------------------------------
compose() {
  docker-compose -p "$project" -f "$repo/docker-compose.yml" -f "$repo/docker-compose.ci.yml" "$@"
}
if [[ $compose_too == 1 ]]; then
  step "compose: up on the built images (docker-compose.yml + docker-compose.ci.yml)"
  have_image "$redis_image" || docker build --network host -q -f tools/docker/redis.Dockerfile \
    --build-arg BASE="$debian_image" -t "$redis_image" tools/docker >/dev/null
  client_key="$(random_key)"
  worker_key="$(random_key)"
  export IMAGE_TAG=$tag MODELS_DIR="$models" GATEWAY_API_KEYS="ci:$client_key" BATCH_WORKER_API_KEY="$worker_key"
  export CI_REDIS_IMAGE="$redis_image" CI_DEBIAN_IMAGE="$debian_image"
  compose config -q
  compose_project_up=1
  t0=$SECONDS
  # Waits for the health conditions of depends_on: the gateway starts once every service is healthy.
  compose up -d --no-build >"$work/logs/compose-up.log" 2>&1 || {
    cat "$work/logs/compose-up.log"
    compose ps
    compose logs --tail 20
    exit 1
  }
  gateway="$(compose ps -q gateway)"
  wait_healthy "$gateway" 240 || { compose logs --tail 20; exit 1; }
  worker="$(compose ps -q batch-worker)"
  wait_healthy "$worker" 240 || { compose logs --tail 20 batch-worker; exit 1; }
  say "compose: $(compose ps --services | wc -l) services up, gateway healthy after $((SECONDS - t0)) s"

  step "compose: the README's curl through the gateway (127.0.0.1:8080)"
  reply="$work/logs/chat.txt"
  curl -sS -N --fail-with-body --max-time 120 http://127.0.0.1:8080/v1/chat/completions \
    -H "authorization: Bearer $client_key" -H 'content-type: application/json' -d '{
    "model": "imagebind-llm", "stream": true, "max_tokens": 32,
    "messages": [{"role": "user", "content": [
      {"type": "text", "text": "Describe the scene."},
      {"type": "text", "text": "A dog playing on the beach.", "imagebind_modality": true}]}]}' >"$reply"
  chunks="$(grep -c '^data: {' "$reply" || true)"
  grep -q '^data: \[DONE\]' "$reply" || { tail -5 "$reply"; say "compose: the stream did not end with [DONE]"; exit 1; }
  [[ $chunks -gt 1 ]] || { cat "$reply"; say "compose: no streamed chunks"; exit 1; }
  say "compose: chat completion streamed $chunks chunks and [DONE]"

  step "compose: a 20-item embed batch job through the gateway (127.0.0.1:50051) and the batch worker"
  manifest="$work/logs/batch20.jsonl"
  for i in $(seq 0 19); do
    echo "{\"id\":\"item-$i\",\"inputs\":[{\"modality\":\"text\",\"text\":\"item number $i\"}]}"
  done >"$manifest"
  t0=$SECONDS
  job="$("${ibllm[@]}" batch submit --gateway 127.0.0.1:50051 --api-key "$client_key" --kind embed \
    --manifest "$manifest" --client-token "ci-$RANDOM-$SECONDS" --wait 2>"$work/logs/batch-submit.log")" || {
    cat "$work/logs/batch-submit.log"
    compose logs --tail 20 gateway batch-worker
    say "compose: the batch job did not succeed"
    exit 1
  }
  job="$(tail -1 <<<"$job")"
  "${ibllm[@]}" batch results "$job" --gateway 127.0.0.1:50051 --api-key "$client_key" \
    --out "$work/logs/batch20-results.jsonl" >/dev/null
  results="$(wc -l <"$work/logs/batch20-results.jsonl")"
  [[ $results == 20 ]] || { say "compose: $results results, not 20"; exit 1; }
  say "compose: batch job $job SUCCEEDED, 20 results, in $((SECONDS - t0)) s"

  step "compose: stop (SIGTERM to every service, the gateway's dependants first)"
  compose stop -t 45 >"$work/logs/compose-stop.log" 2>&1
  for service in "${all_services[@]}"; do
    id="$(compose ps -q "$service")"
    code="$(docker inspect -f '{{.State.ExitCode}}' "$id")"
    [[ $code == 0 ]] || {
      docker logs --tail 20 "$id" 2>&1 | sed 's/^/    /'
      say "compose: $service exited $code on SIGTERM"
      exit 1
    }
  done
  say "compose: every service drained and exited 0 on SIGTERM"

  step "compose: down -v"
  compose down -v --remove-orphans >"$work/logs/compose-down.log" 2>&1
  compose_project_up=0
  left="$(docker ps -aq --filter "label=com.docker.compose.project=$project" | wc -l)"
  volumes="$(docker volume ls -q --filter "label=com.docker.compose.project=$project" | wc -l)"
  networks="$(docker network ls -q --filter "label=com.docker.compose.project=$project" | wc -l)"
  [[ "$left$volumes$networks" == 000 ]] || {
    say "compose: down left $left containers, $volumes volumes, $networks networks"
    exit 1
  }
  say "compose: down left no container, volume or network"
fi

step "summary"
# Images and build cache of earlier runs (now untagged) go; this run's images and layers stay.
docker image prune -f >/dev/null
say "data root: $(du -sh "$work/data" 2>/dev/null | cut -f1)"
for service in "${services[@]}"; do say "$service: built in ${build_seconds[$service]} s; ${verdict[$service]}"; done
say "ok: ${#services[@]} images built and checked$([[ $compose_too == 1 ]] && echo ', compose stack answered and went down clean') in $((SECONDS - started)) s"
