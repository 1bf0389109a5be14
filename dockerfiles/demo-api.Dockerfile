# The bundled demo API (SARK-compatible target) for the docker backend: built by ci-perf when neither
# api-image nor api-build-context is given and the demo image is not there yet (services/demo_image.py).
# Context: this repository's pyproject.toml, src/ and README.md. BASE: any image with python3 (3.11+)
# and its venv module; ci-perf passes CI_PERF_DEMO_BASE_IMAGE when set (an image built offline).
ARG BASE=python:3.12-slim
FROM ${BASE}
USER root
COPY pyproject.toml README.md /opt/ci-perf/
COPY src /opt/ci-perf/src
# pip's index and certificate settings come from the build arguments ci-perf passes (PIP_INDEX_URL, ...).
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -q '/opt/ci-perf[demo]' \
    && rm -rf /opt/ci-perf
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONUNBUFFERED=1
RUN useradd -r -m app
USER app
LABEL ci-perf.service=api
EXPOSE 8000
CMD ["python", "-m", "ci_perf.demo", "--host", "0.0.0.0", "--port", "8000"]
