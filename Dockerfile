# One image for every role: the command picks it (see Procfile and docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Every dependency pinned and checked against its hash (`make lock` writes the file).
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md alembic.ini config.py ./
COPY domain ./domain
COPY adapters ./adapters
COPY usecases ./usecases
COPY migrations ./migrations
COPY receiver ./receiver
COPY workers ./workers
COPY sandbox ./sandbox
COPY cli ./cli
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /app facesign && install -d -m 0700 -o facesign /app/mail

USER facesign
EXPOSE 8000 8001 9191
ENTRYPOINT ["facesign-recovery"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
