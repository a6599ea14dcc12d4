# The storefactory image, for those who have Docker (or another builder of Dockerfiles):
#
#   docker build -t ghcr.io/storefactory/storefactory:0.1.0 .
#
# scripts/build-image.sh builds the same image without Docker, into an OCI archive. Both
# take the root filesystem from scripts/image-rootfs.sh: the binary, exactly the shared
# libraries it links (glibc), CA certificates and a non-root user; no shell. Keep the
# configuration of the final stage equal to the one in scripts/build-image.sh (the test
# in scripts/test.sh compares them).

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The dashboard's assets are compiled into the binary.
RUN cargo build --release --locked -p storefactory-cli --bin storefactory \
 && bash scripts/image-rootfs.sh target/release/storefactory /rootfs

FROM scratch
ARG REVISION=unknown
COPY --from=build /rootfs/ /
# COPY resets ownership: the database directory belongs to the server's user.
COPY --from=build --chown=10001:10001 /rootfs/data/ /data/
USER 10001:10001
WORKDIR /data
# MALLOC_ARENA_MAX: glibc keeps up to eight allocator arenas per core, and memory freed
# after a burst stays in them; two keep the server's resident memory near what it uses
# (README, "Performance": 101 against 81 MiB after 300 stores).
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    STOREFACTORY_LISTEN=0.0.0.0:8080 \
    STOREFACTORY_DB=/data/storefactory.db \
    MALLOC_ARENA_MAX=2
EXPOSE 8080/tcp
VOLUME /data
LABEL org.opencontainers.image.title="storefactory" \
      org.opencontainers.image.description="Provisions isolated WooCommerce stores on Kubernetes" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/storefactory/storefactory" \
      org.opencontainers.image.licenses="MIT"
ENTRYPOINT ["/usr/local/bin/storefactory"]
CMD ["serve"]
