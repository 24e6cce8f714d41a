# syntax=docker/dockerfile:1
#
# Gatehouse container image.
#
#   docker build -t gatehouse .
#   docker run --rm -v gatehouse-keys:/app/keys -e DATABASE_URL=... -e REDIS_URL=... \
#     -e COOKIE_KEYS=... gatehouse node bin/gatehouse.js keys generate --json
#   docker run --rm -v gatehouse-keys:/app/keys -e ... gatehouse node bin/gatehouse.js migrate --json
#   docker run -p 3000:3000 -v gatehouse-keys:/app/keys -e ISSUER=https://... -e ... gatehouse
#
# Signing keys never go into the image: KEYS_DIR (/app/keys) is a volume mounted at run time.
# The build context is an allowlist (.dockerignore). test/e2e/dockerfile.test.ts replays this
# file without a Docker engine, so keep RUN steps to npm and mkdir/chown.
#
# Every npm install uses --ignore-scripts: the `prepare` script would run the build before the
# sources are copied (and there is no tsc in a production install), and the only package with an
# install script is the `node` devDependency, which the image does not need: its base is Node 22.

FROM node:22-bookworm-slim AS base
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# Compiles TypeScript (src and migrations) into dist/ with the full dev toolchain.
FROM base AS build
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build && mkdir -p views

# Production dependencies only: no typescript, vitest, eslint or the `node` package.
FROM base AS deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

FROM base AS runtime
# Production serves GET /metrics only on METRICS_PORT (and requires it): publish it to Prometheus, not to the world.
ENV NODE_ENV=production \
    PORT=3000 \
    METRICS_PORT=9464 \
    KEYS_DIR=/app/keys
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/views ./views
# The application files stay owned by root (read-only to the server); only the keys volume is writable.
RUN mkdir -p /app/keys && chown node:node /app/keys
VOLUME ["/app/keys"]
USER node
EXPOSE 3000 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The Node.js options of src/runtime.ts (SERVER_NODE_OPTIONS); test/e2e/dockerfile.test.ts checks they match.
CMD ["node", "--experimental-async-context-frame", "dist/src/main.js"]
