"""Stage: the plan's PyTorch image on disk before anyone needs it.

The tag comes from the plan (Plan.image.tag, registry prefix from the policy's `registry`
already applied). Host data (all optional):
  registry_user, registry_password_file | registry_password_env   login, never printed
  prune_pulled_images: false   remove images gpuhost pulled earlier (never other images)
"""

from __future__ import annotations

from pyinfra import host, logger

from gpuhost.containers import operations as docker_ops
from gpuhost.mirror.stage import mirror_pull


def prepull_stage(ctx) -> list:
    """Queue the pull of this host's image (planned hosts); returns the operations queued."""
    if ctx.host_plan.plan is None:
        return []
    settings = ctx.settings.container
    image = ctx.host_plan.plan.image.tag
    if not prepull_pending(ctx):
        logger.info(f"[{host.name}] {image} present ({ctx.container_state['image_digests'][image]})")
        return []
    if ctx.host_plan.plan.image.origin:  # rewritten to go through a registry mirror (gpuhost/mirror)
        return mirror_pull(ctx)
    return [docker_ops.image_pulled(
        name=f"Pre-pull {image}", image=image,
        login_user=settings.registry_user,
        password_file=settings.registry_password_file,
        password_env=settings.registry_password_env,
        remove_previous=settings.prune_pulled_images,
        digest=ctx.settings.mirror.image_digest,
        _timeout=ctx.settings.bounds.pull_timeout,
    )]


def prepull_pending(ctx) -> list[str]:
    """What the snapshot does not show done: the image with its registry digest (image_digest when
    pinned: a tag the host holds at another digest is pulled again), the pull record."""
    image = ctx.host_plan.plan.image.tag
    held = ctx.container_state.get("image_digests", {}).get(image)
    pinned = ctx.settings.mirror.image_digest
    pending = [] if held and (pinned is None or held == pinned) else [image]
    recorded = ctx.managed["pulled"] or []
    stale, keep = docker_ops.pull_record(recorded, image, ctx.settings.container.prune_pulled_images)
    return pending + (["pull record"] if stale or keep != recorded else [])
