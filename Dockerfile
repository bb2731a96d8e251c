# One image for every role (api, worker, migrate); the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY explain ./explain
COPY audit ./audit
COPY api ./api
COPY storage ./storage
RUN pip install --upgrade pip && pip install .
RUN useradd --create-home rationale && mkdir -p /data && chown rationale /data
USER rationale
ENV RATIONALE_DATA_DIR=/data
EXPOSE 8000
CMD ["rationale", "serve", "--host", "0.0.0.0"]
