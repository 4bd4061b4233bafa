#!/usr/bin/env bash
# Install the Debian packages the test suite needs, once; quiet when all are there.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v unzip >/dev/null || need+=(unzip)
command -v curl >/dev/null || need+=(curl)
command -v tshark >/dev/null || need+=(tshark)
command -v tcpdump >/dev/null || need+=(tcpdump)  # compiles --bpf filters for soc capture
command -v chromium >/dev/null || need+=(chromium)
command -v ip >/dev/null || need+=(iproute2)
command -v wrk >/dev/null || need+=(wrk)  # HTTP load generator for bench/policy.py
command -v nginx >/dev/null || need+=(nginx)  # real reverse proxy: policy auth_request, TLS/auth in front of Elasticsearch
command -v tmux >/dev/null || need+=(tmux)  # real terminal for the hostile-output and Vietnamese CLI tests
[ -d /usr/share/fonts/truetype/noto ] || need+=(fonts-noto-core)  # Vietnamese diacritics in the browser screenshots
command -v gcc >/dev/null || need+=(gcc)  # mypyc compiles the pcap hot path on install (setup.py)
py_include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
[ -f "$py_include/Python.h" ] || need+=(python3-dev)  # ... against the interpreter's headers
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
