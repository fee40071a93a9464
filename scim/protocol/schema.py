"""SCIM resource definitions (RFC 7643 §4, §7, §8.7): the one source of truth.

Validation (``scim.schemas``), the PATCH engine, projection and ``/Schemas`` are all
generated from these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: Schema URIs some clients add and that carry nothing we store (Entra's groups).
IGNORED_SCHEMAS = frozenset(
    {"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"}
)


@dataclass(frozen=True)
class Attribute:
    """One attribute definition with its RFC 7643 §7 characteristics."""

    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    #: Most values a multi-valued attribute may hold (None: no limit of its own). Bounds
    #: what one PATCH operation costs (value filters scan the list).
    max_values: int | None = None

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called ``name`` (case-insensitive), if any."""
        lowered = name.lower()
        return next((a for a in self.sub_attributes if a.name.lower() == lowered), None)

    def to_json(self) -> dict[str, Any]:
        """RFC 7643 §7 attribute representation."""
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.sub_attributes:
            body["subAttributes"] = [a.to_json() for a in self.sub_attributes]
        if self.canonical_values:
            body["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            body["referenceTypes"] = list(self.reference_types)
        return body


@dataclass(frozen=True)
class Schema:
    """A schema (core or extension): its URN and attributes."""

    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        """The top-level attribute called ``name`` (case-insensitive), if any."""
        lowered = name.lower()
        return next((a for a in self.attributes if a.name.lower() == lowered), None)


@dataclass(frozen=True)
class ResourceType:
    """RFC 7643 §6 resource type: a core schema plus extensions."""

    name: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[Schema, ...] = field(default=())

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(e.id for e in self.extensions))

    def extension(self, urn: str) -> Schema | None:
        lowered = urn.lower()
        return next((e for e in self.extensions if e.id.lower() == lowered), None)


def _s(name: str, **kw: Any) -> Attribute:
    return Attribute(name, **kw)


#: The most e-mails, phone numbers or addresses one user may have.
MAX_VALUES = 100


def _multi(name: str, description: str, types: tuple[str, ...], value_type: str = "string"):
    return Attribute(
        name,
        type="complex",
        multi_valued=True,
        max_values=MAX_VALUES,
        description=description,
        sub_attributes=(
            _s("value", type=value_type, description=f"The {name[:-1]} value."),
            _s("display", description="A human-readable name.", mutability="readOnly"),
            _s("type", description="A label for the function.", canonical_values=types),
            _s("primary", type="boolean", description="The primary value."),
        ),
    )


#: RFC 7643 §3.1 common attributes (present on every resource).
ID = _s(
    "id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server",
    description="Unique identifier assigned by the service provider.",
)
EXTERNAL_ID = _s(
    "externalId", case_exact=True,
    description="Identifier of the resource as defined by the provisioning client.",
)
META = _s(
    "meta", type="complex", mutability="readOnly", description="Resource metadata.",
    sub_attributes=(
        _s("resourceType", case_exact=True, mutability="readOnly"),
        _s("created", type="dateTime", mutability="readOnly"),
        _s("lastModified", type="dateTime", mutability="readOnly"),
        _s("location", type="reference", case_exact=True, mutability="readOnly",
           reference_types=("uri",)),
        _s("version", case_exact=True, mutability="readOnly"),
    ),
)
COMMON = (ID, EXTERNAL_ID, META)

USER_SCHEMA = Schema(
    id=CORE_USER,
    name="User",
    description="User Account",
    attributes=(
        _s("userName", required=True, uniqueness="server",
           description="Unique identifier for the User, used to sign in."),
        _s("name", type="complex", description="The components of the user's name.",
           sub_attributes=tuple(
               _s(n, description=d) for n, d in (
                   ("formatted", "The full name, formatted for display."),
                   ("familyName", "The family name (last name)."),
                   ("givenName", "The given name (first name)."),
                   ("middleName", "The middle name(s)."),
                   ("honorificPrefix", "The honorific prefix (e.g. Ms.)."),
                   ("honorificSuffix", "The honorific suffix (e.g. III)."),
               ))),
        _s("displayName", description="The name of the User, suitable for display."),
        _s("nickName", description="The casual way to address the user."),
        _s("profileUrl", type="reference", reference_types=("external",),
           description="A URI of the User's online profile."),
        _s("title", description="The user's title, such as 'Vice President'."),
        _s("userType", description="The relationship between organization and user."),
        _s("preferredLanguage", description="Preferred written or spoken language."),
        _s("locale", description="Default location for localizing (e.g. en-US)."),
        _s("timezone", description="The User's time zone (IANA name)."),
        _s("active", type="boolean", description="The User's administrative status."),
        _s("password", mutability="writeOnly", returned="never",
           description="The User's cleartext password (stored hashed, never returned)."),
        _multi("emails", "Email addresses for the user.", ("work", "home", "other")),
        _multi("phoneNumbers", "Phone numbers for the User.",
               ("work", "home", "mobile", "fax", "pager", "other")),
        Attribute(
            "addresses", type="complex", multi_valued=True, max_values=MAX_VALUES,
            description="A physical mailing address for this User.",
            sub_attributes=(
                _s("formatted", description="The full mailing address."),
                _s("streetAddress", description="The full street address component."),
                _s("locality", description="The city or locality component."),
                _s("region", description="The state or region component."),
                _s("postalCode", description="The zip code or postal code component."),
                _s("country", description="The country name component."),
                _s("type", description="A label for the function.",
                   canonical_values=("work", "home", "other")),
                _s("primary", type="boolean", description="The primary address."),
            ),
        ),
        Attribute(
            "groups", type="complex", multi_valued=True, mutability="readOnly",
            description="Groups the user belongs to, directly or through nested groups.",
            sub_attributes=(
                _s("value", mutability="readOnly", description="The group's id."),
                _s("$ref", type="reference", mutability="readOnly",
                   reference_types=("Group",), description="The URI of the group."),
                _s("display", mutability="readOnly", description="The group's displayName."),
                _s("type", mutability="readOnly", canonical_values=("direct", "indirect"),
                   description="direct or indirect membership."),
            ),
        ),
    ),
)

ENTERPRISE_SCHEMA = Schema(
    id=ENTERPRISE_USER,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _s("employeeNumber", description="Numeric or alphanumeric identifier."),
        _s("costCenter", description="Identifies the name of a cost center."),
        _s("organization", description="Identifies the name of an organization."),
        _s("division", description="Identifies the name of a division."),
        _s("department", description="Identifies the name of a department."),
        Attribute(
            "manager", type="complex", description="The User's manager.",
            sub_attributes=(
                _s("value", description="The id of the manager's SCIM User."),
                _s("$ref", type="reference", reference_types=("User",),
                   description="The URI of the manager (RFC 7643 §8.7.2: readWrite)."),
                _s("displayName", mutability="readOnly",
                   description="The displayName of the manager."),
            ),
        ),
    ),
)

GROUP_SCHEMA = Schema(
    id=CORE_GROUP,
    name="Group",
    description="Group",
    attributes=(
        _s("displayName", required=True, uniqueness="server",
           description="A human-readable name for the Group (unique)."),
        Attribute(
            "members", type="complex", multi_valued=True, returned="default",
            description="A list of members of the Group.",
            sub_attributes=(
                _s("value", case_exact=True, mutability="immutable",
                   description="Identifier of the member (a User or Group id)."),
                _s("$ref", type="reference", mutability="immutable",
                   reference_types=("User", "Group"), description="The URI of the member."),
                _s("type", mutability="immutable", canonical_values=("User", "Group"),
                   description="User or Group."),
                _s("display", mutability="readOnly",
                   description="The member's displayName (RFC 7643 §2.4; set by the "
                               "service, ignored in requests)."),
            ),
        ),
    ),
)

USER = ResourceType(
    "User", "/Users", "User Account", USER_SCHEMA, (ENTERPRISE_SCHEMA,)
)
GROUP = ResourceType("Group", "/Groups", "Group", GROUP_SCHEMA)
RESOURCE_TYPES = (USER, GROUP)


def common_attribute(name: str) -> Attribute | None:
    """``id``, ``externalId`` or ``meta`` (case-insensitive)."""
    lowered = name.lower()
    return next((a for a in COMMON if a.name.lower() == lowered), None)
