# syntax=docker/dockerfile:1.7
#
# HAM in a container: one `ham` binary with the bundled plugins and the browser app
# embedded, on a small Debian runtime, as a non-root user with a read-only root.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/ham-app/ham:0.1.0 .
#
# The builder stages run on the build machine's platform and cross-compile the host
# for the target platform (the WebAssembly plugins and the browser app are the same
# on every platform), so an arm64 image builds without emulation.
# See docs/operations.md ("Container image").

# --- The browser app (host/web): platform-independent static files. ---
FROM --platform=$BUILDPLATFORM node:22.12.0-bookworm-slim AS web
WORKDIR /src/host/web
# Dependencies first: this layer is reused until package-lock.json changes.
COPY host/web/package.json host/web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY host/web/ ./
RUN npm run build

# --- Cargo manifests only, with empty sources. ---
# Copying the whole tree here and keeping only what `cargo fetch` reads (manifests,
# the lock file, and every .rs file emptied, since declared targets must exist)
# gives a layer whose content changes only when a manifest or the file list does,
# so the `COPY --from=manifests` below and the download after it stay cached when
# only sources change.
FROM --platform=$BUILDPLATFORM debian:12.12-slim AS manifests
WORKDIR /src
COPY . .
RUN rm -rf host/web \
    && find . -type f ! -name Cargo.toml ! -name Cargo.lock ! -name '*.rs' -delete \
    && find . -type f -name '*.rs' -exec truncate -s 0 {} + \
    && find . -type d -empty -delete

# --- The host, cross-compiled for the target platform. ---
FROM --platform=$BUILDPLATFORM rust:1.95.0-slim-bookworm AS build
ARG TARGETARCH
WORKDIR /src
# A C cross compiler for the target (ring, the bundled SQLite and mimalloc have C parts).
RUN case "$TARGETARCH" in \
        amd64) gcc=gcc-x86-64-linux-gnu; libc=libc6-dev-amd64-cross ;; \
        arm64) gcc=gcc-aarch64-linux-gnu; libc=libc6-dev-arm64-cross ;; \
        *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac \
    && apt-get update \
    && apt-get install -y --no-install-recommends "$gcc" "$libc" \
    && rm -rf /var/lib/apt/lists/*
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# The toolchain rust-toolchain.toml pins (with wasm32-wasip2 for the plugins).
COPY rust-toolchain.toml ./
RUN rustup toolchain install \
    && rustup target add x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
# Manifests first, then sources: crates are downloaded in a layer of their own.
COPY --from=manifests /src/ ./
RUN cargo fetch --locked
COPY wit/ wit/
COPY migrations/ migrations/
COPY crates/ crates/
COPY plugins/ plugins/
COPY examples/ examples/
COPY tests/ tests/
COPY host/Cargo.toml host/build.rs host/
COPY host/src/ host/src/
# The benches are declared in the manifest, so their files must exist; the
# host's tests and examples are not needed to build `ham`.
COPY host/benches/ host/benches/
COPY host/web/ host/web/
COPY --from=web /src/host/web/dist/ host/web/dist/
# The app was built in the `web` stage: embed its dist without npm.
ENV HAM_SKIP_WEB_BUILD=1
# Compiled dependencies persist in a cache mount between builds (one per target).
RUN --mount=type=cache,target=/src/target,id=ham-target-$TARGETARCH,sharing=locked \
    case "$TARGETARCH" in \
        amd64) target=x86_64-unknown-linux-gnu ;; \
        arm64) target=aarch64-unknown-linux-gnu ;; \
    esac \
    && cargo build --release --locked -p ham-host --target "$target" \
    && install -D "target/$target/release/ham" /out/ham

# --- Runtime. ---
FROM debian:12.12-slim AS runtime
# CA certificates for Strava and the LLM provider over HTTPS; nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 ham \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin ham \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /out/ham /usr/local/bin/ham
# The data dir holds the SQLite database (the default) and the compiled-component
# cache; mount a volume there. Everything else may be read-only.
ENV HAM_ADDR=0.0.0.0:3001 \
    HAM_DATA_DIR=/data
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 3001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["ham", "healthcheck"]
ENTRYPOINT ["ham"]
CMD ["serve"]
