#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama-cpp-python sdist the app already pins,
# once, into a cache directory; later runs reuse it. Prints the binary's path last.
#   scripts/build_llama_server.sh            build (or reuse) and print the path
# MEDGEMMA_TUI_SERVER_CACHE overrides the cache directory.
set -euo pipefail

version="0.3.36"
cache="${MEDGEMMA_TUI_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/medgemma-tui/llama-server-$version}"
binary="$cache/bin/llama-server"
python="${PYTHON:-python3}"

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "==> downloading the llama-cpp-python $version source" >&2
"$python" -m pip download -q --disable-pip-version-check "llama-cpp-python==$version" \
  --no-binary :all: --no-deps -d "$work"
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
source_dir="$work/llama_cpp_python-$version/vendor/llama.cpp"

# Same CPU choice as install.sh: llama.cpp's AMX weight buffers segfault on Q4_K
# models (ggml-org/llama.cpp#20824), so on AMX CPUs build without AMX.
flags=(-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
       -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release)
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  flags+=(-DGGML_NATIVE=OFF)
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
              avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    grep -qw "${pair%%:*}" /proc/cpuinfo && flags+=("-DGGML_${pair##*:}=ON")
  done
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)

echo "==> building llama-server (about 8 CPU-minutes the first time)" >&2
cmake -S "$source_dir" -B "$work/build" "${generator[@]}" "${flags[@]}" >"$work/configure.log" 2>&1 \
  || { cat "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -50 "$work/build.log" >&2; exit 1; }

mkdir -p "$cache/bin"
cp "$work/build/bin/llama-server" "$binary.partial"
mv "$binary.partial" "$binary"
echo "$binary"
