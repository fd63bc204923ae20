"""The incident management API v1: Statuspage's paths and bodies, keys with read/write/publish
scopes, and publishing through the editorial policy (drafts, approvals, redaction)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from incidents import services as incident_services
from incidents.models import (
    ComponentStatus,
    ComponentStatusChange,
    DraftState,
    Incident,
    IncidentKind,
    NearMiss,
    NearMissKind,
    Postmortem,
    StatusSource,
    UpdateDraft,
)
from notifications.models import ArchivedMessage
from subscribers import services
from tests import factories

pytestmark = pytest.mark.django_db

BODY = "Some card payments fail. We are investigating and will post again within the hour."
LEAKY = "Traffic from 10.20.30.40 is being dropped; we are investigating."
V2_COMPONENT_KEYS = [
    "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase", "start_date",
    "group_id", "page_id", "group", "only_show_if_degraded",
]
V2_INCIDENT_KEYS = [
    "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact", "shortlink",
    "started_at", "page_id", "incident_updates", "components", "reminder_intervals",
]


def _key(user, scopes: str) -> str:
    token, key = services.api_token_create(user=user, name=f"{scopes} key", scopes=scopes)
    return key


def _auth(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"OAuth {key}"}


def _send(client, method: str, url: str, key: str, body: dict | None = None):
    return getattr(client, method)(url, json.dumps(body or {}), content_type="application/json", **_auth(key))


@pytest.fixture
def base(page) -> str:
    return f"/api/v1/pages/{page.public_id}"


@pytest.fixture
def read_key(staff) -> str:
    return _key(staff, "read")


@pytest.fixture
def write_key(staff) -> str:
    return _key(staff, "write")


@pytest.fixture
def publish_key(staff) -> str:
    return _key(staff, "publish")


@pytest.fixture
def commander_key(commander) -> str:
    return _key(commander, "publish")


def _create(client, base: str, key: str, **incident):
    incident.setdefault("name", "Card payments failing")
    incident.setdefault("body", BODY)
    return _send(client, "post", f"{base}/incidents", key, {"incident": incident})


# --- access ---------------------------------------------------------------------------------------


def test_missing_key_is_401(client, base):
    response = client.get(f"{base}/incidents")

    assert response.status_code == 401
    assert "detail" in response.json()


def test_invalid_key_is_401(client, base, read_key):
    response = client.get(f"{base}/incidents", **_auth(read_key + "x"))

    assert response.status_code == 401


def test_revoked_key_is_401(client, base, staff):
    token, key = services.api_token_create(user=staff, name="Old", scopes="publish")
    services.api_token_revoke(token=token)

    response = client.get(f"{base}/incidents", **_auth(key))

    assert response.status_code == 401


def test_read_key_cannot_post_and_the_403_names_the_write_scope(client, base, read_key):
    response = _create(client, base, read_key, severity="P4")

    assert response.status_code == 403
    assert response.json()["missing_scope"] == "write"
    assert not UpdateDraft.objects.exists()


def test_write_key_cannot_approve_and_the_403_names_the_publish_scope(client, base, publish_key, legal):
    draft = _create(client, base, publish_key, severity="P1").json()["draft"]

    response = _send(client, "post", f"{base}/drafts/{draft['id']}/approve", _key(legal, "write"), {"role": "legal"})

    assert response.status_code == 403
    assert response.json()["missing_scope"] == "publish"


def test_user_without_the_permission_gets_403_naming_it(client, base, communicator):
    response = _send(client, "post", f"{base}/components", _key(communicator, "write"), {"component": {"name": "Search"}})

    assert response.status_code == 403
    assert response.json()["missing_permission"] == "add_component"


def test_token_requests_need_no_csrf_token(base, write_key):
    csrf_checking = Client(enforce_csrf_checks=True)

    response = _send(csrf_checking, "post", f"{base}/components", write_key, {"component": {"name": "Search"}})

    assert response.status_code == 201


def test_requests_are_throttled_per_key(client, base, read_key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_token": "2/min"}}

    statuses = [client.get(f"{base}/components", **_auth(read_key)).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_paths_work_with_the_json_suffix(client, base, read_key, rest_api):
    response = client.get(f"{base}/components.json", **_auth(read_key))

    assert response.status_code == 200


# --- pages and components ---------------------------------------------------------------------------


def test_pages_list_names_each_page(client, read_key, page):
    response = client.get("/api/v1/pages", **_auth(read_key))

    assert [(p["id"], p["name"], p["time_zone"]) for p in response.json()] == [(page.public_id, "Acme", "Etc/UTC")]


def test_page_patch_changes_its_time_zone(client, base, write_key, page):
    response = _send(client, "patch", base, write_key, {"page": {"time_zone": "Europe/Paris"}})

    page.refresh_from_db()
    assert response.status_code == 200
    assert page.time_zone == "Europe/Paris" == response.json()["time_zone"]


def test_page_patch_with_an_unknown_time_zone_is_400_naming_it(client, base, write_key):
    response = _send(client, "patch", base, write_key, {"page": {"time_zone": "Mars/Olympus"}})

    assert response.status_code == 400
    assert "page[time_zone]" in response.json()["errors"]


def test_components_list_has_the_v2_component_shape(client, base, read_key, rest_api, api_group):
    response = client.get(f"{base}/components", **_auth(read_key))

    by_id = {c["id"]: c for c in response.json()}
    assert list(by_id[rest_api.public_id]) == V2_COMPONENT_KEYS
    assert by_id[rest_api.public_id]["group_id"] == api_group.public_id
    assert by_id[api_group.public_id]["components"] == [rest_api.public_id]


def test_component_create_answers_201_with_the_component(client, base, write_key, api_group):
    response = _send(client, "post", f"{base}/components", write_key, {
        "component": {"name": "Search", "description": "Full-text search", "group_id": api_group.public_id, "showcase": False},
    })

    assert response.status_code == 201
    created = response.json()
    assert (created["name"], created["group_id"], created["showcase"]) == ("Search", api_group.public_id, False)


def test_component_form_encoded_body_is_accepted(client, base, write_key):
    response = client.post(f"{base}/components", {"component[name]": "Search"}, **_auth(write_key))

    assert response.status_code == 201
    assert response.json()["name"] == "Search"


def test_component_status_patch_is_logged_as_an_api_change(client, base, write_key, rest_api):
    response = _send(client, "patch", f"{base}/components/{rest_api.public_id}", write_key, {"component": {"status": "major_outage"}})

    assert response.json()["status"] == "major_outage"
    change = ComponentStatusChange.objects.filter(component=rest_api).first()
    assert (change.new_status, change.source) == (ComponentStatus.MAJOR_OUTAGE, StatusSource.API)


def test_component_with_an_unknown_status_is_400_naming_it(client, base, write_key, rest_api):
    response = _send(client, "patch", f"{base}/components/{rest_api.public_id}", write_key, {"component": {"status": "on_fire"}})

    assert response.status_code == 400
    assert "component[status]" in response.json()["errors"]


def test_component_delete_answers_204(client, base, write_key, dashboard):
    response = client.delete(f"{base}/components/{dashboard.public_id}", **_auth(write_key))

    assert response.status_code == 204
    assert not type(dashboard).objects.filter(pk=dashboard.pk).exists()


def test_component_group_create_moves_the_components_into_it(client, base, write_key, dashboard):
    response = _send(client, "post", f"{base}/component-groups", write_key, {
        "component_group": {"name": "Web", "components": [dashboard.public_id]},
    })

    dashboard.refresh_from_db()
    assert response.status_code == 201
    assert response.json()["components"] == [dashboard.public_id]
    assert dashboard.group.public_id == response.json()["id"]


def test_component_group_delete_keeps_its_components_ungrouped(client, base, write_key, api_group, rest_api):
    response = client.delete(f"{base}/component-groups/{api_group.public_id}", **_auth(write_key))

    rest_api.refresh_from_db()
    assert response.status_code == 204
    assert rest_api.group is None


# --- incidents: reading ---------------------------------------------------------------------------


def test_incidents_list_has_the_v2_incident_shape_with_v1_fields(client, base, read_key, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.PARTIAL_OUTAGE})

    response = client.get(f"{base}/incidents", **_auth(read_key))

    [listed] = response.json()
    assert list(listed)[: len(V2_INCIDENT_KEYS)] == V2_INCIDENT_KEYS
    assert {"postmortem_body", "postmortem_published_at", "severity"} <= set(listed)
    assert listed["id"] == incident.public_id
    assert listed["components"][0]["id"] == rest_api.public_id
    assert listed["incident_updates"][0]["body"] == "We are investigating reports of errors."


def test_unresolved_lists_only_open_incidents(client, base, read_key, page):
    open_one = factories.open_incident(page=page, name="Open")
    closed = factories.open_incident(page=page, name="Closed")
    incident_services.incident_resolve(incident=closed, body="Fixed.")

    response = client.get(f"{base}/incidents/unresolved", **_auth(read_key))

    assert [i["id"] for i in response.json()] == [open_one.public_id]


def test_scheduled_lists_only_maintenances_not_yet_started(client, base, read_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    factories.open_incident(page=page)

    response = client.get(f"{base}/incidents/scheduled", **_auth(read_key))

    [listed] = response.json()
    assert (listed["id"], listed["status"], "scheduled_for" in listed) == (maintenance.public_id, "scheduled", True)


def test_unknown_incident_is_404_json(client, base, read_key):
    response = client.get(f"{base}/incidents/nosuchincid1", **_auth(read_key))

    assert response.status_code == 404
    assert "detail" in response.json()


# --- incidents: publishing through the policy ------------------------------------------------------


def test_create_p4_incident_with_a_publish_key_publishes_it(client, base, publish_key, rest_api):
    response = _create(client, base, publish_key, severity="P4", components={rest_api.public_id: "degraded_performance"})

    assert response.status_code == 201
    incident = Incident.objects.get(public_id=response.json()["id"])
    assert incident.updates.get().body == BODY
    assert UpdateDraft.objects.get().state == DraftState.PUBLISHED
    assert ArchivedMessage.objects.filter(channel="page", incident_public_id=incident.public_id).exists()
    assert response.json()["components"][0]["status"] == "degraded_performance"


def test_create_p1_incident_answers_202_with_a_draft_and_nothing_reaches_the_page(client, base, publish_key, rest_api):
    response = _create(client, base, publish_key, severity="P1", components={rest_api.public_id: "major_outage"})

    assert response.status_code == 202
    answer = response.json()
    assert answer["draft"]["state"] == DraftState.IN_REVIEW
    assert answer["draft"]["missing_approvals"] == ["legal", "pr"]
    assert answer["message"] == "Created as a draft awaiting approval: Legal, PR."
    assert not Incident.objects.exists() and not ArchivedMessage.objects.exists()
    rest_api.refresh_from_db()
    assert rest_api.status == ComponentStatus.OPERATIONAL
    assert client.get("/api/v2/incidents.json").json()["incidents"] == []


def test_severity_defaults_from_the_impact_so_a_critical_outage_waits_for_approval(client, base, publish_key, rest_api):
    response = _create(client, base, publish_key, components={rest_api.public_id: "major_outage"})

    assert response.status_code == 202
    assert response.json()["draft"]["proposal"]["severity"] == "P1"


def test_create_with_a_write_key_leaves_even_a_p4_draft_for_publication(client, base, write_key):
    response = _create(client, base, write_key, severity="P4")

    assert response.status_code == 202
    assert response.json()["draft"]["missing_approvals"] == []
    assert "publish scope" in response.json()["message"]
    assert not Incident.objects.exists()


def test_create_by_a_publish_key_whose_user_cannot_publish_is_403_and_leaves_no_draft(client, base, communicator):
    response = _create(client, base, _key(communicator, "publish"), severity="P4")

    assert response.status_code == 403
    assert response.json()["missing_permission"] == "publish_updatedraft"
    assert not UpdateDraft.objects.exists()
    assert NearMiss.objects.get().kind == NearMissKind.FORBIDDEN


def test_create_by_a_user_who_may_not_draft_is_403_and_the_refusal_is_recorded(client, base, pr):
    response = _create(client, base, _key(pr, "publish"), severity="P4")

    assert response.status_code == 403
    assert response.json()["missing_permission"] == "add_updatedraft"
    assert NearMiss.objects.get(kind=NearMissKind.FORBIDDEN).actor == pr


def test_create_without_name_is_400_naming_it(client, base, publish_key):
    response = _create(client, base, publish_key, name="")

    assert response.status_code == 400
    assert "incident[name]" in response.json()["errors"]


def test_create_with_a_component_of_another_page_is_400_naming_components(client, base, publish_key):
    other = factories.make_page(name="Other", url="https://status.example.org")
    elsewhere = factories.make_component(page=other, name="Elsewhere")

    response = _create(client, base, publish_key, severity="P4", components={elsewhere.public_id: "major_outage"})

    assert response.status_code == 400
    assert "incident[components]" in response.json()["errors"]


def test_create_without_body_fills_the_template_from_template_values(client, base, publish_key, rest_api):
    values = {
        "impact": "Card payments fail", "scope": "Customers in Europe", "what_we_are_doing": "Failing over",
        "eta": "within the hour", "what_to_do": "Retry later", "next_update_at": "14:00 UTC",
    }

    response = _create(client, base, publish_key, severity="P4", body=None, template_values=values,
                       components={rest_api.public_id: "degraded_performance"})

    assert response.status_code == 201
    assert "Failing over" in Incident.objects.get().updates.get().body


def test_unknown_template_placeholder_is_400_naming_it(client, base, publish_key):
    response = _create(client, base, publish_key, severity="P4", body=None, template_values={"mood": "calm"})

    assert response.status_code == 400
    assert "Unknown placeholder {mood}" in response.json()["errors"]["incident[template_values]"][0]


def test_patch_incident_with_a_body_adds_an_update(client, base, publish_key, page):
    incident = factories.open_incident(page=page, severity="P3")

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", publish_key, {
        "incident": {"status": "identified", "body": "We found the faulty load balancer and are replacing it."},
    })

    assert response.status_code == 200
    assert [u["status"] for u in response.json()["incident_updates"]] == ["identified", "investigating"]
    assert incident.updates.count() == 2


def test_patch_incident_resolving_it_through_a_draft(client, base, publish_key, page, rest_api):
    incident = factories.open_incident(page=page, severity="P3", components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", publish_key, {
        "incident": {"status": "resolved", "body": "Payments work again."},
    })

    rest_api.refresh_from_db()
    assert response.json()["status"] == "resolved"
    assert rest_api.status == ComponentStatus.OPERATIONAL


def test_patch_with_a_status_and_no_body_is_400_naming_body(client, base, publish_key, page):
    incident = factories.open_incident(page=page, severity="P3")

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", publish_key, {"incident": {"status": "resolved"}})

    assert response.status_code == 400
    assert "incident[body]" in response.json()["errors"]
    assert incident.updates.count() == 1


def test_patch_of_a_p1_incident_waits_for_approval(client, base, publish_key, page):
    incident = factories.open_incident(page=page, severity="P1")

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", publish_key, {"incident": {"body": "Still working on it."}})

    assert response.status_code == 202
    assert response.json()["draft"]["incident_id"] == incident.public_id
    assert incident.updates.count() == 1


def test_patch_name_only_edits_without_an_update(client, base, write_key, page):
    incident = factories.open_incident(page=page, severity="P3")

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", write_key, {"incident": {"name": "Payments degraded"}})

    assert response.json()["name"] == "Payments degraded"
    assert incident.updates.count() == 1 and not UpdateDraft.objects.exists()


def test_approve_by_legal_then_pr_then_publish_opens_the_incident(client, base, commander_key, legal, pr, rest_api):
    draft = _create(client, base, commander_key, severity="P1", components={rest_api.public_id: "major_outage"}).json()["draft"]
    url = f"{base}/drafts/{draft['id']}"

    after_legal = _send(client, "post", f"{url}/approve", _key(legal, "publish"), {"role": "legal"})
    after_pr = _send(client, "post", f"{url}/approve", _key(pr, "publish"), {"role": "pr"})
    published = _send(client, "post", f"{url}/publish", commander_key)

    assert after_legal.json()["missing_approvals"] == ["pr"]
    assert (after_pr.json()["state"], after_pr.json()["missing_approvals"]) == (DraftState.APPROVED, [])
    assert published.status_code == 200
    assert published.json()["draft"]["state"] == DraftState.PUBLISHED
    incident = Incident.objects.get(public_id=published.json()["incident"]["id"])
    assert incident.severity == "P1" and incident.updates.get().body == BODY


def test_approval_for_a_role_the_user_lacks_is_403_naming_the_permission(client, base, commander_key, pr):
    draft = _create(client, base, commander_key, severity="P1").json()["draft"]

    response = _send(client, "post", f"{base}/drafts/{draft['id']}/approve", _key(pr, "publish"), {"role": "legal"})

    assert response.status_code == 403
    assert response.json()["missing_permission"] == "approve_legal"
    assert NearMiss.objects.filter(kind=NearMissKind.FORBIDDEN, actor=pr).exists()


def test_author_cannot_approve_their_own_draft(client, base, publish_key):
    draft = _create(client, base, publish_key, severity="P1").json()["draft"]

    response = _send(client, "post", f"{base}/drafts/{draft['id']}/approve", publish_key, {"role": "legal"})

    assert response.status_code == 400
    assert "approver" in response.json()["errors"]


def test_publish_before_the_approvals_is_400_naming_what_is_missing(client, base, commander_key):
    draft = _create(client, base, commander_key, severity="P1").json()["draft"]

    response = _send(client, "post", f"{base}/drafts/{draft['id']}/publish", commander_key)

    assert response.status_code == 400
    assert response.json()["missing_approvals"] == ["legal", "pr"]
    assert "Missing approval" in response.json()["errors"]["publish"][0]
    assert not Incident.objects.exists()


def test_publishing_a_published_draft_again_is_400_naming_its_state(client, base, publish_key):
    _create(client, base, publish_key, severity="P4")
    draft = UpdateDraft.objects.get()

    response = _send(client, "post", f"{base}/drafts/{draft.public_id}/publish", publish_key)

    assert response.status_code == 400
    assert "already published" in response.json()["errors"]["publish"][0]


def test_redaction_finding_blocks_with_400_listing_it_and_writes_nothing(client, base, publish_key):
    response = _create(client, base, publish_key, severity="P4", body=LEAKY)

    assert response.status_code == 400
    [finding] = response.json()["redaction_findings"]
    assert (finding["kind"], finding["line"], finding["column"]) == ("ip_address", 1, 14)
    assert "10.20.30.40" not in response.content.decode()
    assert not UpdateDraft.objects.exists() and not Incident.objects.exists()


def test_redaction_override_with_a_reason_publishes_and_records_a_near_miss(client, base, publish_key):
    response = _send(client, "post", f"{base}/incidents", publish_key, {
        "incident": {"name": "Edge drops", "body": LEAKY, "severity": "P4"},
        "redaction_override": "The address is a public anycast test address.",
    })

    assert response.status_code == 201
    assert UpdateDraft.objects.get().redaction_override == "The address is a public anycast test address."
    assert NearMiss.objects.get().kind == NearMissKind.REDACTION_OVERRIDE


def test_drafts_list_filters_by_state(client, base, publish_key, read_key):
    _create(client, base, publish_key, severity="P1", name="Waiting")
    _create(client, base, publish_key, severity="P4", name="Out")

    response = client.get(f"{base}/drafts?state=in_review", **_auth(read_key))

    assert [d["proposal"]["name"] for d in response.json()] == ["Waiting"]


# --- published updates are final --------------------------------------------------------------------


def test_patch_of_a_published_update_body_is_400_naming_body(client, base, write_key, page):
    incident = factories.open_incident(page=page)
    update = incident.updates.get()

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}/incident_updates/{update.public_id}", write_key,
                     {"incident_update": {"body": "What we meant to say."}})

    assert response.status_code == 400
    assert "new update" in response.json()["errors"]["incident_update[body]"][0]
    update.refresh_from_db()
    assert update.body == "We are investigating reports of errors."


def test_patch_of_an_update_with_only_metadata_is_accepted_unchanged(client, base, write_key, page):
    incident = factories.open_incident(page=page)
    update = incident.updates.get()

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}/incident_updates/{update.public_id}", write_key,
                     {"incident_update": {"wants_twitter_update": False, "body": update.body}})

    assert response.status_code == 200
    assert response.json()["id"] == update.public_id


# --- maintenances and deletion --------------------------------------------------------------------


def test_create_with_scheduled_for_schedules_a_maintenance(client, base, publish_key, dashboard):
    start = timezone.now() + timedelta(days=1)

    response = _create(client, base, publish_key, status="scheduled", component_ids=[dashboard.public_id],
                       scheduled_for=start.isoformat(), scheduled_until=(start + timedelta(hours=2)).isoformat())

    assert response.status_code == 201
    maintenance = Incident.objects.get()
    assert (maintenance.kind, maintenance.status) == (IncidentKind.MAINTENANCE, "scheduled")
    assert response.json()["scheduled_for"] is not None


def test_scheduling_a_maintenance_needs_the_publish_scope(client, base, write_key):
    start = timezone.now() + timedelta(days=1)

    response = _create(client, base, write_key, status="scheduled",
                       scheduled_for=start.isoformat(), scheduled_until=(start + timedelta(hours=2)).isoformat())

    assert response.status_code == 403
    assert response.json()["missing_scope"] == "publish"


def test_delete_incident_removes_it(client, base, publish_key, page):
    incident = factories.open_incident(page=page)

    response = client.delete(f"{base}/incidents/{incident.public_id}", **_auth(publish_key))

    assert response.status_code == 200
    assert not Incident.objects.exists()


def test_deleting_published_words_needs_the_publish_scope(client, base, write_key, page):
    incident = factories.open_incident(page=page)

    response = client.delete(f"{base}/incidents/{incident.public_id}", **_auth(write_key))

    assert response.status_code == 403
    assert response.json()["missing_scope"] == "publish"
    assert Incident.objects.exists()


def test_a_client_cannot_lower_the_severity_its_impact_implies(client, base, publish_key, rest_api):
    response = _create(client, base, publish_key, severity="P4", components={rest_api.public_id: "major_outage"})

    # A major outage is P1: it waits for legal and PR, whatever severity the client sent.
    assert response.status_code == 202
    assert response.json()["draft"]["missing_approvals"] == ["legal", "pr"]
    assert not Incident.objects.exists()


def test_renaming_an_incident_to_something_internal_is_refused(client, base, publish_key, page):
    incident = factories.open_incident(page=page, name="Checkout errors")

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", publish_key,
                     {"incident": {"name": "db-03.prod.internal is down"}})

    assert response.status_code == 400
    assert "Redaction findings in name" in json.dumps(response.json())
    assert Incident.objects.get().name == "Checkout errors"


def test_a_maintenance_notice_with_an_internal_address_is_refused(client, base, publish_key):
    response = _send(client, "post", f"{base}/incidents", publish_key, {"incident": {
        "name": "Database upgrade", "body": "We upgrade the primary at 10.20.30.40.",
        "scheduled_for": "2030-01-01T01:00:00Z", "scheduled_until": "2030-01-01T03:00:00Z",
    }})

    assert response.status_code == 400
    assert "Redaction findings in body" in json.dumps(response.json())
    assert not Incident.objects.exists()


def _patch_maintenance(client, base: str, key: str, maintenance, **incident):
    return _send(client, "patch", f"{base}/incidents/{maintenance.public_id}", key, {"incident": incident})


def test_a_new_window_for_a_scheduled_maintenance_reschedules_it(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    start = maintenance.scheduled_for + timedelta(days=3)

    response = _patch_maintenance(client, base, publish_key, maintenance, scheduled_for=start.isoformat(),
                                  scheduled_until=(start + timedelta(hours=2)).isoformat(), body="A vendor asked us to wait.")

    assert response.status_code == 200
    maintenance.refresh_from_db()
    assert (maintenance.status, maintenance.scheduled_for) == ("scheduled", start)
    notice = maintenance.updates.latest("id")
    assert notice.body.startswith("Rescheduled: the new window is") and "A vendor asked us to wait." in notice.body


def test_an_echoed_window_does_not_reschedule(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)

    response = _patch_maintenance(client, base, publish_key, maintenance, name="Primary database upgrade",
                                  scheduled_for=maintenance.scheduled_for.isoformat(), scheduled_until=maintenance.scheduled_until.isoformat())

    assert response.status_code == 200
    assert Incident.objects.get().name == "Primary database upgrade"
    assert maintenance.updates.count() == 1


def test_rescheduling_a_maintenance_needs_the_publish_scope(client, base, write_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    start = maintenance.scheduled_for + timedelta(days=3)

    response = _patch_maintenance(client, base, write_key, maintenance, scheduled_for=start.isoformat(),
                                  scheduled_until=(start + timedelta(hours=2)).isoformat())

    assert response.status_code == 403
    assert response.json()["missing_scope"] == "publish"
    assert Incident.objects.get().scheduled_for == maintenance.scheduled_for


def test_a_reschedule_message_with_an_internal_address_is_refused(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    start = maintenance.scheduled_for + timedelta(days=3)

    response = _patch_maintenance(client, base, publish_key, maintenance, scheduled_for=start.isoformat(),
                                  scheduled_until=(start + timedelta(hours=2)).isoformat(), body="db-03.prod.internal needs more time.")

    assert response.status_code == 400
    assert "Redaction findings in body" in json.dumps(response.json())
    assert Incident.objects.get().scheduled_for == maintenance.scheduled_for


def test_completing_a_maintenance_that_has_not_started_cancels_it(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)

    response = _patch_maintenance(client, base, publish_key, maintenance, status="completed", body="The upgrade is no longer needed.")

    assert response.status_code == 200
    maintenance.refresh_from_db()
    notice = maintenance.updates.latest("id")
    assert maintenance.status == "completed"
    assert notice.body.startswith("Cancelled: this maintenance will not take place.") and "no longer needed" in notice.body


def test_completing_a_running_maintenance_still_completes_it(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    incident_services.maintenance_start(maintenance=maintenance)

    response = _patch_maintenance(client, base, publish_key, maintenance, status="completed", body="All done.")

    assert response.status_code == 200
    assert [u.body for u in maintenance.updates.order_by("id")][-1] == "All done."
    assert Incident.objects.get().status == "completed"


def test_a_later_end_with_a_body_on_a_running_maintenance_announces_an_overrun(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    incident_services.maintenance_start(maintenance=maintenance)
    later = maintenance.scheduled_until + timedelta(minutes=45)

    response = _patch_maintenance(client, base, publish_key, maintenance, scheduled_until=later.isoformat(),
                                  body="The data copy is slower than tested.")

    assert response.status_code == 200
    maintenance.refresh_from_db()
    assert (maintenance.scheduled_until, maintenance.status) == (later, "in_progress")
    assert maintenance.planned_until is not None
    overrun = maintenance.updates.latest("id").body
    assert "New expected end" in overrun and "The data copy is slower than tested." in overrun


def test_an_overrun_without_a_body_is_400_naming_body(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    incident_services.maintenance_start(maintenance=maintenance)

    response = _patch_maintenance(client, base, publish_key, maintenance,
                                  scheduled_until=(maintenance.scheduled_until + timedelta(hours=1)).isoformat())

    assert response.status_code == 400
    assert "incident[body]" in response.json()["errors"]
    assert Incident.objects.get().planned_until is None


def test_rescheduling_a_started_maintenance_is_400_naming_scheduled_for(client, base, publish_key, page):
    maintenance = factories.schedule_maintenance(page=page)
    incident_services.maintenance_start(maintenance=maintenance)
    start = maintenance.scheduled_for + timedelta(days=3)

    response = _patch_maintenance(client, base, publish_key, maintenance, scheduled_for=start.isoformat(),
                                  scheduled_until=(start + timedelta(hours=2)).isoformat(), body="Moving it.")

    assert response.status_code == 400
    assert "incident[scheduled_for]" in response.json()["errors"]
    assert (Incident.objects.get().scheduled_for, maintenance.updates.count()) == (maintenance.scheduled_for, 2)


# --- post-mortems -----------------------------------------------------------------------------------


@pytest.fixture
def resolved(page):
    """A resolved P3: its post-mortem is internal and needs no approval."""
    incident = factories.open_incident(page=page, severity="P3")
    incident_services.incident_resolve(incident=incident, body="Fixed.")
    return incident


def test_postmortem_put_writes_the_body(client, base, write_key, resolved):
    response = _send(client, "put", f"{base}/incidents/{resolved.public_id}/postmortem", write_key,
                     {"postmortem": {"postmortem_body": "A certificate expired."}})

    assert response.status_code == 200
    assert (response.json()["postmortem_body"], response.json()["state"]) == ("A certificate expired.", DraftState.DRAFT)
    assert resolved.postmortem.body == "A certificate expired."


def test_postmortem_publish_sets_published_at_and_state(client, base, publish_key, resolved):
    _send(client, "put", f"{base}/incidents/{resolved.public_id}/postmortem", publish_key, {"postmortem": {"postmortem_body": "Expired."}})

    response = _send(client, "put", f"{base}/incidents/{resolved.public_id}/postmortem/publish", publish_key)

    postmortem = Postmortem.objects.get(incident=resolved)
    assert response.status_code == 200
    assert (postmortem.state, postmortem.visibility) == (DraftState.PUBLISHED, "internal")
    assert response.json()["postmortem_published_at"] is not None


def test_a_public_postmortem_waits_for_its_approvals_then_goes_on_the_page(client, base, publish_key, page):
    incident = factories.open_incident(page=page, severity="P2")
    incident_services.incident_resolve(incident=incident, body="Fixed.")
    url = f"{base}/incidents/{incident.public_id}/postmortem"
    _send(client, "put", url, publish_key, {"postmortem": {"postmortem_body": "A certificate expired; we now alert 30 days ahead."}})

    response = _send(client, "put", f"{url}/publish", publish_key)

    assert response.status_code == 202
    assert response.json()["draft"]["missing_approvals"] == ["pr"]
    assert not incident.updates.filter(status="postmortem").exists()


def test_postmortem_publish_needs_the_publish_scope(client, base, write_key, resolved):
    _send(client, "put", f"{base}/incidents/{resolved.public_id}/postmortem", write_key, {"postmortem": {"postmortem_body": "Expired."}})

    response = _send(client, "put", f"{base}/incidents/{resolved.public_id}/postmortem/publish", write_key)

    assert response.status_code == 403
    assert response.json()["missing_scope"] == "publish"


def test_postmortem_revert_returns_it_to_a_draft(client, base, publish_key, resolved):
    url = f"{base}/incidents/{resolved.public_id}/postmortem"
    _send(client, "put", url, publish_key, {"postmortem": {"postmortem_body": "Expired."}})
    _send(client, "put", f"{url}/publish", publish_key)

    response = _send(client, "put", f"{url}/revert", publish_key)

    assert (response.json()["state"], response.json()["postmortem_published_at"]) == (DraftState.DRAFT, None)


def test_published_postmortem_cannot_be_rewritten(client, base, publish_key, resolved):
    url = f"{base}/incidents/{resolved.public_id}/postmortem"
    _send(client, "put", url, publish_key, {"postmortem": {"postmortem_body": "Expired."}})
    _send(client, "put", f"{url}/publish", publish_key)

    response = _send(client, "put", url, publish_key, {"postmortem": {"postmortem_body": "Something else."}})

    assert response.status_code == 400
    assert "postmortem[state]" in response.json()["errors"]


def test_postmortem_of_an_empty_body_cannot_be_published(client, base, publish_key, resolved):
    response = _send(client, "put", f"{base}/incidents/{resolved.public_id}/postmortem/publish", publish_key)

    assert response.status_code == 400
    assert "postmortem[postmortem_body]" in response.json()["errors"]


# --- policy, templates, archive ---------------------------------------------------------------------


def test_policy_answers_the_current_version_and_its_rules(client, read_key):
    response = client.get("/api/v1/policy", **_auth(read_key))

    assert response.json()["version"] == 1
    assert response.json()["rules"]["P1"]["approvals"] == ["legal", "pr"]


def test_templates_lists_the_current_templates(client, read_key):
    response = client.get("/api/v1/templates?language=en&kind=initial_alert", **_auth(read_key))

    [template] = response.json()
    assert (template["kind"], template["version"]) == ("initial_alert", 1)
    assert "{service}" in template["body"]


def test_archive_search_filters_by_incident_channel_and_words(client, read_key, page):
    wanted = factories.open_incident(page=page, name="Card payments", body="Card payments fail.")
    factories.open_incident(page=page, name="Search slow", body="Search is slow.")

    response = client.get(f"/api/v1/archive?incident={wanted.public_id}&channel=page&q=payments", **_auth(read_key))

    [row] = response.json()
    assert (row["incident_id"], row["channel"], row["subject"]) == (wanted.public_id, "page", "Card payments")
    assert "html_body" not in row


def test_archive_search_with_no_match_is_empty(client, read_key, page):
    factories.open_incident(page=page, name="Card payments")

    response = client.get("/api/v1/archive?q=nothing-like-this", **_auth(read_key))

    assert response.json() == []


def test_archive_needs_the_view_permission(client, communicator):
    response = client.get("/api/v1/archive", **_auth(_key(communicator, "read")))

    assert response.status_code == 403
    assert response.json()["missing_permission"] == "view_archivedmessage"


# --- the OpenAPI schema and docs ----------------------------------------------------------------------


def test_schema_is_valid_openapi_3_listing_the_v1_paths(desk):
    from drf_spectacular.validation import validate_schema

    response = desk.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    schema = json.loads(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/v1/pages/{page_id}/incidents", "/api/v1/pages/{page_id}/incidents/{incident_id}",
        "/api/v1/pages/{page_id}/components", "/api/v1/pages/{page_id}/drafts/{draft_id}/approve",
        "/api/v1/pages/{page_id}/incidents/{incident_id}/postmortem/publish", "/api/v1/policy", "/api/v1/archive",
    } <= set(schema["paths"])


def test_schema_is_staff_only(client, db):
    response = client.get("/api/schema/")

    assert response.status_code in (401, 403)


def test_schema_is_served_to_an_api_key(client, read_key):
    response = client.get("/api/schema/?format=json", **_auth(read_key))

    assert response.status_code == 200


def test_docs_send_the_anonymous_to_sign_in(client, db):
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_docs_use_local_files_not_a_cdn(desk):
    response = desk.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower()


# --- Statuspage's form encoding and component statuses ----------------------------------------------


def test_create_accepts_statuspages_form_encoding(client, base, publish_key, rest_api):
    response = client.post(f"{base}/incidents", {
        "incident[name]": "Card payments failing", "incident[body]": BODY, "incident[severity]": "P4",
        "incident[components][" + rest_api.public_id + "]": "degraded_performance",
        "incident[component_ids][]": [rest_api.public_id],
    }, **_auth(publish_key))

    assert response.status_code == 201
    assert [(c["id"], c["status"]) for c in response.json()["components"]] == [(rest_api.public_id, "degraded_performance")]


def test_patch_components_change_at_once_while_the_words_wait_for_approval(client, base, publish_key, page, rest_api):
    incident = factories.open_incident(page=page, severity="P1")

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", publish_key, {
        "incident": {"body": "The REST API is down.", "components": {rest_api.public_id: "major_outage"}},
    })

    rest_api.refresh_from_db()
    assert response.status_code == 202
    assert rest_api.status == ComponentStatus.MAJOR_OUTAGE
    assert incident.updates.count() == 1


def test_patch_with_a_maintenance_status_on_an_incident_is_400_naming_status(client, base, publish_key, page):
    incident = factories.open_incident(page=page, severity="P3")

    response = _send(client, "patch", f"{base}/incidents/{incident.public_id}", publish_key,
                     {"incident": {"status": "in_progress", "body": "Working."}})

    assert response.status_code == 400
    assert "incident[status]" in response.json()["errors"]


# --- hardening: what a caller must not get out of the API ----------------------------------------


def test_the_archive_never_hands_out_a_subscribers_signed_links(client, read_key, page):
    from notifications.archive import archive_message

    archive_message(
        channel="email", kind="notification", recipient="reader@example.org", subject="Payments down",
        text_body="Manage: https://status.example.com/subscribers/manage/eyJzIjoiYWJjIn0:1xVcjJ:xfFbsig\n"
                  "Unsubscribe: https://status.example.com/subscribers/unsubscribe/eyJzIjoiYWJjIn0:1xVcjJ:otherSig",
        page=page,
    )

    [row] = client.get("/api/v1/archive?channel=email", **_auth(read_key)).json()

    assert "eyJz" not in row["text_body"]
    assert "/subscribers/unsubscribe/[link withheld]" in row["text_body"]
    # Nor can a search read a link back piece by piece.
    assert client.get("/api/v1/archive?q=eyJzIjoiYWJj", **_auth(read_key)).json() == []


def test_a_page_number_past_any_offset_is_a_400_not_a_500(client, base, read_key):
    response = client.get(f"{base}/incidents?page=99999999999999999999", **_auth(read_key))

    assert response.status_code == 400
    assert "page" in json.dumps(response.json())


@pytest.mark.parametrize("key", ["\ud800", "a\u0000b", "NOT-AN-ID!"])
def test_a_malformed_component_key_is_a_400_naming_components(client, base, publish_key, key):
    response = client.post(
        f"{base}/incidents", json.dumps({"incident": {"name": "X", "body": "Y", "components": {key: "major_outage"}}}),
        content_type="application/json", **_auth(publish_key),
    )

    assert response.status_code == 400
    assert "components" in json.dumps(response.json())


def test_too_many_component_keys_are_refused_without_echoing_them_all(client, base, publish_key):
    many = {f"c{n:05d}": "major_outage" for n in range(600)}
    response = _send(client, "post", f"{base}/incidents", publish_key, {"incident": {"name": "X", "body": "Y", "components": many}})

    assert response.status_code == 400
    assert len(response.content) < 2000
