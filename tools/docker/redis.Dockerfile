# CI only: Redis for the compose stack (docker-compose.ci.yml), made from Debian's redis-server
# package because no image registry is reachable from the build machines (docker-compose.yml uses
# the official redis image). Runs as Debian's "redis" user with its data in /data (the AOF), which
# the compose file mounts as a volume; the command line comes from docker-compose.yml.
ARG BASE=ibllm-ci/debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no"]
