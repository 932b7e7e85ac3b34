# The image scripts/test-in-docker.sh runs the tests in, for hosts that can pull from Docker Hub
# (`scripts/ci-image.sh --dockerfile`). scripts/ci-image.sh makes the same image without a
# registry (debootstrap). No Rust toolchain: test-in-docker.sh bind-mounts the host's.
FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $(bash /tmp/install-deps.sh --list) \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
CMD ["/bin/bash"]
