# The image scripts/test-in-docker.sh runs the tests in, for hosts that can pull from Docker Hub
# (`scripts/ci-image.sh --dockerfile`). scripts/ci-image.sh makes the same image without a
# registry (debootstrap). No Rust toolchain: test-in-docker.sh bind-mounts the host's.
# BASE: any Debian 12 image (e.g. a mirror of debian:bookworm-slim).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $(bash /tmp/install-deps.sh --list) \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
CMD ["/bin/bash"]
