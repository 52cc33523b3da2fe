"""Properties that hold for any GPUs and policy: a plan is always sound, or the error says why."""

from datetime import date

from hypothesis import given, settings, strategies as st

from gpuhost.errors import Unresolvable
from gpuhost.plan.gpus import identify
from gpuhost.plan.matrix import DriverVersion, load_matrix
from gpuhost.plan.resolver import Policy, resolve

MATRIX = load_matrix()
GPU_NAMES = [m.names[0] for m in MATRIX.gpus]
DRIVERS = ["470.256.02", "525.60.13", "535.104.05", "550.54.15", "565.57.01", "570.124.06", "580.65.06",
           "580.159.04", "595.58.03", "610.43.02"]

policies = st.builds(
    Policy,
    torch=st.one_of(st.none(), st.sampled_from(sorted(MATRIX.releases))),
    allow_driver_change=st.booleans(),
    driver_branch=st.sampled_from(["lts", "production", "535", "580", "595"]),
    image_flavour=st.sampled_from(["runtime", "devel"]),
)


def image_min(plan):
    if MATRIX.images[plan.image.flavour].driver_rule == "toolkit":
        return MATRIX.toolkit_drivers[plan.image.cuda]
    return MATRIX.minor_version_floors[int(plan.image.cuda.split(".")[0])]


@settings(max_examples=400, deadline=None)
@given(names=st.lists(st.sampled_from(GPU_NAMES), min_size=1, max_size=4),
       driver=st.one_of(st.none(), st.sampled_from(DRIVERS)),
       module=st.sampled_from([None, "open", "proprietary"]),
       policy=policies)
def test_plan_is_sound_or_error_names_why(names, driver, module, policy):
    gpus = [identify(n) for n in names]
    try:
        plan = resolve(gpus, current_driver=driver, policy=policy, current_kernel_module=module,
                       today=date(2026, 11, 23))
    except Unresolvable as exc:
        message = str(exc)
        assert "\n" not in message and len(message) > 20
        assert any(word in message for word in ("torch", "driver", "flavour", "branch")), message
        return
    release = MATRIX.releases[".".join(plan.image.torch.split(".")[:2])]
    variant = next(v for v in release.variants if v.cuda == plan.image.cuda)
    # the image covers every GPU
    assert all(variant.covers(g.compute_capability) for g in gpus)
    # the driver suits every GPU, in a flavour each GPU can use
    branch = int(plan.driver.branch)
    assert all(MATRIX.architectures[g.architecture].supported_by(branch) for g in gpus)
    assert all(plan.driver.kernel_module in g.kernel_modules for g in gpus)
    # the driver meets the image minimum
    if plan.driver.action == "keep":
        assert DriverVersion(driver) >= image_min(plan)
        assert plan.driver.current == driver
    else:
        assert policy.allow_driver_change
        assert MATRIX.branch(branch).first_version >= image_min(plan)
    assert plan.driver.min_version == str(image_min(plan))
    assert plan.image.tag.endswith(f"{plan.image.torch}-cuda{plan.image.cuda}-cudnn9-{policy.image_flavour}")
    if policy.torch:
        assert plan.image.torch.startswith(policy.torch + ".")
    if not policy.allow_driver_change:
        assert plan.driver.action == "keep"
