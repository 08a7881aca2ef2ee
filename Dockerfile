# syntax=docker/dockerfile:1
# The Raptor container image:  docker build -t raptor .
# It needs io_uring allowed and a locked-memory limit to run (docs/operations.md, "Container"):
#   docker run -d --name raptor -p 6001:6001 \
#     --security-opt seccomp=packaging/docker/seccomp-io_uring.json \
#     --ulimit memlock=-1:-1 --ulimit nofile=1048576:1048576 \
#     -v /srv/raptor/raptor.toml:/etc/raptor/raptor.toml:ro raptor
# tests/packaging/ lints this file and checks its structure (no Docker daemon needed).

# --- build: the release binary (stripped, Cargo.toml [profile.release]). The tag is the
# toolchain rust-toolchain.toml pins (a test keeps them equal); .dockerignore leaves that
# file out, so rustup uses the image's toolchain instead of fetching clippy and rustfmt.
# The full image (not -slim) has git, for the revision `raptor --version` prints.
FROM rust:1.95.0-trixie AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p raptor-engine --bin raptor \
    && install -D -m 0755 target/release/raptor /out/raptor

# --- runtime: Debian slim of the same release (same glibc), a dated tag.
FROM debian:trixie-20260803-slim
RUN groupadd --system --gid 10001 raptor \
    && useradd --system --uid 10001 --gid raptor --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin raptor
# CA roots for https:// webhooks, from the build stage (slim has no ca-certificates).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/raptor /usr/bin/raptor
# The packaged default config (loopback bind, a placeholder app secret): mount your own
# over it. RAPTOR_BIND makes the server reachable through a published port.
COPY --chown=root:raptor --chmod=0640 packaging/raptor.toml /etc/raptor/raptor.toml
ENV RAPTOR_BIND=0.0.0.0:6001 \
    RAPTOR_LOG=info
# Numeric, so that Kubernetes runAsNonRoot can tell it is not root (10001 is raptor).
USER 10001:10001
EXPOSE 6001
# SIGTERM drains: 4200 to every client, webhooks flushed, exit 0 within
# limits.shutdown_grace_secs (10 s): give `docker stop` 20 s (--stop-timeout 20).
STOPSIGNAL SIGTERM
# /health over bash's /dev/tcp (the image has no curl): 200 when serving, 503 while draining.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6001 && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/raptor"]
CMD ["serve", "--config", "/etc/raptor/raptor.toml"]
