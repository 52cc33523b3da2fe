echo '@@gpuhost health 1'
h_T=; command -v timeout >/dev/null 2>&1 && h_T='timeout 20'
h_smi=$(command -v nvidia-smi 2>/dev/null)
[ -z "$h_smi" ] && for h_p in /usr/bin/nvidia-smi /usr/local/nvidia/bin/nvidia-smi /opt/nvidia/bin/nvidia-smi; do
  [ -x "$h_p" ] && { h_smi=$h_p; break; }; done
if [ -n "$h_smi" ]; then
  h_t=$(mktemp -d 2>/dev/null) || h_t=
  [ -n "$h_t" ] && { $h_T "$h_smi" nvlink -s > "$h_t/nvlink" 2>&1 & }
  h_q='index,pci.bus_id,uuid,name,utilization.gpu,ecc.mode.current,ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.aggregate.total,retired_pages.sbe,retired_pages.dbe,retired_pages.pending,remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,clocks_throttle_reasons.active'
  h_out=$($h_T "$h_smi" --query-gpu=$h_q --format=csv,noheader,nounits 2>&1); h_rc=$?
  case "$h_out" in *'valid field'*|*'Invalid field'*)
    h_q='index,pci.bus_id,uuid,name,utilization.gpu,ecc.errors.uncorrected.volatile.total'; h_out=$($h_T "$h_smi" --query-gpu=$h_q --format=csv,noheader,nounits 2>&1); h_rc=$?;;
  esac
  echo "@@hsmi $h_q"; printf '%s\n' "$h_out"; echo "@@hsmi_rc $h_rc"
  wait
  echo '@@nvlink'; [ -n "$h_t" ] && { cat "$h_t/nvlink"; rm -rf "$h_t"; }
fi

echo '@@gpuhost health 1'
echo '@@xid'
{ dmesg --time-format iso 2>/dev/null || journalctl -k -b -o short-iso --no-pager 2>/dev/null; } | grep 'NVRM: Xid' | tail -n 500
echo '@@link'
h_nvs=0
for h_d in /sys/bus/pci/devices/*; do
  read -r h_v 2>/dev/null < "$h_d/vendor" || continue; [ "$h_v" = 0x10de ] || continue
  h_c=; read -r h_c 2>/dev/null < "$h_d/class"
  case "$h_c" in 0x0680*) h_nvs=$((h_nvs+1)); continue;; 0x0300*|0x0302*) ;; *) continue;; esac
  h_s=-; h_w=-; h_ms=-; h_mw=-
  read -r h_s _ 2>/dev/null < "$h_d/current_link_speed"; read -r h_w 2>/dev/null < "$h_d/current_link_width"
  read -r h_ms _ 2>/dev/null < "$h_d/max_link_speed"; read -r h_mw 2>/dev/null < "$h_d/max_link_width"
  echo "bus=${h_d##*/} speed=$h_s width=$h_w max_speed=$h_ms max_width=$h_mw"
done
h_fm=-; [ "$h_nvs" -gt 0 ] && command -v systemctl >/dev/null 2>&1 && h_fm=$(systemctl is-active nvidia-fabricmanager 2>/dev/null)
echo "@@fabric nvswitches=$h_nvs state=${h_fm:--}"
if command -v dcgmi >/dev/null 2>&1; then echo '@@dcgmi'; timeout 20 dcgmi health -c 2>&1 | head -n 60; fi
true
