# streamnlp worker: slim, non-root, model baked in (package data of the wheel). Build: docker build -t streamnlp .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamnlp ./streamnlp
COPY workers ./workers
COPY models ./models
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin streamnlp
COPY --from=build /install /usr/local
ENV STREAMNLP_WEB_HOST=0.0.0.0 \
    STREAMNLP_WEB_PORT=6066 \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /tmp
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=4).status != 200)"]
ENTRYPOINT ["streamnlp"]
CMD ["worker"]
