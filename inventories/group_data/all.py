"""Fleet-wide defaults for every host of inventories/lab.py: pyinfra's `all` group data.

pyinfra reads group_data/<group>.py beside the inventory; plain assignments are host data (imports
and __names__ are not). These values are the lowest layer: a group's settings (lab.yaml groups: or
group_data/<group>.py), a host's own, and --data key=value all win over them. A key set here and
under `all:` in lab.yaml with another value is refused: keep one.

The values below are gpuhost's built-in defaults, written out; uncomment the others to set them.
"""

driver_branch = "lts"  # lts | production | a branch number such as "580"
allow_driver_change = True  # False: never install, move or upgrade the driver
reboot = "never"  # never | auto: reboot after a driver change, then check the new module is loaded
no_gpu = "skip"  # skip | fail: what a host without an NVIDIA GPU gets

# torch = "2.9"  # PyTorch X.Y or X.Y.Z; default: the newest in the matrix
# driver_source = "cuda"  # ubuntu | cuda | debian | cuda-rhel; default: by the host's OS
# driver_repository = "https://mirror.example.com/cuda/debian12/x86_64/"  # a mirror of the driver repository
# driver_repository_key = "https://mirror.example.com/cuda/mirror.pub"  # only for a mirror with its own key,
# driver_repository_fingerprint = "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"  # then pin it
# registry = "mirror.example.com:5000"  # pull the PyTorch image through this registry or mirror
# toolkit_repository = "https://mirror.example.com/libnvidia-container/stable/deb/$(ARCH)"  # toolkit mirror
# toolkit_repository_key = "https://mirror.example.com/libnvidia-container/mirror.pub"  # its own key,
# toolkit_repository_fingerprint = "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"  # pinned
# verify = "auto"  # auto | always | never: when gpu_host.py runs the torch check
