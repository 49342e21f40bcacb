# crowguard in a container. Build for CPU (default) or with a CUDA torch:
#   docker build -t crowguard .
#   docker build -t crowguard:cuda --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" .
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

WORKDIR /opt/crowguard
# torch first, pinned, so the package install below keeps it (see README: Install).
# hadolint ignore=DL3013
RUN pip install ${TORCH_SPEC}
COPY pyproject.toml README.md ./
COPY crowguard ./crowguard
# A regular install, as a user gets from the wheel: the policies ship inside the package.
RUN pip install . \
    && useradd --create-home --uid 10001 crowguard
USER crowguard
WORKDIR /work

ENTRYPOINT ["crowguard"]
CMD ["gate", "--help"]
