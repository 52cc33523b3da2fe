"""Stage: the plan's PyTorch image on disk before anyone needs it.

The tag comes from the plan (Plan.image.tag, registry prefix from the policy's `registry`
already applied). Host data (all optional):
  registry_user, registry_password_file | registry_password_env   login, never printed
  prune_pulled_images: false   remove images gpuhost pulled earlier (never other images)
"""

from __future__ import annotations

from gpuhost.operations import docker as docker_ops


def prepull_stage(ctx) -> str | None:
    """Queue the pull of this host's image; returns the image reference (None without a plan)."""
    if ctx.host_plan.plan is None:
        return None
    settings = ctx.settings.container
    image = ctx.host_plan.plan.image.tag
    docker_ops.image_pulled(
        name=f"Pre-pull {image}", image=image,
        login_user=settings.registry_user,
        password_file=settings.registry_password_file,
        password_env=settings.registry_password_env,
        remove_previous=settings.prune_pulled_images,
    )
    return image
