"""Maps the profile's upstream `groups`, then the roles the user holds in
Claimsmith (`event.authorization.roles`) that are not among them, to the
namespaced claim `https://claimsmith.dev/roles` on both tokens; denies a user
with neither when the client's metadata says `require_group = true` (same
action in ../rust and ../js)."""

from claimsmith import Event
from claimsmith.action import Api

ROLES_CLAIM = "https://claimsmith.dev/roles"


def on_execute_post_login(event: Event, api: Api) -> None:
    groups = event.user.profile.get("groups")
    if groups is None:
        groups = []
    if not isinstance(groups, list):
        raise TypeError("`groups` must be a list of strings")
    if not all(isinstance(group, str) for group in groups):
        raise TypeError("`groups` must hold only strings")
    groups = groups + [role for role in event.authorization.roles if role not in groups]
    if not groups and event.client.metadata.get("require_group") is True:
        api.access.deny("a group membership is required to sign in to this app")
        return
    api.access_token.set_custom_claim(ROLES_CLAIM, groups)
    api.id_token.set_custom_claim(ROLES_CLAIM, groups)
