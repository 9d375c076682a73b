"""The identity projection: which contact each event belongs to, and the contact and company documents.

`fold` applies the identity rules in log order; `docs` holds the documents (and the company-membership rule);
`read` answers queries. What other packages use is imported here; the rest is the package's own.
"""

from .docs import CompanyDoc, ContactDoc, membership_of
from .fold import (
    WorkspaceIdentity,
    apply_event_contacts,
    forget_event_contacts,
    load_identity,
    resolve_contacts,
)
from .read import (
    NO_ENRICHMENT,
    Enrichment,
    Person,
    identifiers_of_people,
    read_companies,
    read_company_contact_ids,
    read_company_page,
    read_contact_ids_of_events,
    read_enrichments,
    read_merge_group,
    read_people,
    read_people_of_events,
    read_people_page,
)

__all__ = [
    "NO_ENRICHMENT",
    "CompanyDoc",
    "ContactDoc",
    "Enrichment",
    "Person",
    "WorkspaceIdentity",
    "apply_event_contacts",
    "forget_event_contacts",
    "load_identity",
    "membership_of",
    "read_companies",
    "read_company_contact_ids",
    "read_company_page",
    "read_contact_ids_of_events",
    "read_enrichments",
    "identifiers_of_people",
    "read_merge_group",
    "read_people",
    "read_people_of_events",
    "read_people_page",
    "resolve_contacts",
]
