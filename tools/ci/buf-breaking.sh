#!/usr/bin/env bash
# buf breaking for the contracts in proto/.
# On a feature branch: against main. On main itself (CI runs on a fresh clone of main): against the
# previous commit, so every landed change is compared with what was there before it.
# BUF_BREAKING_AGAINST=<git ref> overrides the choice.
set -euo pipefail
cd "$(dirname "$0")/../.."

against="${BUF_BREAKING_AGAINST:-}"
if [[ -z "$against" ]]; then
  branch="$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo HEAD)"
  if [[ "$branch" != "main" ]] && git rev-parse --verify -q main >/dev/null; then
    against="main"
  elif git rev-parse --verify -q HEAD~1 >/dev/null; then
    against="HEAD~1"
  fi
fi
if [[ -z "$against" ]]; then
  echo "buf breaking: this is the first commit; there is no earlier contract to compare with"
  exit 0
fi
if ! git cat-file -e "${against}:proto/buf.yaml" 2>/dev/null; then
  echo "buf breaking: ${against} has no proto/ module; nothing to compare with"
  exit 0
fi
commit="$(git rev-parse "${against}")"
echo "buf breaking: comparing proto/ with ${against} (${commit:0:12})"
npx --no-install buf breaking proto --against ".git#ref=${commit},subdir=proto"
