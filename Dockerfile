# The ragtune image (API and ingest worker). In production the answering model runs in vLLM, but
# the embedded llama.cpp backend stays available, so it is compiled here for a portable x86-64 baseline.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    pip install --no-cache-dir llama-cpp-python==0.3.36
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY service service
COPY prompts prompts
COPY eval eval
RUN pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1 RAGTUNE_EMBED__CACHE_DIR=/data/cache
EXPOSE 8000
CMD ["ragtune", "serve", "--host", "0.0.0.0", "--port", "8000"]
