# One image for the ledger service and the edge gateway (docker-compose.yml):
#   carbon-ledger serve --host 0.0.0.0      the HTTP API (LEDGER_* settings)
#   carbon-gateway ...                      the gateway CLI (GATEWAY_* settings)
#   python deploy/prestart.py ...           contract deployment and start-up checks
#
# The checkout is installed in editable mode on purpose: the runtime reads the committed
# contract artifacts from <checkout>/contracts/artifacts, so /app must keep that layout.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 carbon \
 && useradd --system --uid 10001 --gid carbon --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin carbon

WORKDIR /app

# Dependencies first, from pyproject.toml itself, so a source change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The checkout (.dockerignore keeps out virtualenvs, node_modules, var/, tests and keys).
COPY . .
RUN pip install --no-deps -e . \
 && mkdir -p /data/ledger /data/gateway /deployment \
 && chown carbon:carbon /data/ledger /data/gateway /deployment

# A named volume mounted on one of these starts out owned by carbon (Docker copies the
# image directory's ownership into a new volume).
USER carbon
EXPOSE 8000
ENV LEDGER_DATA_DIR=/data/ledger \
    GATEWAY_DATA_DIR=/data/gateway
CMD ["carbon-ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
