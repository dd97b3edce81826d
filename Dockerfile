# syntax=docker/dockerfile:1
#
# One image with all four binaries of the workspace:
#   /usr/local/bin/todo-events     (the migration Job runs `todo-events migrate`)
#   /usr/local/bin/notify          (Knative Service; `notify consume` under KEDA)
#   /usr/local/bin/recur           (Knative Service; `recur consume` under KEDA)
#   /usr/local/bin/scheduler-cron  (the CronJob)
# The manifests choose the program with `command:`.
#
# Why one image rather than one per binary: one tag pins one release of the whole system, so
# the migration Job can never apply a schema that functions built from another commit do not
# expect, and there is one thing to build, scan, sign and promote. The cost is size: each
# binary links its own copy of the shared code (tokio, sqlx, librdkafka, the store and the
# host), 15-19 MB each, about 70 MB for the four (28 MB compressed) against about 18 MB
# (7 MB compressed) for an image with one binary (docs/DEPLOYMENT.md, "Image size"). A node
# pulls it once for all the programs; at cluster bandwidths that is well under a second of a
# function's first cold start.
#
# Build:  docker build -t registry.example.com/todo-events:0.1.0 .
# The runtime image is distroless (no shell, no package manager) and runs as the numeric
# non-root user 65532 ("nonroot"), which the manifests' securityContext also sets.

# Both base images are pinned by digest, the tag kept beside it to say what the digest is (with
# both, the digest is what is pulled and the tag is not looked at). Where each digest came from,
# how to check it and how to move to a newer one: docs/DEPLOYMENT.md, "Image".
FROM docker.io/library/rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
# The binaries are built with the `kafka` feature (`notify consume`, `recur consume`, the
# scheduler's Kafka sink: the keda/ and knative/ installations use them), which compiles
# librdkafka from source with rdkafka's cmake-build and ssl features: cmake and pkg-config here,
# OpenSSL and libcurl headers (librdkafka includes curl.h) already in the rust image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY functions ./functions
# Workspace members that are development tools (benchmarks, fault suite, rehearsal): cargo
# needs them to read the workspace; not built.
COPY bench ./bench
COPY faults ./faults
COPY rehearsal ./rehearsal
# The release profile of Cargo.toml applies (strip, thin LTO). The cache mounts keep the
# registry and the build directory between builds; the binaries are copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --exclude todo-events-bench --exclude todo-events-faults --exclude todo-events-rehearsal --bins --features kafka \
 && mkdir -p /out/bin \
 && for bin in todo-events notify recur scheduler-cron; do \
      cp "target/release/$bin" /out/bin/; \
    done
# The runtime image has glibc, libgcc, libstdc++ and OpenSSL. Any other shared library the
# binaries link (librdkafka's zlib, for one) is copied over from this Debian release, into
# the same multiarch directory; a library that cannot be found fails the build here.
RUN set -eu; \
    mkdir -p /out/lib; \
    if ldd /out/bin/* | grep -q 'not found'; then ldd /out/bin/*; exit 1; fi; \
    for lib in $(ldd /out/bin/* | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u); do \
      case "$(basename "$lib")" in \
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*|libutil.so.*) ;; \
        libgcc_s.so.*|libstdc++.so.*|libssl.so.*|libcrypto.so.*|ld-linux*) ;; \
        *) dir="/out/lib/$(basename "$(dirname "$lib")")"; mkdir -p "$dir"; cp -L "$lib" "$dir/" ;; \
      esac; \
    done; \
    find /out -type f | sort

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS runtime
COPY --from=build /out/lib/ /usr/lib/
COPY --from=build /out/bin/ /usr/local/bin/
USER 65532:65532
WORKDIR /home/nonroot
# Functions listen on PORT (8080 by default); Knative sets PORT from the containerPort.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/todo-events"]
CMD ["--help"]
