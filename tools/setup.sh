#!/usr/bin/env bash
# gos set-up: installs every Debian 12 package gos needs to build, run and test.
# Idempotent and quiet when everything is already there. Needs root (or sudo).
#   tools/setup.sh          build + run + test dependencies
#   tools/setup.sh --run    only what building and running needs
set -euo pipefail

run_pkgs=(
  build-essential cmake pkg-config
  libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers vulkan-tools
  glslc libshaderc-dev spirv-tools
  libglfw3-dev libwebsockets-dev libcjson-dev libcurl4-openssl-dev
  libfreetype-dev fonts-dejavu-core fonts-noto-cjk libpng-dev libnats-dev
  xvfb xauth
  help2man
)
test_pkgs=(
  clang libclang-rt-14-dev
  python3 python3-websockets python3-yaml
  xdotool
  prometheus
  nats-server
  chromium
)

want=("${run_pkgs[@]}")
if [ "${1:-}" != "--run" ]; then
  want+=("${test_pkgs[@]}")
  command -v node >/dev/null 2>&1 || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "gos setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Browser tests drive Debian's chromium with playwright-core (never a downloaded browser).
if [ "${1:-}" != "--run" ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [ ! -d "$here/tests/browser/node_modules/playwright-core" ] && [ -f "$here/tests/browser/package.json" ]; then
    echo "gos setup: installing playwright-core (npm)"
    (cd "$here/tests/browser" && npm install --no-audit --no-fund --silent >/dev/null)
  fi
  # The SSE differential test parses the same streams with eventsource-parser.
  if [ ! -d "$here/tests/node-sse/node_modules/eventsource-parser" ] && [ -f "$here/tests/node-sse/package.json" ]; then
    echo "gos setup: installing eventsource-parser (npm)"
    (cd "$here/tests/node-sse" && npm install --no-audit --no-fund --silent >/dev/null)
  fi
fi
