"""Tenants on the serving objects: the tenant-key file next to the API-key file, the ingress told its path and
the tenants' limits, and the key file's text (infra/render/rayservice.py, infra/render/tenants.py)."""

from __future__ import annotations

import yaml

from infra.config.settings import TenantsConfig
from infra.render.rayservice import render_rayservice
from infra.render.tenants import admission_settings, current_tenant_keys, tenant_keys_text
from serve_app.admission import TenantLimits
from serve_app.admission_config import AdmissionSettings

TENANTS = TenantsConfig(
    tenants=(("team-a", TenantLimits(requests_per_minute=60, priority="high")), ("team-b", TenantLimits())),
    in_flight_per_seq=1.5,
    wait_s=3.0,
)


def ingress_of(rayservice: dict) -> dict:
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    (ingress,) = [app for app in serve["applications"] if app["route_prefix"] is not None]
    return ingress


def key_items(rayservice: dict) -> list:
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    (volume,) = [volume for volume in head["spec"]["volumes"] if volume["name"] == "api-keys"]
    return volume["secret"]["items"]


def test_with_tenants_the_ingress_reads_their_keys_from_the_same_secret_and_gets_their_limits(rayservice_settings):
    rayservice = render_rayservice(rayservice_settings(admission=admission_settings(TENANTS)))
    assert key_items(rayservice) == [{"key": "keys", "path": "keys"}, {"key": "tenant-keys", "path": "tenant-keys"}]
    ingress = ingress_of(rayservice)
    assert ingress["args"]["ingress_kwargs"]["tenant_key_file"] == "/etc/llmserve/api-keys/tenant-keys"
    admission = ingress["deployments"][0]["user_config"]["admission"]
    assert admission["tenants"] == {
        "team-a": {"priority": "high", "requests_per_minute": 60},
        "team-b": {"priority": "normal"},
    }
    assert (admission["in_flight_per_seq"], admission["wait_s"]) == (1.5, 3.0)
    assert admission["capacity"] == {"deepseek-r1": 96}, "1.5 x 1 replica x R1's maxNumSeqs 64"


def test_without_tenants_the_ingress_args_and_the_key_volume_are_as_before(rayservice_settings):
    rayservice = render_rayservice(rayservice_settings(admission=AdmissionSettings()))
    assert key_items(rayservice) == [{"key": "keys", "path": "keys"}]
    assert ingress_of(rayservice)["args"]["ingress_kwargs"] == {
        "api_key_file": "/etc/llmserve/api-keys/keys",
        "api_key_reload_s": 10.0,
    }


def test_the_key_file_holds_the_given_keys_and_a_generated_one_for_each_tenant_left_out():
    text = tenant_keys_text(
        "team-a=" + "a" * 20 + "," + "n" * 20, ["team-a", "team-b"], {"team-a": "x", "team-b": "g" * 48}
    )
    assert text == f"team-a={'a' * 20},{'n' * 20}\nteam-b={'g' * 48}\n"
    assert current_tenant_keys(text) == {"team-a": "n" * 20, "team-b": "g" * 48}, "the newest key of a rotation"
