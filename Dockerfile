# The image every component of the compiled Kubeflow pipeline runs in (fashion compile --image):
# Python 3.10 (TFX 1.16 supports 3.9-3.10), the locked dependencies, then this project.
#   docker build -t REGISTRY/fashion:TAG . && docker push REGISTRY/fashion:TAG
FROM python:3.10-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /opt/fashion

# The dependencies first: a code change then rebuilds only the last layers.
COPY requirements.lock ./
RUN pip install --upgrade "pip<27" setuptools wheel && pip install -r requirements.lock

COPY pyproject.toml README.md pipeline_config.py fashion_cli.py ./
COPY schemas schemas
COPY trainer trainer
COPY components components
COPY pipeline pipeline
COPY serving serving
RUN pip install --no-deps . && python -c "import pipeline.pipeline, fashion_cli"

ENTRYPOINT []
