# CI only: a stand-in for the official node:<version>-bookworm-slim image, made on a build machine
# that cannot pull images (tools/docker/ci-images.sh writes its context: the machine's own node
# binary and C headers, its npm, and its CA bundle). The images are built FROM it with
# --build-arg NODE_IMAGE=...; nothing is ever tagged under an official name, and released images
# use the official base.
#
# Like the official image: Debian bookworm (debootstrap --variant=minbase, imported as BASE), node
# in /usr/local/bin, its headers in /usr/local/include/node, npm in /usr/local/lib/node_modules, a
# "node" user with uid/gid 1000.
# Unlike it: the trust store. npm on the build machines reaches the registry through a proxy whose
# certificate only the machine's bundle carries; without it, npm ci inside a build fails with
# SELF_SIGNED_CERT_IN_CHAIN. So the bundle is copied in and NODE_EXTRA_CA_CERTS points at it.
ARG BASE=ibllm-ci/debian:bookworm
FROM ${BASE}
ARG NODE_VERSION
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY node /usr/local/bin/node
# Node's C headers, where the official image has them (native addons compile against node_api.h).
COPY include-node /usr/local/include/node
COPY npm /usr/local/lib/node_modules/npm
RUN set -eu; \
    test "$(node --version)" = "v${NODE_VERSION}"; \
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \
    groupadd --gid 1000 node; \
    useradd --uid 1000 --gid node --shell /bin/bash --create-home node; \
    npm --version
ENV NODE_VERSION=${NODE_VERSION} \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    npm_config_cafile=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
