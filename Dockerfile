# syntax=docker/dockerfile:1
# Both services in one image: `oms` (port 8080) and `inventory` (port 8081).
# Dependencies are built in their own layer (cargo-chef), so a change to our code
# rebuilds only our crates.
#
#   docker build -t order-processing .
#   docker run --rm order-processing oms --help

ARG RUST_VERSION=1.91

FROM rust:${RUST_VERSION}-bookworm AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# librdkafka is compiled from source by rdkafka-sys (with OpenSSL for SSL/SASL).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --package command-api --package inventory-saga
COPY . .
RUN cargo build --release --locked --package command-api --package inventory-saga --bins

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /app/target/release/oms /app/target/release/inventory /usr/local/bin/
USER 10001
# Logs as JSON lines; every other setting has a default or comes from the environment.
ENV LOG_FORMAT=json
EXPOSE 8080 8081
# The service to run is the command: `oms` or `inventory`.
CMD ["oms"]
