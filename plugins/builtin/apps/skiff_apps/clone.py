"""apps:clone: a new app with another's config, settings and current image.

What is copied: the app's own config, the per-app values of every declared
setting (``skiff.settings``: builder, buildpacks, checks, git, nginx, ps, ...)
that the caller may change, and the current release's image, tagged
``skiff/NEW:clone-vN`` so that pruning OLD's images never takes it away. What is
not: the access list (the clone starts with its creator), custom domains and
certificates (the clone answers at its own default domain), docker-options and
resource limits, storage mounts, links to services, the git repository.
"""

from __future__ import annotations

from skiff import access, lifecycle, settings
from skiff.context import Context
from skiff.errors import SkiffError


def refuse_unless_may_create(context: Context, new: str) -> None:
    """A deployer key needs the right to create apps (``acl:set --global deployer-create-apps true``)."""
    key = context.ssh_key_name if context.via_ssh else None
    if key is None or access.key_role(context, key) == "admin":
        return
    if not access.may_access(context, key, new, creating=True):
        raise access.AccessDenied(f"key {key!r} (deployer) may not run apps:clone on app {new!r}")


def copy_settings(context: Context, old: str, new: str) -> list[str]:
    """Copy OLD's per-app setting values to NEW; return ``NS key`` of each copied one."""
    state = context.state
    copied = []
    for namespace in settings.namespaces(context).values():
        for setting in namespace.settings:
            if not setting.per_app:
                continue
            value = state.get_property(namespace.prop, setting.name, app=old)
            if value is None:
                continue
            try:
                settings.require_level(context, namespace, setting, new)
            except SkiffError as exc:
                context.output.warn(f"not copied: {exc}")
                continue
            state.set_property(namespace.prop, setting.name, value, app=new)
            copied.append(f"{namespace.name} {setting.name}")
    return copied


def tag_image(image: str, new: str, version: int) -> str:
    """Tag OLD's image for NEW (the engine keeps it while a tag names it); return the new ref."""
    from skiff import dockerclient

    ref = f"skiff/{new}:clone-v{version}"
    dockerclient.client(120).api.tag(image, f"skiff/{new}", tag=f"clone-v{version}")
    return ref


def clone_app(context: Context, old: str, new: str, *, deploy: bool) -> None:
    state = context.state
    context.output.step(f"Cloning {old} to {new}")
    release = state.current_release(old)
    context.create_app(new)
    config = state.get_config(old)
    if config:
        state.set_config(new, config)
        context.output.info(f"config: {len(config)} vars")
    copied = copy_settings(context, old, new)
    if copied:
        context.output.info(f"settings: {', '.join(copied)}")
    if release is None or not release.image:
        context.output.step(f"Cloned {old} to {new} ({old} has no release to deploy)")
        return
    if not deploy:
        context.output.step(f"Cloned {old} to {new} (--skip-deploy: push or deploy it to run it)")
        return
    release.image = tag_image(release.image, new, release.version)
    lifecycle.redeploy(context, new, f"Clone of {old} v{release.version}", base=release)
    context.output.step(f"Cloned {old} to {new}")
