# The canary command in an image: a static musl binary without the
# simulated cluster (`--no-default-features`), on distroless, as a
# non-root user.
#
#   docker build -t canary .
#   docker run --rm -v "$HOME/.kube/config:/home/nonroot/.kube/config:ro" \
#       -v "$PWD:/work" -w /work canary run deploy/canary.yaml
#
# The build needs only this repository and crates.io. Alpine's Rust
# targets musl natively, so the same file builds for amd64 and arm64.

FROM rust:1.95-alpine AS build
# ring compiles C and assembly against musl's headers.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
# The registry and target directories are caches, not layers; the binary
# is copied out of them in the same step. Only the binary is built: the
# other workspace members would add their features to shared crates.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --no-default-features --bin canary \
    && cp target/dist/canary /canary

# Distroless static: CA certificates (for metrics servers and webhooks
# reached directly), /etc/passwd with the user `nonroot`, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /canary /usr/local/bin/canary
# 65532 is distroless' `nonroot`; numeric so that runAsNonRoot can check it.
USER 65532:65532
ENTRYPOINT ["canary"]
