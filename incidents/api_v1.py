"""The incident management API v1: Statuspage's paths, bodies and `Authorization: OAuth <key>`.

Everything lives under /api/v1/pages/<page_id>/ (the page's public id) so automation written
for Statuspage's management API moves over unchanged, plus our editorial endpoints beside it:
drafts and their approvals, the severity policy, the message templates and the archive.

Keys (subscribers.authentication): read for GET, write for anything else, publish for calls
that sign off or publish words for customers. A key acts as its staff user, so the user's
permissions apply too; a refusal names the missing scope or permission (403).

Publishing goes through the editorial policy (incidents.editorial). A new incident or a PATCH
that posts an update becomes an UpdateDraft, which is submitted and published at once when the
policy asks for no approval and the key has the publish scope. Otherwise it waits in review
and the answer is 202 with the draft and the approvals it still needs; nothing reaches the
page or a subscriber before then. Each request is one transaction: a refused publish leaves no
draft behind. Permission refusals are checked before that transaction opens, because the
editorial near-miss record of a refusal must survive the rollback.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from incidents import editorial, message_templates, services
from incidents import api_v1_serializers as io
from incidents.message_templates import MessageKind
from incidents.models import (
    ACTIVE_MAINTENANCE_STATUSES,
    OPEN_INCIDENT_STATUSES,
    ApprovalRole,
    Component,
    DraftState,
    Impact,
    Incident,
    IncidentKind,
    IncidentStatus,
    MaintenanceStatus,
    MessageTemplate,
    Page,
    Postmortem,
    PostmortemVisibility,
    Severity,
    StatusSource,
    UpdateDraft,
)
from incidents.policy import impact_from_component_statuses
from subscribers.api import Utf8JSONRenderer
from subscribers.authentication import (
    ApiTokenAuthentication,
    ApiTokenRateThrottle,
    PublishScope,
    TokenScope,
    UnauthenticatedThrottleMixin,
)
from subscribers.models import ApiScope, ApiToken


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how the keys are sent."""

    target_class = "subscribers.authentication.ApiTokenAuthentication"
    name = "OAuthKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`OAuth <key>` or `Bearer <key>`: a key from `manage.py api_token create` or the admin.",
        }


# --- refusals ---------------------------------------------------------------------------------


def need_permission(user, perm: str, *, action: str) -> None:
    """403 naming the Django permission the key's user lacks (for writes outside the editorial flow)."""
    if user.is_active and user.has_perm(perm):
        return
    codename = perm.split(".", 1)[1]
    raise exceptions.PermissionDenied({"detail": f"You may not {action}: it needs the permission {codename}.", "missing_permission": codename})


def need_scope(token: ApiToken, scope: str, *, why: str) -> None:
    if not token.has_scope(scope):
        raise exceptions.PermissionDenied({"detail": f"This API key lacks the {scope} scope: {why}", "missing_scope": scope})


def bad_request(resource: str | None, errors: dict[str, str | list[str]]) -> exceptions.ValidationError:
    """A 400 whose body names each field: `{"errors": {"incident[body]": ["..."]}}`."""
    body = {}
    for name, messages in errors.items():
        key = name if resource is None else (resource if name == "__all__" else f"{resource}[{name}]")
        body[key] = [messages] if isinstance(messages, str) else list(messages)
    return exceptions.ValidationError({"errors": body})


_PERMISSION = re.compile(r"permission (\w+)")


def v1_exception_handler(exc, context):
    """Service refusals as 4xx JSON naming the field or the reason; DRF's own otherwise."""
    view = context.get("view")
    resource = getattr(view, "resource", None)
    if isinstance(exc, PublishRefused):
        return Response(exc.body(), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, editorial.Forbidden):
        # DRF would turn Django's PermissionDenied into a bare 403 and lose which permission it was.
        found = _PERMISSION.search(str(exc))
        body = {"detail": str(exc), "missing_permission": found.group(1) if found else None}
        return Response(body, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, DjangoValidationError):
        rename = getattr(view, "service_fields", {})
        if resource is None:
            body = {"errors": exc.message_dict if hasattr(exc, "error_dict") else {"request": exc.messages}}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(io.service_errors(exc, resource, rename=rename), status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)


@dataclass
class PublishRefused(Exception):
    """Publishing was blocked (missing approval, redaction findings, state); nothing was written."""

    problems: list[str]
    findings: list = field(default_factory=list)
    missing_approvals: list[str] = field(default_factory=list)

    def body(self) -> dict:
        problems = list(self.problems)
        if self.findings:
            problems.append("To publish anyway, send \"redaction_override\" with the reason (it is recorded for the review).")
        return {
            "errors": {"publish": problems},
            "missing_approvals": self.missing_approvals,
            "redaction_findings": [io.finding_json(f) for f in self.findings],
        }


class _NeedsPermission(Exception):
    def __init__(self, perm: str, action: str) -> None:
        super().__init__(perm)
        self.perm, self.action = perm, action


# --- the publishing flow ----------------------------------------------------------------------


@dataclass
class Outcome:
    draft: UpdateDraft
    update: object | None  # the IncidentUpdate when published at once
    findings: list


def draft_and_maybe_publish(
    *, request: Request, incident: Incident | None, create: Callable[[], UpdateDraft], override: str,
    before: Callable[[], None] | None = None,
) -> Outcome:
    """Draft, submit, and publish at once when the policy needs no approval and the key may publish.

    One transaction: a blocked publish rolls the draft (and `before`'s writes) back.
    """
    actor, token = request.user, request.auth
    # Outside the transaction, so the near-miss record of a refusal is kept (editorial's rule).
    editorial.require(actor, "incidents.add_updatedraft", action="draft an update", incident=incident)
    editorial.require(actor, "incidents.change_updatedraft", action="submit an update for review", incident=incident)
    seen: dict = {}
    try:
        with transaction.atomic():
            if before is not None:
                before()
            draft = create()
            findings = editorial.draft_submit(draft=draft, actor=actor)
            seen["findings"] = findings
            draft.refresh_from_db()
            if editorial.required_approvals(draft) or not token.has_scope(ApiScope.PUBLISH):
                return Outcome(draft, None, findings)
            if not actor.has_perm("incidents.publish_updatedraft"):
                raise _NeedsPermission("incidents.publish_updatedraft", "publish an update")
            reason = override if findings else ""
            if reason and not actor.has_perm("incidents.override_redaction_updatedraft"):
                raise _NeedsPermission("incidents.override_redaction_updatedraft", "override redaction findings")
            update = editorial.draft_publish(draft=draft, actor=actor, redaction_override=reason)
            draft.refresh_from_db()
            return Outcome(draft, update, findings)
    except _NeedsPermission as need:
        # The transaction is rolled back: now record the refusal and answer 403.
        editorial.require(actor, need.perm, action=need.action, incident=incident)
        raise
    except editorial.PublishBlocked as blocked:
        raise PublishRefused(blocked.problems, seen.get("findings", [])) from None


def screened(request: Request, page: Page, texts: dict[str, str], *, override: str, incident: Incident | None = None) -> None:
    """Texts published without a draft (incident names, maintenance notices) pass the same
    redaction check: findings refuse the call (400 listing them) unless it carries an override
    reason and the user may override, which is recorded as a near miss."""
    from incidents import redaction
    from incidents.models import NearMiss, NearMissKind

    found = {field: editorial.page_findings(page, text or "") for field, text in texts.items()}
    found = {field: findings for field, findings in found.items() if findings}
    if not found:
        return
    if not override:
        problems = [f"Redaction findings in {field}: {redaction.summary(findings)}" for field, findings in found.items()]
        raise PublishRefused(problems, [f for findings in found.values() for f in findings])
    need_permission(request.user, "incidents.override_redaction_updatedraft", action="override redaction findings")
    NearMiss.objects.create(
        kind=NearMissKind.REDACTION_OVERRIDE, incident=incident, actor=request.user, action="api publish with findings",
        reason=f"{override} ({'; '.join(redaction.summary(f) for f in found.values())})",
    )


def accepted(draft: UpdateDraft, findings: list) -> Response:
    """202: the draft waits in review; the message says for whom."""
    missing = editorial.missing_approvals(draft)
    if missing:
        message = "Created as a draft awaiting approval: " + ", ".join(ApprovalRole(r).label for r in missing) + "."
    else:
        message = (
            "Created as a draft awaiting publication: this API key lacks the publish scope. "
            f"Publish it with POST /api/v1/pages/{draft.page.public_id}/drafts/{draft.public_id}/publish."
        )
    return Response({"draft": io.draft_json(draft, findings=findings), "message": message}, status=status.HTTP_202_ACCEPTED)


SEVERITY_BY_IMPACT = {Impact.CRITICAL: Severity.P1, Impact.MAJOR: Severity.P2, Impact.MINOR: Severity.P3}


def _stricter(sent: str | None, implied: str) -> str:
    """A client may raise the severity its impact implies, never lower it (P1 is the strictest):
    otherwise a critical outage could skip the approvals its severity requires."""
    return min(sent, implied) if sent else implied


def severity_for(impact: str) -> str:
    # Statuspage clients send no severity. Reading it off the impact errs towards the stricter
    # policy for a bigger outage (a P1 needs legal and PR) instead of publishing it unreviewed.
    return SEVERITY_BY_IMPACT.get(impact, Severity.P4)


def update_text(*, page: Page, incident: Incident | None, proposal: dict | None, data: dict, kind: str) -> tuple[str, MessageTemplate | None]:
    """The update's body: as sent, or the kind's current template filled with `template_values`."""
    body = data.get("body")
    if body is not None and body.strip():
        return body, None
    given = {k: v for k, v in (data.get("template_values") or {}).items()}
    unknown = [name for name in given if name not in message_templates.PLACEHOLDERS]
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in sorted(message_templates.PLACEHOLDERS))
        raise bad_request("incident", {"template_values": [f"Unknown placeholder {{{name}}}. Known placeholders: {known}." for name in unknown]})
    template = editorial.template_current(kind)
    if template is None:
        raise bad_request("incident", {"body": f"Write the body: there is no {kind} template."})
    values = {**editorial.template_values(page=page, incident=incident, proposal=proposal), **{k: v for k, v in given.items() if v.strip()}}
    try:
        return message_templates.fill(template.body, values, missing="error"), template
    except message_templates.MissingValues as exc:
        names = ", ".join(f"{{{name}}}" for name in exc.names)
        raise bad_request("incident", {"body": f"Write the body, or give template_values for {names} (the {template.label} template)."}) from None


def resolve_components(page: Page, data: dict) -> dict[Component, str]:
    """`components` ({id: status}) and `component_ids` -> {Component: status}.

    An id listed in component_ids without a status in `components` is linked at its current status.
    """
    statuses = dict(data.get("components") or {})
    ids = list(dict.fromkeys([*statuses, *(data.get("component_ids") or [])]))
    found = {c.public_id: c for c in Component.objects.filter(page=page, public_id__in=ids)}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise bad_request("incident", {"components": f"No component {', '.join(unknown)} on this page."})
    groups = [i for i in ids if found[i].is_group]
    if groups:
        raise bad_request("incident", {"components": f"{', '.join(groups)} is a group: name its components instead."})
    return {found[i]: statuses.get(i, found[i].status) for i in ids}


# --- base view --------------------------------------------------------------------------------


class V1View(UnauthenticatedThrottleMixin, APIView):
    """A key in `Authorization: OAuth <key>`; deny by default, throttled per key (and per client
    address without one, or with a wrong one), no CSRF (no cookies)."""

    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [TokenScope]
    throttle_classes = [ApiTokenRateThrottle]
    renderer_classes = [Utf8JSONRenderer]
    resource: str | None = None  # the body's wrapper, e.g. "incident"
    service_fields: dict[str, str] = {}  # a service's field name -> the API's

    def get_exception_handler(self):
        return v1_exception_handler

    def get_page(self, page_id: str) -> Page:
        page = Page.objects.filter(public_id=page_id).first()
        if page is None:
            raise exceptions.NotFound("No page with this id.")
        return page

    def get_incident(self, page: Page, incident_id: str) -> Incident:
        incident = io.incidents_queryset().filter(page=page, public_id=incident_id).first()
        if incident is None:
            raise exceptions.NotFound("No incident with this id on this page.")
        return incident

    def fields(self, request: Request) -> dict:
        return io.unwrap(request.data, self.resource)

    def body(self, request: Request, serializer: type, *, flat: bool = False) -> tuple[dict, set[str]]:
        """Validated fields, and the names the client actually sent (a PATCH changes only those)."""
        raw = request.data if flat else self.fields(request)
        if not isinstance(raw, dict):
            raw = dict(raw.items()) if hasattr(raw, "items") else {}
        form = serializer(data=raw)
        if not form.is_valid():
            raise exceptions.ValidationError(io.errors_body(form.errors, self.resource) if self.resource else {"errors": form.errors})
        return dict(form.validated_data), set(raw)

    def query(self, request: Request, serializer: type) -> dict:
        form = serializer(data=request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError({"errors": form.errors})
        return form.validated_data


def paginate(rows: QuerySet, params: dict) -> QuerySet:
    start = (params["page"] - 1) * params["limit"]
    return rows[start : start + params["limit"]]


PAGE_PARAM = OpenApiParameter("page_id", str, OpenApiParameter.PATH, description="The page's id.")
LIST_PARAMS = [
    OpenApiParameter("limit", int, description="At most 100."),
    OpenApiParameter("page", int, description="From 1."),
]
_ERRORS = {
    400: OpenApiResponse(io.ErrorOut, description="A field or the reason named."),
    401: OpenApiResponse(io.ErrorOut, description="No key, or an unknown or revoked one."),
    403: OpenApiResponse(io.ErrorOut, description="The key lacks a scope, or its user a permission (named)."),
    404: OpenApiResponse(io.ErrorOut),
}


def responses(ok: dict) -> dict:
    return {**ok, **_ERRORS}


# --- pages ------------------------------------------------------------------------------------


class PageListApi(V1View):
    @extend_schema(tags=["pages"], summary="List pages", responses=responses({200: io.PageOut(many=True)}))
    def get(self, request: Request) -> Response:
        return Response([io.page_json(page) for page in Page.objects.order_by("name", "pk")])


class PageDetailApi(V1View):
    resource = "page"
    service_fields = {"description": "page_description"}

    @extend_schema(tags=["pages"], summary="Get a page", parameters=[PAGE_PARAM], responses=responses({200: io.PageOut}))
    def get(self, request: Request, page_id: str) -> Response:
        return Response(io.page_json(self.get_page(page_id)))

    @extend_schema(
        tags=["pages"], summary="Update a page", parameters=[PAGE_PARAM], request=io.PageBody,
        responses=responses({200: io.PageOut}),
    )
    def patch(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        need_permission(request.user, "incidents.change_page", action="change the page")
        data, _sent = self.body(request, io.PageInput)
        for name, attr in (("name", "name"), ("url", "url"), ("time_zone", "time_zone"), ("page_description", "description"), ("support_url", "support_url")):
            if name in data:
                setattr(page, attr, data[name])
        services.page_save(page=page)
        return Response(io.page_json(page))

    put = patch


# --- components -------------------------------------------------------------------------------


def _group_of(page: Page, group_id: str | None) -> Component | None:
    if not group_id:
        return None
    group = Component.objects.filter(page=page, public_id=group_id).first()
    if group is None or not group.is_group:
        raise bad_request("component", {"group_id": f"No component group {group_id} on this page."})
    return group


class ComponentListApi(V1View):
    resource = "component"
    service_fields = {"group": "group_id"}

    @extend_schema(tags=["components"], summary="List components (groups included)", parameters=[PAGE_PARAM],
                   responses=responses({200: io.ComponentOut(many=True)}))
    def get(self, request: Request, page_id: str) -> Response:
        return Response(io.PageComponents(self.get_page(page_id)).all())

    @extend_schema(
        tags=["components"], summary="Create a component", parameters=[PAGE_PARAM],
        request=io.ComponentBody, responses=responses({201: io.ComponentOut}),
    )
    def post(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        need_permission(request.user, "incidents.add_component", action="create a component")
        data, _sent = self.body(request, io.ComponentInput)
        if not (data.get("name") or "").strip():
            raise bad_request("component", {"name": "Name the component."})
        component = Component(
            page=page, name=data["name"].strip(), description=data.get("description") or "",
            group=_group_of(page, data.get("group_id")), status=data.get("status", "operational"),
            only_show_if_degraded=data.get("only_show_if_degraded", False), showcase=data.get("showcase", True),
            position=data.get("position", 1), start_date=data.get("start_date"),
        )
        services.component_save(component=component, actor=request.user, reason="created through the API", source=StatusSource.API)
        return Response(io.PageComponents(page).component(component.pk), status=status.HTTP_201_CREATED)


class ComponentDetailApi(V1View):
    resource = "component"
    service_fields = {"group": "group_id"}

    def get_component(self, page: Page, component_id: str) -> Component:
        component = Component.objects.filter(page=page, public_id=component_id).first()
        if component is None:
            raise exceptions.NotFound("No component with this id on this page.")
        return component

    @extend_schema(tags=["components"], summary="Get a component", parameters=[PAGE_PARAM], responses=responses({200: io.ComponentOut}))
    def get(self, request: Request, page_id: str, component_id: str) -> Response:
        page = self.get_page(page_id)
        return Response(io.PageComponents(page).component(self.get_component(page, component_id).pk))

    @extend_schema(
        tags=["components"], summary="Update a component (a status change is logged)", parameters=[PAGE_PARAM],
        request=io.ComponentBody, responses=responses({200: io.ComponentOut}),
    )
    def patch(self, request: Request, page_id: str, component_id: str) -> Response:
        page = self.get_page(page_id)
        component = self.get_component(page, component_id)
        need_permission(request.user, "incidents.change_component", action="change a component")
        data, _sent = self.body(request, io.ComponentInput)
        for name in ("name", "status", "only_show_if_degraded", "showcase", "position", "start_date"):
            if name in data:
                setattr(component, name, data[name])
        if "description" in data:
            component.description = data["description"] or ""
        if "group_id" in data:
            component.group = _group_of(page, data["group_id"])
        services.component_save(component=component, actor=request.user, reason="changed through the API", source=StatusSource.API)
        return Response(io.PageComponents(page).component(component.pk))

    put = patch

    @extend_schema(tags=["components"], summary="Delete a component", parameters=[PAGE_PARAM], responses=responses({204: None}))
    def delete(self, request: Request, page_id: str, component_id: str) -> Response:
        page = self.get_page(page_id)
        component = self.get_component(page, component_id)
        need_permission(request.user, "incidents.delete_component", action="delete a component")
        try:
            services.content_delete(instances=[component], actor=request.user)
        except IntegrityError:
            raise bad_request("component", {"__all__": "This group still has components; move or delete them first."}) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class ComponentGroupListApi(V1View):
    resource = "component_group"

    @extend_schema(tags=["component groups"], summary="List component groups", parameters=[PAGE_PARAM],
                   responses=responses({200: io.ComponentGroupOut(many=True)}))
    def get(self, request: Request, page_id: str) -> Response:
        components = io.PageComponents(self.get_page(page_id))
        return Response([components.group(pk) for pk, row in components.rows.items() if row["group"]])

    @extend_schema(
        tags=["component groups"], summary="Create a component group", parameters=[PAGE_PARAM],
        request=io.ComponentGroupBody, responses=responses({201: io.ComponentGroupOut}),
    )
    def post(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        need_permission(request.user, "incidents.add_component", action="create a component group")
        data, _sent = self.body(request, io.ComponentGroupInput)
        if not (data.get("name") or "").strip():
            raise bad_request("component_group", {"name": "Name the group."})
        with transaction.atomic():
            group = services.component_save(
                component=Component(page=page, is_group=True, name=data["name"].strip(), description=data.get("description") or "",
                                    position=data.get("position", 1)),
                actor=request.user, reason="created through the API", source=StatusSource.API,
            )
            set_members(page, group, data.get("components") or [], actor=request.user)
        return Response(io.PageComponents(page).group(group.pk), status=status.HTTP_201_CREATED)


def set_members(page: Page, group: Component, component_ids: list[str], *, actor) -> None:
    """Make exactly these components the group's members (others leave it, ungrouped)."""
    wanted = {c.public_id: c for c in Component.objects.filter(page=page, public_id__in=component_ids)}
    unknown = [i for i in component_ids if i not in wanted]
    if unknown:
        raise bad_request("component_group", {"components": f"No component {', '.join(unknown)} on this page."})
    if any(c.is_group for c in wanted.values()):
        raise bad_request("component_group", {"components": "A group cannot belong to another group."})
    for leaving in Component.objects.filter(group=group).exclude(public_id__in=list(wanted)):
        leaving.group = None
        services.component_save(component=leaving, actor=actor, reason="left its group (API)", source=StatusSource.API)
    for member in wanted.values():
        if member.group_id != group.pk:
            member.group = group
            services.component_save(component=member, actor=actor, reason=f"moved into {group.name} (API)", source=StatusSource.API)


class ComponentGroupDetailApi(V1View):
    resource = "component_group"

    def get_group(self, page: Page, group_id: str) -> Component:
        group = Component.objects.filter(page=page, public_id=group_id, is_group=True).first()
        if group is None:
            raise exceptions.NotFound("No component group with this id on this page.")
        return group

    @extend_schema(tags=["component groups"], summary="Get a component group", parameters=[PAGE_PARAM],
                   responses=responses({200: io.ComponentGroupOut}))
    def get(self, request: Request, page_id: str, group_id: str) -> Response:
        page = self.get_page(page_id)
        return Response(io.PageComponents(page).group(self.get_group(page, group_id).pk))

    @extend_schema(
        tags=["component groups"], summary="Update a component group (components: the complete member list)",
        parameters=[PAGE_PARAM], request=io.ComponentGroupBody,
        responses=responses({200: io.ComponentGroupOut}),
    )
    def patch(self, request: Request, page_id: str, group_id: str) -> Response:
        page = self.get_page(page_id)
        group = self.get_group(page, group_id)
        need_permission(request.user, "incidents.change_component", action="change a component group")
        data, _sent = self.body(request, io.ComponentGroupInput)
        with transaction.atomic():
            if "name" in data:
                group.name = data["name"].strip()
            if "description" in data:
                group.description = data["description"] or ""
            if "position" in data:
                group.position = data["position"]
            services.component_save(component=group, actor=request.user, reason="changed through the API", source=StatusSource.API)
            if "components" in data:
                set_members(page, group, data["components"], actor=request.user)
        return Response(io.PageComponents(page).group(group.pk))

    put = patch

    @extend_schema(tags=["component groups"], summary="Delete a component group (its components stay, ungrouped)",
                   parameters=[PAGE_PARAM], responses=responses({204: None}))
    def delete(self, request: Request, page_id: str, group_id: str) -> Response:
        page = self.get_page(page_id)
        group = self.get_group(page, group_id)
        need_permission(request.user, "incidents.delete_component", action="delete a component group")
        with transaction.atomic():
            set_members(page, group, [], actor=request.user)
            services.content_delete(instances=[group], actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- incidents --------------------------------------------------------------------------------


def _incident_out(incident_pk: int, page: Page) -> dict:
    return io.incident_json(io.incidents_queryset().get(pk=incident_pk), io.PageComponents(page))


class _IncidentList(V1View):
    resource = "incident"

    def listing(self, request: Request, page: Page, rows: QuerySet) -> Response:
        params = self.query(request, io.ListQuery)
        if params.get("q"):
            rows = rows.filter(name__icontains=params["q"].strip())
        components = io.PageComponents(page)
        return Response([io.incident_json(i, components) for i in paginate(rows.order_by("-started_at", "-pk"), params)])


INCIDENT_LIST = dict(
    tags=["incidents"], parameters=[PAGE_PARAM, OpenApiParameter("q", str, description="Words in the name."), *LIST_PARAMS],
    responses=responses({200: io.IncidentOut(many=True)}),
)
CREATED_OR_DRAFT = {
    201: io.IncidentOut,
    202: OpenApiResponse(io.DraftAcceptedOut, description="Waiting for approval (or for a key with the publish scope)."),
}


class IncidentListApi(_IncidentList):
    @extend_schema(summary="List incidents and maintenances, newest first", **INCIDENT_LIST)
    def get(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        return self.listing(request, page, io.incidents_queryset().filter(page=page))

    @extend_schema(
        tags=["incidents"], summary="Create an incident (through the editorial policy) or schedule a maintenance",
        parameters=[PAGE_PARAM], request=io.IncidentBody, responses=responses(CREATED_OR_DRAFT),
    )
    def post(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        data, _sent = self.body(request, io.IncidentInput)
        if not (data.get("name") or "").strip():
            raise bad_request("incident", {"name": "Name the incident."})
        if data.get("status") in MaintenanceStatus.values or data.get("scheduled_for"):
            return self.schedule_maintenance(request, page, data)
        incident_status = data.get("status") or IncidentStatus.INVESTIGATING
        if incident_status not in OPEN_INCIDENT_STATUSES:
            raise bad_request("incident", {"status": "A new incident starts as investigating, identified or monitoring."})
        components = resolve_components(page, data)
        impact = data.get("impact_override") or ""
        proposal = {
            "name": data["name"].strip(),
            "severity": _stricter(data.get("severity"), severity_for(impact or impact_from_component_statuses(components.values()))),
            "category": data.get("category") or "outage",
            "impact": impact,
            "components": {str(c.pk): s for c, s in components.items()},
            "regions": [],
        }
        body, template = update_text(page=page, incident=None, proposal=proposal, data=data, kind=MessageKind.INITIAL_ALERT)
        outcome = draft_and_maybe_publish(
            request=request, incident=None, override=io.top_level(request.data, "redaction_override", data),
            create=lambda: editorial.draft_create(
                page=page, actor=request.user, proposal=proposal, status=incident_status, body=body, template=template,
                deliver_notifications=data["deliver_notifications"],
            ),
        )
        if outcome.update is None:
            return accepted(outcome.draft, outcome.findings)
        return Response(_incident_out(outcome.update.incident_id, page), status=status.HTTP_201_CREATED)

    def schedule_maintenance(self, request: Request, page: Page, data: dict) -> Response:
        """A maintenance notice goes out as announced (maintenances have no severity to weigh), so it needs the publish scope."""
        need_scope(request.auth, ApiScope.PUBLISH, why="scheduling a maintenance announces it to subscribers.")
        need_permission(request.user, "incidents.add_maintenance", action="schedule a maintenance")
        if data.get("status") not in (None, MaintenanceStatus.SCHEDULED):
            raise bad_request("incident", {"status": "A new maintenance starts as scheduled."})
        if not data.get("scheduled_for") or not data.get("scheduled_until"):
            raise bad_request("incident", {"scheduled_until": "A maintenance needs scheduled_for and scheduled_until."})
        if not (data.get("body") or "").strip():
            raise bad_request("incident", {"body": "Say what the maintenance is and what customers will notice."})
        components = resolve_components(page, data)
        screened(request, page, {"name": data["name"], "body": data["body"]}, override=io.top_level(request.data, "redaction_override", data))
        maintenance = services.maintenance_schedule(
            page=page, name=data["name"].strip(), body=data["body"], scheduled_for=data["scheduled_for"],
            scheduled_until=data["scheduled_until"], components=list(components),
            auto_start=data["scheduled_auto_in_progress"], auto_complete=data["scheduled_auto_completed"],
            deliver_notifications=data["deliver_notifications"], actor=request.user,
        )
        return Response(_incident_out(maintenance.pk, page), status=status.HTTP_201_CREATED)


class IncidentUnresolvedApi(_IncidentList):
    @extend_schema(summary="List unresolved incidents", **INCIDENT_LIST)
    def get(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        return self.listing(request, page, io.incidents_queryset().filter(page=page).unresolved())


class IncidentScheduledApi(_IncidentList):
    @extend_schema(summary="List scheduled (not yet started) maintenances", **INCIDENT_LIST)
    def get(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        rows = io.incidents_queryset().filter(page=page, kind=IncidentKind.MAINTENANCE, status=MaintenanceStatus.SCHEDULED)
        return self.listing(request, page, rows)


MAINTENANCE_STEPS = {
    MaintenanceStatus.IN_PROGRESS: services.maintenance_start,
    MaintenanceStatus.VERIFYING: services.maintenance_verify,
    MaintenanceStatus.COMPLETED: services.maintenance_complete,
}


class IncidentDetailApi(V1View):
    resource = "incident"

    @extend_schema(tags=["incidents"], summary="Get an incident", parameters=[PAGE_PARAM], responses=responses({200: io.IncidentOut}))
    def get(self, request: Request, page_id: str, incident_id: str) -> Response:
        page = self.get_page(page_id)
        return Response(io.incident_json(self.get_incident(page, incident_id), io.PageComponents(page)))

    @extend_schema(
        tags=["incidents"],
        summary="Update an incident; a body and/or a new status posts an update (through the editorial policy)",
        parameters=[PAGE_PARAM], request=io.IncidentBody,
        responses=responses({200: io.IncidentOut, 202: CREATED_OR_DRAFT[202]}),
    )
    def patch(self, request: Request, page_id: str, incident_id: str) -> Response:
        page = self.get_page(page_id)
        incident = self.get_incident(page, incident_id)
        data, sent = self.body(request, io.IncidentInput)
        edits = {name: data[name] for name in ("name", "impact_override") if name in sent and data.get(name)}
        components = resolve_components(page, data) if sent & {"components", "component_ids"} else {}
        if edits or components:
            need_permission(request.user, "incidents.change_incident", action="change an incident")
        if incident.is_maintenance:
            return self.maintenance_step(request, page, incident, data, sent, edits)
        if edits.get("name"):
            # A new name is public at once (the words of an update wait for their draft).
            screened(request, page, {"name": edits["name"]}, override=io.top_level(request.data, "redaction_override", data), incident=incident)
        new_status = data.get("status") or incident.status
        if new_status not in IncidentStatus.values:
            raise bad_request("incident", {"status": f"An incident's status is one of {', '.join(IncidentStatus.values)}."})
        posts_update = "body" in sent or new_status != incident.status

        def before() -> None:
            # In the request's transaction: a blocked publish undoes these too.
            locked = Incident.objects.select_for_update().get(pk=incident.pk)
            if edits:
                locked.name = edits.get("name", locked.name).strip()
                locked.impact = edits.get("impact_override", locked.impact)
                services.incident_edit(incident=locked, actor=request.user)
            if components:
                # A draft cannot carry component statuses for an open incident (editorial._publish
                # posts none), so they change now, like a component PATCH; the words wait for review.
                services.incident_set_components(
                    incident=locked, changes=components, actor=request.user, source=StatusSource.API,
                    reason=f"Update on {locked.name} (API)",
                )

        if not posts_update:
            with transaction.atomic():
                before()
            return Response(_incident_out(incident.pk, page))
        if new_status == IncidentStatus.RESOLVED:
            kind = MessageKind.RESOLUTION
        else:
            kind = MessageKind.PROGRESS_UPDATE
        body, template = update_text(page=page, incident=incident, proposal=None, data=data, kind=kind)
        outcome = draft_and_maybe_publish(
            request=request, incident=incident, override=io.top_level(request.data, "redaction_override", data), before=before,
            create=lambda: editorial.draft_create(
                page=page, actor=request.user, kind=kind, incident=incident, status=new_status, body=body, template=template,
                deliver_notifications=data["deliver_notifications"],
            ),
        )
        if outcome.update is None:
            return accepted(outcome.draft, outcome.findings)
        return Response(_incident_out(incident.pk, page))

    put = patch

    def maintenance_step(self, request: Request, page: Page, incident: Incident, data: dict, sent: set, edits: dict) -> Response:
        """A maintenance's updates are its steps: in progress, verifying, completed. Before it
        starts, `completed` calls it off (a cancellation notice); a new window is handled by
        maintenance_window."""
        new_status = data.get("status") or incident.status
        if sent & {"components", "component_ids"}:
            raise bad_request("incident", {"components": "A maintenance's components are set when it is scheduled; its steps move them."})
        moved = _moved_window(incident, data)
        if moved:
            return self.maintenance_window(request, page, incident, data, edits, moved, new_status)
        if new_status == incident.status:
            if "body" in sent:
                raise bad_request("incident", {"status": "A maintenance's updates are its steps: send status in_progress, verifying or completed with the body."})
        elif new_status not in MAINTENANCE_STEPS:
            raise bad_request("incident", {"status": f"A maintenance moves to {', '.join(MAINTENANCE_STEPS)}."})
        else:
            need_scope(request.auth, ApiScope.PUBLISH, why="a maintenance step is announced to subscribers.")
            need_permission(request.user, "incidents.change_maintenance", action="move a maintenance on")
        screened(
            request, page, {"name": edits.get("name", ""), "body": data.get("body") or "" if new_status != incident.status else ""},
            override=io.top_level(request.data, "redaction_override", data), incident=incident,
        )
        with transaction.atomic():
            if edits.get("name"):
                locked = Incident.objects.select_for_update().get(pk=incident.pk)
                locked.name = edits["name"].strip()
                services.incident_edit(incident=locked, actor=request.user)
            if new_status == MaintenanceStatus.COMPLETED and incident.status == MaintenanceStatus.SCHEDULED:
                # Completing a window that never opened tells subscribers it will not happen.
                services.maintenance_cancel(
                    maintenance=incident, body=data.get("body") or "", actor=request.user,
                    deliver_notifications=data["deliver_notifications"],
                )
            elif new_status != incident.status:
                MAINTENANCE_STEPS[new_status](maintenance=incident, body=data.get("body") or "", actor=request.user)
        return Response(_incident_out(incident.pk, page))

    def maintenance_window(
        self, request: Request, page: Page, incident: Incident, data: dict, edits: dict, moved: dict[str, datetime], new_status: str,
    ) -> Response:
        """A new window: before the start a reschedule (the body is its optional message); while
        it runs a later end is an overrun (the body is the reason, so it is required)."""
        if new_status != incident.status:
            raise bad_request("incident", {"status": "Move the window or move the maintenance on, one request at a time."})
        need_scope(request.auth, ApiScope.PUBLISH, why="a new window is announced to subscribers.")
        need_permission(request.user, "incidents.change_maintenance", action="reschedule or extend a maintenance")
        body = data.get("body") or ""
        if incident.status == MaintenanceStatus.SCHEDULED:
            start, end = moved.get("scheduled_for", incident.scheduled_for), moved.get("scheduled_until", incident.scheduled_until)

            def announce() -> None:
                services.maintenance_reschedule(
                    maintenance=incident, scheduled_for=start, scheduled_until=end, body=body, actor=request.user,
                    deliver_notifications=data["deliver_notifications"],
                )
        elif incident.status in ACTIVE_MAINTENANCE_STATUSES:
            if "scheduled_for" in moved:
                raise bad_request("incident", {"scheduled_for": (
                    "This maintenance has started, so its window cannot be rescheduled. To announce an overrun, "
                    "send a later scheduled_until with a body saying why."
                )})
            if not body.strip():
                raise bad_request("incident", {"body": "Say why the work takes longer: the body is published with the new end."})

            def announce() -> None:
                services.maintenance_extend(maintenance=incident, scheduled_until=moved["scheduled_until"], reason=body, actor=request.user)
        else:
            raise bad_request("incident", {name: "This maintenance is completed: its window no longer changes." for name in moved})
        screened(
            request, page, {"name": edits.get("name", ""), "body": body},
            override=io.top_level(request.data, "redaction_override", data), incident=incident,
        )
        with transaction.atomic():
            if edits.get("name"):
                locked = Incident.objects.select_for_update().get(pk=incident.pk)
                locked.name = edits["name"].strip()
                services.incident_edit(incident=locked, actor=request.user)
            announce()
        return Response(_incident_out(incident.pk, page))

    @extend_schema(tags=["incidents"], summary="Delete an incident", parameters=[PAGE_PARAM], responses=responses({200: io.IncidentOut}))
    def delete(self, request: Request, page_id: str, incident_id: str) -> Response:
        page = self.get_page(page_id)
        incident = self.get_incident(page, incident_id)
        need_scope(request.auth, ApiScope.PUBLISH, why="deleting an incident takes published words off the page.")
        need_permission(request.user, "incidents.delete_incident", action="delete an incident")
        gone = io.incident_json(incident, io.PageComponents(page))
        services.content_delete(instances=[incident], actor=request.user)
        return Response(gone)


def _same_instant(a: datetime, b: datetime) -> bool:
    # Clients echo the millisecond timestamps they were given.
    return abs((a - b).total_seconds()) < 0.001


def _moved_window(incident: Incident, data: dict) -> dict[str, datetime]:
    """The window times a PATCH really changes: clients echo the ones they were given, and a
    null leaves a time as it is (as before these PATCHes moved windows)."""
    moved = {}
    for name in ("scheduled_for", "scheduled_until"):
        sent, current = data.get(name), getattr(incident, name)
        if sent is not None and (current is None or not _same_instant(sent, current)):
            moved[name] = sent
    return moved


class IncidentUpdateApi(V1View):
    resource = "incident_update"

    def get_update(self, page: Page, incident_id: str, update_id: str):
        incident = self.get_incident(page, incident_id)
        update = incident.updates.filter(public_id=update_id).select_related("incident").first()
        if update is None:
            raise exceptions.NotFound("No update with this id on this incident.")
        return update

    @extend_schema(tags=["incidents"], summary="Get an incident update", parameters=[PAGE_PARAM],
                   responses=responses({200: io.IncidentUpdateOut}))
    def get(self, request: Request, page_id: str, incident_id: str, update_id: str) -> Response:
        page = self.get_page(page_id)
        return Response(io.update_json(self.get_update(page, incident_id, update_id), page))

    @extend_schema(
        tags=["incidents"],
        summary="Update an incident update: published words are final, so only inert metadata is accepted",
        parameters=[PAGE_PARAM], request=io.IncidentUpdateBody,
        responses=responses({200: io.IncidentUpdateOut}),
    )
    def patch(self, request: Request, page_id: str, incident_id: str, update_id: str) -> Response:
        """The text went out as written (page, subscribers, archive). Unchanged values and the
        Twitter flags (there is no Twitter integration) are accepted so a client echoing the whole
        object back is not refused; anything that would rewrite the record is a 400."""
        page = self.get_page(page_id)
        update = self.get_update(page, incident_id, update_id)
        data, _sent = self.body(request, io.IncidentUpdateInput)
        refused: dict[str, str] = {}
        if "body" in data and data["body"] != update.body:
            refused["body"] = (
                "A published update cannot be changed: it went out as written and is archived. A correction must be a "
                f"new update: PATCH /api/v1/pages/{page.public_id}/incidents/{update.incident.public_id} with a body."
            )
        if "display_at" in data and not _same_instant(data["display_at"], update.display_at):
            refused["display_at"] = "The time line shows when updates were published; a published update's time cannot move."
        if "deliver_notifications" in data and data["deliver_notifications"] != update.deliver_notifications:
            refused["deliver_notifications"] = "Whether subscribers were notified was settled when the update was published."
        if refused:
            raise bad_request("incident_update", refused)
        return Response(io.update_json(update, page))

    put = patch


# --- post-mortems -------------------------------------------------------------------------------
# Writes of the Postmortem model. They belong in incidents.services (postmortem_*), which this
# task could not edit; they follow its conventions so they can move there as they are.



class PostmortemApi(V1View):
    resource = "postmortem"

    @extend_schema(tags=["postmortems"], summary="Get an incident's post-mortem", parameters=[PAGE_PARAM],
                   responses=responses({200: io.PostmortemOut}))
    def get(self, request: Request, page_id: str, incident_id: str) -> Response:
        incident = self.get_incident(self.get_page(page_id), incident_id)
        return Response(io.postmortem_json(incident, Postmortem.objects.filter(incident=incident).first()))

    @extend_schema(
        tags=["postmortems"], summary="Write an incident's post-mortem (postmortem_body)", parameters=[PAGE_PARAM],
        request=io.PostmortemBody, responses=responses({200: io.PostmortemOut}),
    )
    def put(self, request: Request, page_id: str, incident_id: str) -> Response:
        incident = self.get_incident(self.get_page(page_id), incident_id)
        need_permission(request.user, "incidents.change_postmortem", action="write a post-mortem")
        data, _sent = self.body(request, io.PostmortemInput)
        body = data.get("postmortem_body", data.get("body_draft"))
        if body is None:
            raise bad_request("postmortem", {"postmortem_body": "Send the post-mortem's text."})
        if incident.is_open:
            raise bad_request("postmortem", {"state": "The incident is still open; its post-mortem comes after it is resolved."})
        return Response(io.postmortem_json(incident, editorial.postmortem_write(incident=incident, body=body, actor=request.user)))


class PostmortemPublishApi(V1View):
    resource = "postmortem"
    permission_classes = [TokenScope, PublishScope]

    @extend_schema(tags=["postmortems"], summary="Publish the post-mortem (publish scope), or draft it for approval",
                   parameters=[PAGE_PARAM], request=None,
                   responses=responses({200: io.PostmortemOut, 202: CREATED_OR_DRAFT[202]}))
    def put(self, request: Request, page_id: str, incident_id: str) -> Response:
        page = self.get_page(page_id)
        incident = self.get_incident(page, incident_id)
        need_permission(request.user, "incidents.change_postmortem", action="publish a post-mortem")
        postmortem = Postmortem.objects.filter(incident=incident).first()
        if postmortem is None or not postmortem.body.strip():
            raise bad_request("postmortem", {"postmortem_body": "Write the post-mortem (PUT …/postmortem) before publishing it."})
        if postmortem.state == DraftState.PUBLISHED:
            raise bad_request("postmortem", {"state": "This post-mortem is already published."})
        if postmortem.visibility == PostmortemVisibility.NONE:
            raise bad_request("postmortem", {"visibility": "This post-mortem's visibility is none; set it in the admin to publish it."})
        # Approved like an update: through a post-mortem draft, published at once only when the
        # policy needs no approval and the key may publish; otherwise 202 with the draft.
        outcome = draft_and_maybe_publish(
            request=request, incident=incident, override=io.top_level(request.data, "redaction_override", {}),
            create=lambda: editorial.draft_create(
                page=page, actor=request.user, kind=MessageKind.POSTMORTEM, incident=incident, body=postmortem.body,
                deliver_notifications=postmortem.notify_subscribers,
            ),
        )
        if outcome.draft.state != DraftState.PUBLISHED:
            return accepted(outcome.draft, outcome.findings)
        return Response(io.postmortem_json(incident, Postmortem.objects.get(incident=incident)))


class PostmortemRevertApi(V1View):
    resource = "postmortem"
    permission_classes = [TokenScope, PublishScope]

    @extend_schema(tags=["postmortems"], summary="Revert a published post-mortem to a draft (publish scope)",
                   parameters=[PAGE_PARAM], request=None, responses=responses({200: io.PostmortemOut}))
    def put(self, request: Request, page_id: str, incident_id: str) -> Response:
        incident = self.get_incident(self.get_page(page_id), incident_id)
        need_permission(request.user, "incidents.change_postmortem", action="revert a post-mortem")
        return Response(io.postmortem_json(incident, editorial.postmortem_revert(incident=incident, actor=request.user)))


# --- drafts (ours) ------------------------------------------------------------------------------


class _DraftView(V1View):
    def get_draft(self, page: Page, draft_id: str) -> UpdateDraft:
        draft = (
            UpdateDraft.objects.select_related("page", "incident", "template", "published_update")
            .filter(page=page, public_id=draft_id).first()
        )
        if draft is None:
            raise exceptions.NotFound("No draft with this id on this page.")
        return draft


class DraftListApi(_DraftView):
    @extend_schema(
        tags=["drafts"], summary="List update drafts, newest first",
        parameters=[PAGE_PARAM, OpenApiParameter("state", str, enum=DraftState.values), *LIST_PARAMS],
        responses=responses({200: io.DraftOut(many=True)}),
    )
    def get(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        params = self.query(request, io.DraftListQuery)
        drafts = UpdateDraft.objects.filter(page=page).select_related("page", "incident", "template", "published_update")
        if params.get("state"):
            drafts = drafts.filter(state=params["state"])
        return Response([io.draft_json(d) for d in paginate(drafts.order_by("-created", "-id"), params)])


class DraftDetailApi(_DraftView):
    @extend_schema(tags=["drafts"], summary="Get a draft", parameters=[PAGE_PARAM], responses=responses({200: io.DraftOut}))
    def get(self, request: Request, page_id: str, draft_id: str) -> Response:
        return Response(io.draft_json(self.get_draft(self.get_page(page_id), draft_id)))


class DraftApproveApi(_DraftView):
    """The key's user approves for one role; they need that role's permission and must not be an author."""

    permission_classes = [TokenScope, PublishScope]

    @extend_schema(tags=["drafts"], summary="Approve a draft for a role (publish scope)", parameters=[PAGE_PARAM],
                   request=io.ApproveInput, responses=responses({200: io.DraftOut}))
    def post(self, request: Request, page_id: str, draft_id: str) -> Response:
        draft = self.get_draft(self.get_page(page_id), draft_id)
        data, _sent = self.body(request, io.ApproveInput, flat=True)
        # Not in a transaction of ours: the service's own, so a refusal's near-miss record stays.
        editorial.draft_approve(
            draft=draft, actor=request.user, role=data["role"], note=data.get("note", ""), revision=data.get("revision"),
        )
        draft.refresh_from_db()
        return Response(io.draft_json(draft))


class DraftPublishApi(_DraftView):
    permission_classes = [TokenScope, PublishScope]

    @extend_schema(tags=["drafts"], summary="Publish an approved draft (publish scope)", parameters=[PAGE_PARAM],
                   request=io.PublishInput, responses=responses({200: io.DraftPublishedOut}))
    def post(self, request: Request, page_id: str, draft_id: str) -> Response:
        page = self.get_page(page_id)
        draft = self.get_draft(page, draft_id)
        data, _sent = self.body(request, io.PublishInput, flat=True)
        try:
            update = editorial.draft_publish(draft=draft, actor=request.user, redaction_override=data.get("redaction_override", ""))
        except editorial.PublishBlocked as blocked:
            draft.refresh_from_db()
            findings = editorial.redaction_findings(draft) if not data.get("redaction_override", "").strip() else []
            raise PublishRefused(blocked.problems, findings, editorial.missing_approvals(draft)) from None
        draft.refresh_from_db()
        # An internal post-mortem is approved and kept, not published: no update to show.
        incident_id = update.incident_id if update is not None else draft.incident_id
        return Response({"draft": io.draft_json(draft), "incident": _incident_out(incident_id, page)})


# --- policy, templates, archive (ours) ----------------------------------------------------------


class PolicyApi(V1View):
    @extend_schema(tags=["editorial"], summary="The current severity policy version and its rules", responses=responses({200: io.PolicyOut}))
    def get(self, request: Request) -> Response:
        return Response(io.policy_json(editorial.policy_current()))


class TemplateListApi(V1View):
    @extend_schema(
        tags=["editorial"], summary="The current message templates",
        parameters=[OpenApiParameter("language", str), OpenApiParameter("kind", str, enum=MessageKind.values)],
        responses=responses({200: io.TemplateOut(many=True)}),
    )
    def get(self, request: Request) -> Response:
        templates = MessageTemplate.objects.filter(is_current=True).order_by("kind", "language")
        if request.query_params.get("language"):
            templates = templates.filter(language=request.query_params["language"])
        if request.query_params.get("kind"):
            templates = templates.filter(kind=request.query_params["kind"])
        return Response([io.template_json(t) for t in templates])


class ArchiveApi(V1View):
    @extend_schema(
        tags=["editorial"], summary="Search the message archive, newest first (no HTML bodies)",
        parameters=[
            OpenApiParameter("incident", str, description="An incident id (also of a deleted incident)."),
            OpenApiParameter("channel", str, enum=["email", "sms", "webhook", "slack", "teams", "page", "chat"]),
            OpenApiParameter("q", str, description="Words in the subject, text or recipient."),
            *LIST_PARAMS,
        ],
        responses=responses({200: io.ArchivedMessageOut(many=True)}),
    )
    def get(self, request: Request) -> Response:
        from notifications.admin import masked_recipient
        from notifications.models import ArchiveChannel, ArchivedMessage

        # The archive holds subscribers' addresses: the key's user must be allowed to read it.
        need_permission(request.user, "notifications.view_archivedmessage", action="read the message archive")
        params = self.query(request, io.ArchiveQuery)
        rows = ArchivedMessage.objects.defer("html_body", "headers")
        if params.get("incident"):
            rows = rows.filter(incident_public_id=params["incident"])
        if params.get("channel"):
            if params["channel"] not in ArchiveChannel.values:
                raise bad_request(None, {"channel": f"Unknown channel; use {', '.join(ArchiveChannel.values)}."})
            rows = rows.filter(channel=params["channel"])
        if params.get("q"):
            q = params["q"].strip()
            # Bodies hold subscribers' signed links: searching them would let a caller read a
            # link back one character at a time, so the search covers subjects and recipients.
            rows = rows.filter(Q(subject__icontains=q) | Q(recipient__icontains=q))
        return Response([
            io.archived_message_json(row, recipient=masked_recipient(row.channel, row.recipient))
            for row in paginate(rows.order_by("-sequence"), params)
        ])


# --- OpenAPI descriptions of the subscriber endpoints ---------------------------------------------
# Their views (subscribers/api.py) are plain APIViews the schema generator cannot read; these
# extensions describe them from here, so the schema is complete and `check --deploy` stays clean.

_SUBSCRIBER_PARAMS = [
    PAGE_PARAM,
    OpenApiParameter("q", str), OpenApiParameter("type", str), OpenApiParameter("state", str),
    OpenApiParameter("sort_direction", str, enum=["asc", "desc"]), *LIST_PARAMS,
]


def _described(target: str, **methods) -> type[OpenApiViewExtension]:
    class Described(OpenApiViewExtension):
        target_class = target

        def view_replacement(self):
            return extend_schema_view(**methods)(type(self.target_class.__name__, (self.target_class,), {}))

    Described.__name__ = f"Described{target.rsplit('.', 1)[1]}"
    return Described


_SUB_TAGS = ["subscribers"]
_PUBLIC = ["public subscribe API (v2)"]
_described("subscribers.api.SubscriberListCreateApi",
           get=extend_schema(tags=_SUB_TAGS, summary="List subscribers", parameters=_SUBSCRIBER_PARAMS,
                             responses=responses({200: io.SubscriberOut(many=True)})),
           post=extend_schema(tags=_SUB_TAGS, summary="Create a subscriber", parameters=[PAGE_PARAM], request=io.SubscriberBody,
                              responses=responses({201: io.SubscriberOut})))
_described("subscribers.api.SubscriberDetailApi",
           get=extend_schema(tags=_SUB_TAGS, summary="Get a subscriber", parameters=[PAGE_PARAM], responses=responses({200: io.SubscriberOut})),
           patch=extend_schema(tags=_SUB_TAGS, summary="Change a subscriber's preferences", parameters=[PAGE_PARAM],
                               request=io.SubscriberBody, responses=responses({200: io.SubscriberOut})),
           delete=extend_schema(tags=_SUB_TAGS, summary="Unsubscribe a subscriber", parameters=[PAGE_PARAM],
                                responses=responses({200: io.SubscriberOut})))
_described("subscribers.api.SubscriberResendConfirmationApi",
           post=extend_schema(tags=_SUB_TAGS, summary="Resend the confirmation", parameters=[PAGE_PARAM], request=None,
                              responses=responses({200: inline_serializer("Sent", {"sent": serializers.BooleanField()})})))
_described("subscribers.api.SubscriberCountApi",
           get=extend_schema(tags=_SUB_TAGS, summary="Count subscribers", parameters=_SUBSCRIBER_PARAMS,
                             responses=responses({200: inline_serializer("Count", {"count": serializers.IntegerField()})})))
_described("subscribers.api.SubscriberHistogramApi",
           get=extend_schema(tags=_SUB_TAGS, summary="Subscribers by state, overall and per channel", parameters=[PAGE_PARAM],
                             responses=responses({200: OpenApiResponse(description="Counts by state, and `channels`.")})))
_described("subscribers.api.PublicSubscribeApi",
           post=extend_schema(tags=_PUBLIC, summary="Subscribe (no key)", auth=[], request=io.SubscriberBody,
                              responses={201: io.PublicSubscriberOut, 400: io.ErrorOut}))
_described("subscribers.api.PublicUnsubscribeApi",
           delete=extend_schema(tags=_PUBLIC, summary="Unsubscribe with the signed token from a message (no key)", auth=[],
                                parameters=[OpenApiParameter("token", str, required=True)],
                                responses={200: OpenApiResponse(description="Unsubscribed."), 403: io.ErrorOut}))
_described("subscribers.api.PublicResendConfirmationApi",
           post=extend_schema(tags=_PUBLIC, summary="Resend the confirmation (no key)", auth=[], request=None,
                              responses={200: OpenApiResponse(description="The same answer whatever the id.")}))
