# edgeprov appliance: multi-stage, runtime without compilers, non-root, all state in /data.

FROM node:20-bookworm-slim AS build
# better-sqlite3 compiles from source when no prebuilt binary can be fetched.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Node's headers ship in the image: node-gyp need not download them.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json binding.gyp ./
# npm ci's install step compiles the native TFTP pump (native/, scripts/build-native.mjs).
COPY native ./native
COPY scripts/build-native.mjs ./scripts/build-native.mjs
# A CA bundle for TLS-intercepting proxies can be passed as a build secret; it is never stored in a layer.
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca npm_config_cafile=/run/secrets/ca; fi; \
    npm ci --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY templates ./templates
COPY scripts/build.mjs ./scripts/build.mjs
COPY tsconfig.json tsconfig.build.json ./
# Compiled to plain JavaScript (dist/), then the compiler and the other dev tools leave.
RUN node scripts/build.mjs \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && rm -rf node_modules/better-sqlite3/deps node_modules/better-sqlite3/src \
           node_modules/better-sqlite3/build/Release/obj node_modules/better-sqlite3/build/Release/obj.target \
           node_modules/better-sqlite3/build/Release/.deps node_modules/better-sqlite3/build/deps \
 && find build -mindepth 1 -not -path build/Release -not -path build/Release/tftp_pump.node -delete \
 && rm -rf native

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    EDGEPROV_DATA_DIR=/data \
    EDGEPROV_HTTP_PORT=80 \
    EDGEPROV_HTTPS_PORT=443 \
    EDGEPROV_TFTP_PORT=69
# Ports 80, 443 and 69 as a non-root user: node gets the one capability it needs as a file
# capability (CAP_NET_BIND_SERVICE, in Docker's and Podman's default set; keep it if you --cap-drop).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap 'cap_net_bind_service=+ep' "$(readlink -f "$(command -v node)")" \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
 && groupadd --system edgeprov && useradd --system --gid edgeprov --home-dir /data --shell /usr/sbin/nologin edgeprov \
 && mkdir -p /data && chown edgeprov:edgeprov /data
WORKDIR /app
COPY --from=build /app /app
RUN ln -s /app/bin/edgeprov.js /usr/local/bin/edgeprov
USER edgeprov
VOLUME ["/data"]
EXPOSE 80/tcp 443/tcp 69/udp
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.EDGEPROV_HTTP_PORT||80)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node is PID 1 and handles SIGTERM itself: listeners close, transfers get 2 s, the store closes.
STOPSIGNAL SIGTERM
# A smaller young generation and a heap that grows by half before a full collection: the same
# throughput, far less resident memory in a boot storm (bench/boot-storm.ts).
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=50", "/app/bin/edgeprov.js"]
CMD ["serve"]
