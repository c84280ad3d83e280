#!/bin/sh
# The container's entrypoint: runs `netml "$@"`. For `netml run` in a pod with an SR-IOV
# VF, NETML_PCI_RESOURCE names the device plugin's resource (e.g. intel.com/intel_sriov_dpdk);
# the plugin puts the PCI address of the VF it allocated in PCIDEVICE_<RESOURCE> (upper case,
# `.` `/` `-` as `_`), and this script passes it on as the rx port (`--port`) and as the one
# device the EAL may probe (`--eal --allow=`). Needs no root. NETML_BIN overrides the binary.
set -eu
netml=${NETML_BIN:-netml}
if [ "${1:-}" = run ] && [ -n "${NETML_PCI_RESOURCE:-}" ]; then
  var=PCIDEVICE_$(printf '%s' "$NETML_PCI_RESOURCE" | tr 'a-z./-' 'A-Z___')
  # A pod asking for one VF gets one address; with several, the first is the rx port.
  addr=$(printenv "$var" | cut -d, -f1 || true)
  if [ -z "$addr" ]; then
    echo "netml-entrypoint: NETML_PCI_RESOURCE=$NETML_PCI_RESOURCE but $var is empty:" \
      "the pod got no device of that resource (resources.limits)" >&2
    exit 2
  fi
  shift
  set -- run --port "$addr" "--eal=--allow=$addr" "$@"
fi
exec "$netml" "$@"
