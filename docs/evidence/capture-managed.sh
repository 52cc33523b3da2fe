#!/bin/sh
# Session 3 device capture: the new fact parts (managed, container with digests, snapshot) and the
# check script through the same gzip+base64 transport gpu_host's verify uses, with the machine's torch.
set -u
TAG=${TAG:-h100}
D=$OUT/$TAG; mkdir -p $D
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $D/pip.log 2>&1
export PYTHONPATH=/tmp/site:$(pwd)
date -u +%Y-%m-%dT%H:%M:%SZ > $D/date.txt
for f in managed container snapshot; do
  python3 -c "import facts.$f as m; print(m.COMMAND)" > $D/$f.sh
  sh $D/$f.sh > $D/$f.out 2> $D/$f.err; echo "fact $f rc=$?" >> $D/log.txt
done
python3 -m pyinfra @local fact facts.snapshot.HostSnapshot --json > $D/snapshot.json 2> $D/snapshot.log; echo "pyinfra snapshot rc=$?" >> $D/log.txt
# The check, shipped as gpu_host's verify ships it (inline gzip+base64 on stdin), run by the machine's torch.
TORCHPY=$(command -v python3)
[ -x /opt/torch/bin/python ] && TORCHPY=/opt/torch/bin/python
B64=$(python3 -c "import base64,gzip; from gpuhost.verify.check import SCRIPT; print(base64.b64encode(gzip.compress(SCRIPT.read_bytes(), mtime=0)).decode())")
env -u PYTHONPATH sh -c "echo $B64 | base64 -d | gunzip | timeout 300 $TORCHPY - --quick --expect-gpus 1" > $D/check-inline.json 2> $D/check-inline.err; echo "check inline rc=$?" >> $D/log.txt
cat /sys/module/nvidia/version > $D/sys-module-nvidia-version.txt 2>&1
# The deploy's plan on a real GPU host, without changing anything (--dry).
python3 -m pyinfra @local deploys/gpu_host.py --dry -y > $D/gpu_host-dry.txt 2>&1; echo "gpu_host dry rc=$?" >> $D/log.txt
cat $D/log.txt
