# cairn peer image. Build: docker build -t cairn .   Run: docker run -v cairn-data:/data -p 9096:9096 cairn
# The peer's folder (identity.json, peer.json, cluster.json, level stores) is the /data volume; the first start
# creates a one-peer cluster there (`daemon --init`), later starts reuse it.

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
COPY bench ./bench
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: only what `node dist/src/cli/index.js` needs
FROM node:20-bookworm-slim
# Inside a container the REST API must listen on all interfaces to be reachable through -p 9094:9094.
# Publishing it beyond the host needs rest.basic_auth_credentials in /data/peer.json: without them anyone who
# reaches the port can change the pinset.
ENV NODE_ENV=production \
    CAIRN_PATH=/data \
    CAIRN_REST_LISTEN=0.0.0.0:9094
RUN groupadd --system cairn \
 && useradd --system --gid cairn --home-dir /data --shell /usr/sbin/nologin cairn \
 && mkdir -p /data \
 && chown cairn:cairn /data
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
USER cairn
VOLUME /data
# swarm 9096, REST 9094, pinning service API 9097, gateway 8080, metrics 8888 (DESIGN §7)
EXPOSE 9094 9096 9097 8080 8888
# GET /health needs no credentials even with basic auth on; slim images have no curl, node's fetch does it
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9094/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The daemon stops cleanly on SIGTERM (docker stop): it stops taking requests, then closes its stores.
CMD ["node", "--import", "./dist/src/polyfill.js", "dist/src/cli/index.js", "daemon", "--init"]
