# Build: docker build -t exports-api .
# Run:   docker run -p 8080:8080 -v exports-data:/data exports-api
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY static ./static
RUN cargo build --release --locked && strip target/release/exports-api

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home /data exports \
    && mkdir -p /data && chown exports /data
COPY --from=build /src/target/release/exports-api /usr/local/bin/exports-api
USER exports
ENV EXPORTS_LISTEN=0.0.0.0:8080 \
    EXPORTS_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["exports-api", "healthcheck"]
ENTRYPOINT ["exports-api"]
CMD ["serve"]
