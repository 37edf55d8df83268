# syntax=docker/dockerfile:1
# Stage 1: build wheels for the dependencies only, so source edits reuse this layer.
FROM python:3.11-slim AS deps
WORKDIR /build
COPY pyproject.toml README.md ./
RUN mkdir bot cogs && touch bot/__init__.py cogs/__init__.py \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 2: the runtime image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BOT_DATA_DIR=/data
RUN useradd --create-home --uid 10001 voiceclone \
    && mkdir /data && chown voiceclone /data
COPY --from=deps /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && pip uninstall -y voiceclone
WORKDIR /app
COPY bot ./bot
COPY cogs ./cogs
USER voiceclone
VOLUME ["/data"]
# docker stop sends SIGTERM; the bot finishes in-flight calls and exits within 10 s.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
