"""Use cases: create/get/replace/patch/delete/search, on a Repository, without Flask."""

from scim.service.common import Context, etag_of

__all__ = ["Context", "etag_of"]
