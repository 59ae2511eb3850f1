# mtids in a container: a static-ish Rust build, then a small runtime image as a non-root
# user. Build:  docker build -t mtids .
# Run:          docker run -d --name mtids --restart unless-stopped \
#                 -v /etc/mtids:/etc/mtids:ro -v mtids-state:/var/lib/mtids \
#                 -e MTIDS_GW_PASSWORD=... mtids
# Try it:       docker run --rm mtids simulate

# ---- build ----
FROM rust:1.86-bookworm AS build
WORKDIR /src
COPY . .
# SQLite is compiled in (rusqlite "bundled") and TLS is rustls with ring: no system
# libraries beyond libc are needed at run time.
RUN cargo build --release --locked -p mtids-cli --bin mtids \
 && strip target/release/mtids

# ---- run ----
FROM debian:bookworm-slim
# Trust store for webhook/Telegram HTTPS; nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system mtids \
 && useradd --system --gid mtids --home-dir /var/lib/mtids --shell /usr/sbin/nologin mtids \
 && mkdir -p /var/lib/mtids /etc/mtids \
 && chown mtids:mtids /var/lib/mtids
COPY --from=build /src/target/release/mtids /usr/local/bin/mtids
COPY mtids.example.toml /etc/mtids/mtids.example.toml
USER mtids
WORKDIR /var/lib/mtids
VOLUME ["/var/lib/mtids"]
# MTIDS_CONFIG names the file to mount; while it is missing, commands that need no
# configuration (`simulate`, `replay`, `explain`) run on defaults.
ENV MTIDS_CONFIG=/etc/mtids/mtids.toml \
    MTIDS_LEDGER_PATH=/var/lib/mtids/bans.db \
    MTIDS_METRICS_LISTEN=0.0.0.0:9184
# Metrics (when metrics.listen is set to 0.0.0.0:9184) and syslog (input.syslog_udp).
EXPOSE 9184 5514/udp 5514/tcp
# Healthy while `mtids run` answers on its metrics endpoint (MTIDS_METRICS_LISTEN above;
# bash's /dev/tcp, as the image has no curl). Short-lived commands such as `simulate`
# finish before the first check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9184 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '^# HELP mtids_' <&3"]
ENTRYPOINT ["/usr/local/bin/mtids"]
CMD ["run"]
