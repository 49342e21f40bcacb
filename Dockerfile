# crowguard in a container. Build for CPU (default) or with a CUDA torch:
#   docker build -t crowguard .
#   docker build -t crowguard:cuda --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" .
# Dependencies come from requirements/cpu.lock (exact versions, sha256 hashes); --build-arg CROWGUARD_FLOAT=1
# resolves pyproject.toml's ranges instead.
FROM python:3.11-slim

# empty: the lock's CPU torch; a CUDA spec installs that torch and the rest from the lock
ARG TORCH_SPEC=""
ARG CROWGUARD_FLOAT=0
# the lock's torch is the +cpu build, served by PyTorch's CPU index
ARG PIP_EXTRA_INDEX_URL="https://download.pytorch.org/whl/cpu"

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

WORKDIR /opt/crowguard
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY scripts/install.sh ./scripts/
COPY crowguard ./crowguard
# A regular install, as a user gets from the wheel: the policies ship inside the package.
RUN CROWGUARD_TORCH="$TORCH_SPEC" CROWGUARD_FLOAT="$CROWGUARD_FLOAT" PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" \
      ./scripts/install.sh python \
    && useradd --create-home --uid 10001 crowguard
USER crowguard
WORKDIR /work

ENTRYPOINT ["crowguard"]
CMD ["gate", "--help"]
