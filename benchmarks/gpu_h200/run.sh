#!/usr/bin/env bash
# One lease of the H200 (see docs/gpu-tpu.md): today's benchmark, IWAE timing and the fast tests
# that need no TensorFlow. Run from the repository root with clu and ml_collections wheels in .whl/.
# Writes into ${OUT:-benchmarks/gpu_h200/out}.
set -o pipefail
OUT=${OUT:-benchmarks/gpu_h200/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/versions.txt"
python3 --version >> "$OUT/versions.txt"
python3 -m pip list 2>/dev/null | grep -iE "^(jax|jaxlib|flax|optax|orbax-checkpoint|numpy|chex|clu|ml.collections|pytest|scipy) " >> "$OUT/versions.txt"
timeout "${BENCH_S:-330}" python3 -m experiments.benchmark --out "$OUT" \
    --configs "${CONFIGS:-gated_vae,gated_vampprior,gated_hierarchical_vampprior,conv_chollet,conv_2d}" \
    --iwae_samples "${IWAE_K:-5000}" --iwae_images "${IWAE_IMAGES:-10000}" ${BENCH_ARGS:-} 2>&1 | grep -v "^WARNING\|^I0000" > "$OUT/benchmark.log"
echo "benchmark exit $?" >> "$OUT/benchmark.log"
# The fast tests of the modules that run without TensorFlow (data, CLI and runner tests need it).
timeout "${TESTS_S:-150}" python3 -m pytest -q -n "${WORKERS:-8}" -m "not slow" -p no:cacheprovider \
    tests/test_{architectures,checkpoint,conv_layers,evaluate,likelihoods,losses,models,priors,representations,train,snapshot}.py \
    > "$OUT/tests.log" 2>&1
echo "tests exit $?" >> "$OUT/tests.log"
tail -n 5 "$OUT/benchmark.log" "$OUT/tests.log"
