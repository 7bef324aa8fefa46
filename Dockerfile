# cairn peer image.
#   docker build -t cairn .
#   docker run -d --name cairn -v cairn-data:/data \
#     -p 127.0.0.1:9094:9094 -p 9096:9096 -p 127.0.0.1:9097:9097 -p 8080:8080 -p 127.0.0.1:8888:8888 cairn
# The peer's folder (identity.json, peer.json, cluster.json, level stores) is the /data volume; the first start
# creates a one-peer cluster there (`daemon --init`, what `npm start` runs), later starts reuse it.

# ---- build: compile TypeScript with the dev dependencies, then drop them
FROM node:20-bookworm-slim AS build
WORKDIR /app
# .npmrc (legacy-peer-deps) must match the one the lock file was made with
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
COPY scripts ./scripts
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: only what `node dist/src/cli/index.js` needs
FROM node:20-bookworm-slim
# Inside a container every service must listen on all interfaces to be reachable through -p. The REST API
# (9094) and the pinning service API (9097) can change the pinset: publish them beyond the host only with
# credentials (CAIRN_REST_BASIC_AUTH_CREDENTIALS='{"admin":"<password>"}'); the peer logs a loud warning
# while the REST API listens beyond loopback without them.
ENV NODE_ENV=production \
    CAIRN_PATH=/data \
    CAIRN_REST_LISTEN=0.0.0.0:9094 \
    CAIRN_PINSVC_LISTEN=0.0.0.0:9097 \
    CAIRN_GATEWAY_LISTEN=0.0.0.0:8080 \
    CAIRN_METRICS_LISTEN=0.0.0.0:8888
# A fixed uid, so that a bind-mounted data dir can be chowned to it on the host (chown -R 10001:10001 <dir>).
RUN groupadd --system --gid 10001 cairn \
 && useradd --system --uid 10001 --gid cairn --home-dir /data --shell /usr/sbin/nologin cairn \
 && mkdir -p /data \
 && chown cairn:cairn /data
WORKDIR /app
# the application stays owned by root: the cairn user can read it, not change it
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
USER cairn
VOLUME /data
# REST 9094, swarm 9096, pinning service API 9097, gateway 8080, metrics 8888 (DESIGN §7)
EXPOSE 9094 9096 9097 8080 8888
# GET /health needs no credentials even with basic auth on. Slim images have no curl: node's fetch does it,
# on the port CAIRN_REST_LISTEN says (a wildcard host is reached on loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const l=(process.env.CAIRN_REST_LISTEN||'127.0.0.1:9094').replace(/^(0\\.0\\.0\\.0|\\[::\\]):/,'127.0.0.1:');fetch('http://'+l+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Started as `npm start` starts a peer, without npm in between so that SIGTERM (docker stop) reaches node: the
# daemon stops taking requests, then closes its stores.
CMD ["node", "--import", "./dist/src/polyfill.js", "dist/src/cli/index.js", "daemon", "--init"]
