# syntax=docker/dockerfile:1
# Stage 1: the dependencies, exactly as locked: every file's hash is checked (--require-hashes),
# so a changed or substituted package fails the build. Only the lock is copied, so source
# edits reuse this layer. Refresh the lock with `make lock` (see README, "Docker").
FROM python:3.11-slim AS deps
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock

# Stage 2: the runtime image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BOT_DATA_DIR=/data PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 10001 voiceclone \
    && mkdir /data && chown voiceclone /data && chmod 700 /data
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY bot ./bot
COPY cogs ./cogs
USER voiceclone
VOLUME ["/data"]
# With METRICS_PORT set: the bot's /healthz answers 200 (a 3 s GET, stdlib only). Else:
# healthy while a live bot process holds its job store's lock in /data (read from /proc;
# takes no lock, opens no database, imports no discord.py). See bot/healthcheck.py.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
# docker stop sends SIGTERM; the bot finishes in-flight calls and exits within 10 s.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
