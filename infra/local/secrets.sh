#!/usr/bin/env bash
# `make secrets`: Redis's password, written once to var/secrets/redis_password, for
# compose (the redis_password secret) and `make up` alike. Kept if it exists.
# The folder is 700 (no other host user gets in); the file itself 644, because compose
# bind-mounts a file secret as it is, and the containers' users (kadr's 10001, redis)
# are not its owner.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${KADR_VAR:-$PWD/var}/secrets
mkdir -p "$dir"
chmod 700 "$dir"
if [ ! -s "$dir/redis_password" ]; then
  (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > "$dir/redis_password")
  echo "wrote $dir/redis_password"
fi
chmod 644 "$dir/redis_password"
