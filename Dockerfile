# Build: docker build -t exports-api .
# Run:   docker run -p 8080:8080 -v exports-data:/data \
#          -e EXPORTS_PUBLIC_URL=http://localhost:8080 exports-api
# Configuration is by environment variable only (`exports-api serve --help` lists them all);
# set EXPORTS_PUBLIC_URL to the address clients use, since download links are built from it.
# Without Docker, tests/api/container.rs runs the binary the way this image does (see
# .ci/container.sh, which also lints this file with hadolint).

FROM rust:1-bookworm AS build
WORKDIR /src
# The crates registry is the only thing reached, by `cargo fetch`; the build is offline.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo fetch --locked \
    && rm -r src
COPY src ./src
# everything the binary embeds (the console's HTML, JS and CSS), whole
COPY static ./static
RUN cargo build --release --frozen \
    && strip target/release/exports-api

FROM debian:bookworm-slim
# a fixed, numeric, non-root user that owns the data volume
RUN groupadd --system --gid 10001 exports \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin exports \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /src/target/release/exports-api /usr/local/bin/exports-api
USER 10001:10001
ENV EXPORTS_LISTEN=0.0.0.0:8080 \
    EXPORTS_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
# the binary is the probe: no curl in the image
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["exports-api", "healthcheck"]
ENTRYPOINT ["exports-api"]
CMD ["serve"]
