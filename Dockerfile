# SPDX-License-Identifier: ISC
#
# pgmux container image: a two-stage build on Debian 12 (bookworm) slim.
#
#   docker build -t pgmux .          (or: podman build --format docker -t pgmux .)
#   docker run -e DATABASE_URL=postgres://app:secret@db:5432/app -p 6432:6432 pgmux
#   docker run -v ./pgmux.ini:/etc/pgmux/pgmux.ini:ro -v ./userlist.txt:/etc/pgmux/userlist.txt:ro pgmux
#   (mounted files must be readable by uid 10001, the image's user)
#
# Configuration by environment variables, and how a mounted file wins over
# them, is described at the top of contrib/docker/entrypoint.sh and in
# pgmux(1). contrib/docker/test.sh builds and checks this image with podman.

ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# Stage 1: compile. Nothing from this stage but the binary and two small
# files reaches the final image.
FROM ${DEBIAN_IMAGE} AS build

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc libc6-dev meson ninja-build pkg-config \
        libev-dev libinih-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the build reads (.dockerignore keeps the rest out of the context).
COPY meson.build meson_options.txt ./
COPY include/ include/
COPY src/ src/
COPY test/unit/ test/unit/
COPY doc/meson.build doc/pgmux.1 doc/pgmux.ini.5 doc/
COPY contrib/docker/ contrib/docker/

# UNIT_TESTS=1 also runs the C unit tests inside the build.
ARG UNIT_TESTS=0
RUN meson setup /build --prefix=/usr/local --buildtype=release -Db_ndebug=true \
 && ninja -C /build pgmux \
 && if [ "$UNIT_TESTS" = 1 ]; then meson test -C /build --suite unit --print-errorlogs; fi \
 && install -D -m 0755 -s /build/pgmux /out/usr/local/bin/pgmux \
 && install -D -m 0755 contrib/docker/entrypoint.sh /out/usr/local/bin/pgmux-entrypoint \
 && install -D -m 0755 contrib/docker/healthcheck.sh /out/usr/local/bin/pgmux-healthcheck \
 && mkdir -p /out/usr/share/pgmux \
 && contrib/docker/list-config-keys.sh src/config.c > /out/usr/share/pgmux/config-keys \
 && /out/usr/local/bin/pgmux --version

# ---------------------------------------------------------------------------
# Stage 2: run. Only the shared libraries the binary links (ldd pgmux:
# libev.so.4, libinih.so.1, libcrypto.so.3 and libc), no compiler, no curl.
# ca-certificates is left out: give server_tls_ca_file a mounted CA bundle
# when server_tls_sslmode is verify-ca or verify-full.
FROM ${DEBIAN_IMAGE}

RUN apt-get update \
 && apt-get install -y --no-install-recommends libev4 libinih1 libssl3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it and
# mounted files can be owned by it. /run/pgmux holds the generated config, the
# auth file and the Unix socket: mount an emptyDir or tmpfs there when the
# root filesystem is read-only.
RUN groupadd --system --gid 10001 pgmux \
 && useradd --system --uid 10001 --gid pgmux --home-dir /run/pgmux --no-create-home \
        --shell /usr/sbin/nologin pgmux \
 && install -d -o pgmux -g pgmux -m 0700 /run/pgmux \
 && install -d -m 0755 /etc/pgmux

COPY --from=build /out/ /

LABEL org.opencontainers.image.title="pgmux" \
      org.opencontainers.image.description="PostgreSQL connection pooler, a drop-in replacement for PgBouncer" \
      org.opencontainers.image.licenses="ISC"

USER 10001:10001
WORKDIR /run/pgmux

# 6432: PostgreSQL clients; 9127: Prometheus GET /metrics (stats_listen_port);
# 8080: GET /health/live and /health/ready (health_listen_port). The two HTTP
# ports are what the entrypoint writes when it generates the config.
EXPOSE 6432 9127 8080

# Stop with SIGINT, PgBouncer's "safe shutdown" (PAUSE, then exit): pgmux
# stops accepting, lets every transaction in flight finish, and exits as soon
# as no server connection is in use. Idle clients are disconnected between
# transactions, so nothing is cut in the middle. SIGTERM would instead wait
# for every client to disconnect by itself, and applications that keep a
# connection pool open never do: `docker stop` would then always run into its
# timeout and SIGKILL, which is the abrupt stop we want to avoid. A second
# signal during shutdown makes pgmux exit at once. Give `docker stop -t` (or
# stop_grace_period) at least your longest transaction.
STOPSIGNAL SIGINT

# /health/ready over bash's /dev/tcp: no curl in the image (see the script).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/pgmux-healthcheck"]

ENTRYPOINT ["/usr/local/bin/pgmux-entrypoint"]
CMD ["pgmux"]
