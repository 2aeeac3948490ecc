# lwpd daemon image.
#
#   build:  docker build -t lwpd .
#   run:    docker run -d --name lwpd -v /run/lwpd:/run/lwpd lwpd
#           (host clients: LWPD_ENDPOINT=unix:///run/lwpd/lwpd.sock)
#   env:    LWPD_TCP=0.0.0.0:50051  also listen on TCP (publish it with -p 50051:50051)
#           LWPD_CPUS=N             vCPUs (default: the container's CPUs, quota-aware)
#           LWPD_UMASK=0000         umask for the socket (default lets any host uid connect)
#   args:   extra arguments go to lwpd (e.g. `docker run ... lwpd --log-level debug`);
#           a command that is not an option runs instead (e.g. `lwpd-selftest`).
#
# Only the daemon, the lwpstat inspector (also the HEALTHCHECK) and lwpd-health are built, with scripts/build.sh's flags
# (RelWithDebInfo: -O2, assertions on), and installed stripped into a slim runtime image.

# ---- build ---------------------------------------------------------------------------------
FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
# The dependency layer depends only on the package list, not on the sources.
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh --no-dev-tools && rm -rf /var/lib/apt/lists/*

COPY . /src
RUN cmake -S /src -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" \
 && cmake --build /build -j"$(nproc)" --target lwpd lwpstat lwpd-health \
 && install -D -m 0755 -s /build/server/lwpd /out/usr/local/bin/lwpd \
 && install -D -m 0755 -s /build/client/lwpstat/lwpstat /out/usr/local/bin/lwpstat \
 && install -D -m 0755 -s /build/server/lwpd-health /out/usr/local/bin/lwpd-health \
 && install -D -m 0755 /src/docker/entrypoint.sh /out/usr/local/bin/lwpd-entrypoint \
 && install -D -m 0755 /src/docker/selftest.sh /out/usr/local/bin/lwpd-selftest

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libspdlog1.10 libfmt9 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /

# The socket, the lwpctl region files (mapped by clients) and nothing else live here; mount
# it from the host (-v /run/lwpd:/run/lwpd) so host clients can reach both.
VOLUME /run/lwpd
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["lwpstat", "health", "--timeout-ms", "3000", "--endpoint", "unix:///run/lwpd/lwpd.sock"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["lwpd-entrypoint"]
CMD []
