"""URLs of the incident management API v1 (incidents/api_v1.py).

Like Statuspage's v1, every path works with and without ".json". Included from the root
URLconf before `api_fallback`, which answers any other /api/ path with a JSON 404.
"""
from __future__ import annotations

from django.urls import re_path

from incidents import api_v1

app_name = "incidents_api_v1"

_JSON = r"(?:\.json)?"
_ID = r"[a-z0-9]+"
_PAGE = rf"^api/v1/pages/(?P<page_id>{_ID})"
_INCIDENT = rf"{_PAGE}/incidents/(?P<incident_id>{_ID})"
_DRAFT = rf"{_PAGE}/drafts/(?P<draft_id>{_ID})"

urlpatterns = [
    re_path(rf"^api/v1/pages{_JSON}$", api_v1.PageListApi.as_view(), name="pages"),
    re_path(rf"{_PAGE}{_JSON}$", api_v1.PageDetailApi.as_view(), name="page"),
    re_path(rf"{_PAGE}/components{_JSON}$", api_v1.ComponentListApi.as_view(), name="components"),
    re_path(rf"{_PAGE}/components/(?P<component_id>{_ID}){_JSON}$", api_v1.ComponentDetailApi.as_view(), name="component"),
    re_path(rf"{_PAGE}/component-groups{_JSON}$", api_v1.ComponentGroupListApi.as_view(), name="component-groups"),
    re_path(rf"{_PAGE}/component-groups/(?P<group_id>{_ID}){_JSON}$", api_v1.ComponentGroupDetailApi.as_view(), name="component-group"),
    re_path(rf"{_PAGE}/incidents{_JSON}$", api_v1.IncidentListApi.as_view(), name="incidents"),
    # Before the incident id pattern, which would match these words too.
    re_path(rf"{_PAGE}/incidents/unresolved{_JSON}$", api_v1.IncidentUnresolvedApi.as_view(), name="incidents-unresolved"),
    re_path(rf"{_PAGE}/incidents/scheduled{_JSON}$", api_v1.IncidentScheduledApi.as_view(), name="incidents-scheduled"),
    re_path(rf"{_INCIDENT}{_JSON}$", api_v1.IncidentDetailApi.as_view(), name="incident"),
    re_path(rf"{_INCIDENT}/incident_updates/(?P<update_id>{_ID}){_JSON}$", api_v1.IncidentUpdateApi.as_view(), name="incident-update"),
    re_path(rf"{_INCIDENT}/postmortem{_JSON}$", api_v1.PostmortemApi.as_view(), name="postmortem"),
    re_path(rf"{_INCIDENT}/postmortem/publish{_JSON}$", api_v1.PostmortemPublishApi.as_view(), name="postmortem-publish"),
    re_path(rf"{_INCIDENT}/postmortem/revert{_JSON}$", api_v1.PostmortemRevertApi.as_view(), name="postmortem-revert"),
    # Ours, beside Statuspage's paths: the editorial workflow.
    re_path(rf"{_PAGE}/drafts{_JSON}$", api_v1.DraftListApi.as_view(), name="drafts"),
    re_path(rf"{_DRAFT}{_JSON}$", api_v1.DraftDetailApi.as_view(), name="draft"),
    re_path(rf"{_DRAFT}/approve{_JSON}$", api_v1.DraftApproveApi.as_view(), name="draft-approve"),
    re_path(rf"{_DRAFT}/publish{_JSON}$", api_v1.DraftPublishApi.as_view(), name="draft-publish"),
    re_path(rf"^api/v1/policy{_JSON}$", api_v1.PolicyApi.as_view(), name="policy"),
    re_path(rf"^api/v1/templates{_JSON}$", api_v1.TemplateListApi.as_view(), name="templates"),
    re_path(rf"^api/v1/archive{_JSON}$", api_v1.ArchiveApi.as_view(), name="archive"),
]
