"""`/v1/contacts` and `/v1/companies`: the identity projection's people and companies (scope `contacts:read`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from redis.asyncio import Redis

from ingest.errors import NotFound
from projections.events import read_contact_event_counts
from projections.identity import (
    CompanyDoc,
    Person,
    read_companies,
    read_company_contact_ids,
    read_company_page,
    read_people,
    read_people_page,
)
from projections.keyspace import Keyspace

from ..deps import ContactsReader, ServicesDep
from ..render import Limit, Page, iso_ms, pagination

contacts_router = APIRouter(prefix="/v1/contacts", tags=["contacts"])
companies_router = APIRouter(prefix="/v1/companies", tags=["companies"])

SortDir = Annotated[Literal["asc", "desc"], Query(description="By creation time.")]


def company_summary(co: CompanyDoc | None) -> dict[str, Any] | None:
    if co is None:
        return None
    return {"_id": co.id, "name": co.fields.get("name"), "domain": co.fields.get("domain")}


def contact_document(p: Person, events_count: int) -> dict[str, Any]:
    c = p.contact
    f = c.fields
    return {
        "_id": c.id,
        "email": f.get("email"),
        "firstname": f.get("firstname"),
        "lastname": f.get("lastname"),
        "phone": f.get("phone"),
        "title": f.get("title"),
        "company": company_summary(p.company),
        "custom_fields": {k: v for k, v in sorted(f.items()) if k.startswith("profile_field_")},
        "user_ids": c.user_ids,
        "anonymous_ids": c.anonymous_ids,
        "emails": c.emails,
        "external_ids": c.external_ids,
        "merged_ids": c.merged_ids,
        "events_count": events_count,
        "createdAt": iso_ms(c.created_at),
        "updatedAt": iso_ms(c.updated_at or c.created_at),
    }


def company_document(co: CompanyDoc, contact_ids: list[str]) -> dict[str, Any]:
    f = co.fields
    return {
        "_id": co.id,
        "name": f.get("name"),
        "domain": f.get("domain"),
        "industry": f.get("industry"),
        "employees": f.get("employees"),
        "plan": f.get("plan"),
        "custom_fields": {k: v for k, v in sorted(f.items()) if k.startswith("profile_field_")},
        "group_ids": [k[2:] for k in co.keys if k.startswith("g:")],
        "external_ids": [k[2:] for k in co.keys if k.startswith("x:")],
        "contacts_count": len(contact_ids),
        "createdAt": iso_ms(co.created_at),
        "updatedAt": iso_ms(co.updated_at or co.created_at),
    }


async def _contact_documents(
    redis: Redis, ks: Keyspace, workspace: str, people: list[Person]
) -> list[dict[str, Any]]:
    counts = await read_contact_event_counts(redis, ks, workspace, [p.contact.id for p in people])
    return [contact_document(p, n) for p, n in zip(people, counts, strict=True)]


@dataclass(frozen=True, slots=True)
class Paging:
    """The page of a list the query asks for (`page`, `limit`, `sort_dir` by creation time)."""

    page: Page = 1
    limit: Limit = 20
    sort_dir: SortDir = "desc"

    @property
    def window(self) -> dict[str, Any]:
        return {
            "offset": (self.page - 1) * self.limit,
            "limit": self.limit,
            "descending": self.sort_dir == "desc",
        }

    def answer(self, name: str, items: list[dict[str, Any]], total: int) -> dict[str, Any]:
        return {"status": "success", name: items, "pagination": pagination(self.page, self.limit, total)}


PagingDep = Annotated[Paging, Depends()]


@contacts_router.get("")
async def list_contacts(tenant: ContactsReader, services: ServicesDep, paging: PagingDep) -> dict[str, Any]:
    """Contacts, newest first by default, each with its company and events count."""
    redis = services.redis
    total, people = await read_people_page(redis, tenant.ks, tenant.id, **paging.window)
    return paging.answer("contacts", await _contact_documents(redis, tenant.ks, tenant.id, people), total)


@contacts_router.get("/{contact_id}")
async def get_contact(contact_id: str, tenant: ContactsReader, services: ServicesDep) -> dict[str, Any]:
    """One contact; an id merged into another contact answers with the surviving contact."""
    found = await read_people(services.redis, tenant.ks, tenant.id, [contact_id])
    if contact_id not in found:
        raise NotFound(f"contact {contact_id!r} not found", details={"contact_id": contact_id})
    (doc,) = await _contact_documents(services.redis, tenant.ks, tenant.id, [found[contact_id]])
    return {"status": "success", "contact": doc}


@companies_router.get("")
async def list_companies(tenant: ContactsReader, services: ServicesDep, paging: PagingDep) -> dict[str, Any]:
    """Companies, newest first by default, each with its contacts count."""
    redis = services.redis
    total, docs = await read_company_page(redis, tenant.ks, tenant.id, **paging.window)
    documents = [
        company_document(co, await read_company_contact_ids(redis, tenant.ks, tenant.id, co)) for co in docs
    ]
    return paging.answer("companies", documents, total)


@companies_router.get("/{company_id}")
async def get_company(company_id: str, tenant: ContactsReader, services: ServicesDep) -> dict[str, Any]:
    found = await read_companies(services.redis, tenant.ks, tenant.id, [company_id])
    if company_id not in found:
        raise NotFound(f"company {company_id!r} not found", details={"company_id": company_id})
    co = found[company_id]
    members = await read_company_contact_ids(services.redis, tenant.ks, tenant.id, co)
    doc = company_document(co, members)
    doc["contact_ids"] = members[:1000]
    return {"status": "success", "company": doc}
