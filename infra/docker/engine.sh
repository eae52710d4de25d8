# Sourced by kadr's container scripts: the engine (podman where installed, else docker;
# ENGINE=... to choose) and, for podman, kadr's containers.conf unless the caller names
# its own (runc and explicit ulimits; see podman-containers.conf). Nothing in /etc changes.
ENGINE=${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ] && command -v runc >/dev/null; then
  export CONTAINERS_CONF=$PWD/infra/docker/podman-containers.conf
fi
export ENGINE

# An image that is here, or one a registry can send within a minute (a pull that cannot
# reach one fails within the timeout instead of retrying on).
have() { $ENGINE image inspect "$1" >/dev/null 2>&1; }
pullable() { have "$1" || timeout 60 $ENGINE pull -q "$1" >/dev/null 2>&1; }
