//! The simulated API server driven by the real `kube` client and by
//! `kubectl`: every served kind, every patch type, watches, subresources,
//! errors shaped like the real server's, the service proxy and faults.

use std::time::{Duration, Instant};

use canary_sim::server::{CrdGroups, FaultStatus, Sim, SimConfig};
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config, Discovery};
use serde_json::{Value, json};

use canary_sim::kubectl::{self, Kubectl};

async fn client_for(kubeconfig: &str) -> Client {
    let kc = Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

async fn start() -> (Sim, Client) {
    start_with(SimConfig::default()).await
}

async fn start_with(config: SimConfig) -> (Sim, Client) {
    let sim = Sim::start(config).await.expect("sim starts");
    let client = client_for(&sim.kubeconfig_yaml()).await;
    (sim, client)
}

/// A raw request through the authenticated client: (status, body as JSON or
/// string).
async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = client.send(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

/// A request over plain HTTP on a fresh connection, with no client-side
/// retries (the kube client retries 429, 503 and 504 by itself): (status,
/// headers, body).
async fn plain(
    sim: &Sim,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Vec<(String, String)>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        sim.addr(),
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let v = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, headers, v)
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "tier": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image, "ports": [{"containerPort": 9898}]}]}},
        },
    }))
    .unwrap()
}

fn dynamic_api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn object(api_version: &str, kind: &str, name: &str, body: Value) -> DynamicObject {
    let mut v = json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "labels": {"suite": "sim-api", "obj": name}}});
    if let Value::Object(extra) = body {
        for (k, x) in extra {
            v[k] = x;
        }
    }
    serde_json::from_value(v).unwrap()
}

/// One example of every served kind that a client creates.
fn examples() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Value,
)> {
    let template = json!({"metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "img:1"}]}});
    vec![
        ("", "v1", "Namespace", "namespaces", "prod", json!({})),
        (
            "",
            "v1",
            "Service",
            "services",
            "podinfo",
            json!({"spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 9898}]}}),
        ),
        (
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            "cfg",
            json!({"data": {"a": "1"}}),
        ),
        (
            "",
            "v1",
            "Secret",
            "secrets",
            "sec",
            json!({"stringData": {"password": "hunter2"}}),
        ),
        (
            "",
            "v1",
            "Event",
            "events",
            "ev.1",
            json!({"involvedObject": {"kind": "Deployment", "name": "podinfo", "namespace": "default"}, "reason": "Synced", "message": "ok", "type": "Normal"}),
        ),
        (
            "",
            "v1",
            "Pod",
            "pods",
            "pod-1",
            json!({"spec": {"containers": [{"name": "c", "image": "img:1"}]}}),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "web",
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            "web-1",
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            "agent",
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
        ),
        (
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            "ev.2",
            json!({"eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "canary", "reportingInstance": "canary-1", "action": "Promote", "reason": "Promoted", "regarding": {"kind": "Deployment", "name": "podinfo"}}),
        ),
        (
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "web",
            json!({"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 4}}),
        ),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            "driver",
            json!({"spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            "web",
            json!({"spec": {"rules": [{"host": "app.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 9898}}}}]}}]}}),
        ),
        (
            "split.smi-spec.io",
            "v1alpha1",
            "TrafficSplit",
            "trafficsplits",
            "ts1",
            json!({"spec": {"service": "podinfo", "backends": [{"service": "podinfo-primary", "weight": "100m"}]}}),
        ),
        (
            "split.smi-spec.io",
            "v1alpha2",
            "TrafficSplit",
            "trafficsplits",
            "ts2",
            json!({"spec": {"service": "podinfo", "backends": [{"service": "podinfo-primary", "weight": 100}]}}),
        ),
        (
            "split.smi-spec.io",
            "v1alpha3",
            "TrafficSplit",
            "trafficsplits",
            "ts3",
            json!({"spec": {"service": "podinfo", "backends": [{"service": "podinfo-primary", "weight": 100}]}}),
        ),
        (
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
            "httproutes",
            "r1",
            json!({"spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "podinfo-primary", "port": 9898, "weight": 100}]}]}}),
        ),
        (
            "gateway.networking.k8s.io",
            "v1beta1",
            "HTTPRoute",
            "httproutes",
            "r2",
            json!({"spec": {"parentRefs": [{"name": "gw"}]}}),
        ),
        (
            "networking.istio.io",
            "v1beta1",
            "VirtualService",
            "virtualservices",
            "vs1",
            json!({"spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo-primary"}, "weight": 100}]}]}}),
        ),
        (
            "networking.istio.io",
            "v1",
            "VirtualService",
            "virtualservices",
            "vs2",
            json!({"spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo-primary"}}]}]}}),
        ),
        (
            "networking.istio.io",
            "v1beta1",
            "DestinationRule",
            "destinationrules",
            "dr1",
            json!({"spec": {"host": "podinfo"}}),
        ),
    ]
}

#[tokio::test]
async fn every_served_kind_is_created_read_listed_by_label_and_deleted_through_the_kube_client() {
    let (_sim, client) = start().await;
    for (group, version, kind, plural, name, body) in examples() {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let ns = if kind == "Namespace" {
            None
        } else {
            Some("default")
        };
        let api = dynamic_api(&client, group, version, kind, plural, ns);
        let created = api
            .create(
                &PostParams::default(),
                &object(&api_version, kind, name, body),
            )
            .await
            .unwrap_or_else(|e| panic!("create {kind} {api_version}: {e}"));
        assert!(created.metadata.uid.is_some(), "{kind}: uid");
        assert!(
            created.metadata.creation_timestamp.is_some(),
            "{kind}: creationTimestamp"
        );
        assert!(
            created.metadata.resource_version.is_some(),
            "{kind}: resourceVersion"
        );
        let got = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get {kind}: {e}"));
        assert_eq!(
            got.types.as_ref().unwrap().api_version,
            api_version,
            "{kind} is served in the version asked"
        );
        let listed = api
            .list(&ListParams::default().labels(&format!("suite=sim-api,obj={name}")))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1, "{kind} listed by label");
        let none = api
            .list(&ListParams::default().labels("suite!=sim-api"))
            .await
            .unwrap();
        assert!(
            none.items
                .iter()
                .all(|o| o.metadata.name.as_deref() != Some(name)),
            "{kind}"
        );
        api.delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {kind}: {e}"));
        let err = api.get(name).await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 404),
            "{kind}: {err}"
        );
    }
}

#[tokio::test]
async fn a_traffic_split_is_stored_once_and_read_in_every_served_version() {
    let (_sim, client) = start().await;
    let v1 = dynamic_api(
        &client,
        "split.smi-spec.io",
        "v1alpha1",
        "TrafficSplit",
        "trafficsplits",
        Some("default"),
    );
    v1.create(
        &PostParams::default(),
        &object(
            "split.smi-spec.io/v1alpha1",
            "TrafficSplit",
            "podinfo",
            json!({"spec": {"service": "podinfo", "backends": [{"service": "a", "weight": 100}]}}),
        ),
    )
    .await
    .unwrap();
    for version in ["v1alpha2", "v1alpha3"] {
        let api = dynamic_api(
            &client,
            "split.smi-spec.io",
            version,
            "TrafficSplit",
            "trafficsplits",
            Some("default"),
        );
        let got = api.get("podinfo").await.unwrap();
        assert_eq!(
            got.types.unwrap().api_version,
            format!("split.smi-spec.io/{version}")
        );
        assert_eq!(got.data["spec"]["backends"][0]["weight"], 100);
    }
}

#[tokio::test]
async fn discovery_lists_exactly_the_installed_kinds() {
    let (_sim, client) = start().await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "autoscaling",
        "coordination.k8s.io",
        "networking.k8s.io",
        "split.smi-spec.io",
        "gateway.networking.k8s.io",
        "networking.istio.io",
        "apiextensions.k8s.io",
    ] {
        assert!(groups.iter().any(|x| x == g), "{g} in {groups:?}");
    }
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    assert_eq!(ar.plural, "deployments");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "deployments/scale" || s.plural == "scale"),
        "{:?}",
        caps.subresources
    );
    let ts = discovery.get("split.smi-spec.io").unwrap();
    assert_eq!(ts.preferred_version_or_latest(), "v1alpha3");

    let (_sim2, bare) = start_with(SimConfig {
        crds: CrdGroups {
            smi: false,
            gateway_api: false,
            istio: false,
            flagger: false,
            keda: false,
            kuma: false,
            apisix: false,
            contour: false,
            traefik: false,
            gloo: false,
            keptn: false,
            knative: false,
        },
        ..Default::default()
    })
    .await;
    let discovery = Discovery::new(bare.clone()).run().await.unwrap();
    assert!(discovery.get("split.smi-spec.io").is_none());
    assert!(discovery.get("networking.istio.io").is_none());
    assert!(discovery.get("keda.sh").is_none());
    let crds = dynamic_api(
        &bare,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    assert!(
        crds.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let crds = dynamic_api(
        &client,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    let names: Vec<String> = crds
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(
        names,
        [
            "trafficsplits.split.smi-spec.io",
            "httproutes.gateway.networking.k8s.io",
            "virtualservices.networking.istio.io",
            "destinationrules.networking.istio.io",
            "scaledobjects.keda.sh",
            "keptnmetricsproviders.metrics.keptn.sh",
            "keptnmetrics.metrics.keptn.sh",
            "analysisvaluetemplates.metrics.keptn.sh",
            "analysisdefinitions.metrics.keptn.sh",
            "analyses.metrics.keptn.sh"
        ]
    );
    let (s, _) = raw(
        &bare,
        "GET",
        "/apis/split.smi-spec.io/v1alpha3/namespaces/default/trafficsplits",
        "application/json",
        "",
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_stale_resource_version_is_answered_409_conflict_with_the_real_message() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let first = api
        .create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    let mut newer = first.clone();
    newer.spec.replicas = Some(3);
    api.replace("podinfo", &PostParams::default(), &newer)
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.spec.replicas = Some(5);
    let err = api
        .replace("podinfo", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(s.code, 409);
    assert_eq!(s.reason, "Conflict");
    assert_eq!(
        s.message,
        "Operation cannot be fulfilled on deployments.apps \"podinfo\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // A patch carrying the stale version is refused the same way.
    let rv = first.metadata.resource_version.clone().unwrap();
    let p = json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": 7}});
    let err = api
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    // Creating it again is AlreadyExists.
    let err = api
        .create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(s.message, "deployments.apps \"podinfo\" already exists");
}

#[tokio::test]
async fn merge_json_strategic_and_apply_patches_change_a_deployment() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    let pp = PatchParams::default();

    let d = api
        .patch(
            "podinfo",
            &pp,
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.annotations.unwrap()["a"], "1");

    // kube's Patch::Json takes json-patch 4, which the crate does not use:
    // the same request by hand.
    let path = "/apis/apps/v1/namespaces/default/deployments/podinfo";
    let ops = json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]).to_string();
    let (s, d) = raw(&client, "PATCH", path, "application/json-patch+json", &ops).await;
    assert_eq!((s, &d["spec"]["replicas"]), (200, &json!(4)), "{d}");

    let smp =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}});
    let d = api
        .patch("podinfo", &pp, &Patch::Strategic(smp))
        .await
        .unwrap();
    let c = &d.spec.template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("img:2"));
    assert_eq!(
        c.ports.as_ref().unwrap()[0].container_port,
        9898,
        "strategic merge keeps the rest of the container"
    );

    let apply = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "podinfo"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": {"containers": [{"name": "c", "image": "img:3"}]}}}});
    let d = api
        .patch(
            "podinfo",
            &PatchParams::apply("canary").force(),
            &Patch::Apply(&apply),
        )
        .await
        .unwrap();
    assert_eq!(d.spec.replicas, Some(6));
    assert!(
        d.metadata
            .managed_fields
            .unwrap()
            .iter()
            .any(|m| m.manager.as_deref() == Some("canary")
                && m.operation.as_deref() == Some("Apply"))
    );

    // Apply creates what does not exist yet.
    let mut fresh = apply.clone();
    fresh["metadata"]["name"] = json!("fresh");
    let d = api
        .patch(
            "fresh",
            &PatchParams::apply("canary"),
            &Patch::Apply(&fresh),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));

    // A bad JSON patch is refused and changes nothing.
    let ops = json!([{"op": "test", "path": "/spec/replicas", "value": 99}, {"op": "replace", "path": "/spec/replicas", "value": 1}]).to_string();
    let (s, v) = raw(&client, "PATCH", path, "application/json-patch+json", &ops).await;
    assert_eq!((s, v["reason"].as_str()), (422, Some("Invalid")), "{v}");
    let (s, v) = raw(
        &client,
        "PATCH",
        path,
        "application/json-patch+json",
        "{\"op\": 1}",
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(api.get("podinfo").await.unwrap().spec.replicas, Some(6));
}

#[tokio::test]
async fn strategic_merge_patch_is_refused_for_custom_resources_with_415() {
    let (_sim, client) = start().await;
    let api = dynamic_api(
        &client,
        "split.smi-spec.io",
        "v1alpha3",
        "TrafficSplit",
        "trafficsplits",
        Some("default"),
    );
    api.create(
        &PostParams::default(),
        &object(
            "split.smi-spec.io/v1alpha3",
            "TrafficSplit",
            "podinfo",
            json!({"spec": {"service": "podinfo", "backends": []}}),
        ),
    )
    .await
    .unwrap();
    let err = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"service": "x"}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!((s.code, s.reason.as_str()), (415, "UnsupportedMediaType"));
    let ok = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"backends": [{"service": "a", "weight": 50}]}})),
        )
        .await
        .unwrap();
    assert_eq!(ok.data["spec"]["backends"][0]["weight"], 50);
}

#[tokio::test]
async fn the_scale_subresource_reads_and_writes_replicas() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    let scale = api.get_scale("podinfo").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(
        scale.status.unwrap().selector.as_deref(),
        Some("app=podinfo")
    );
    let s = api
        .patch_scale(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(5));
    let d = api.get("podinfo").await.unwrap();
    assert_eq!(d.spec.replicas, Some(5));
    assert_eq!(d.metadata.generation, Some(2), "a scale is a spec change");
    let err = api
        .patch_scale(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err}"
    );
}

#[tokio::test]
async fn status_changes_only_through_the_status_subresource_and_generation_tracks_the_spec() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let d = api
        .create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));

    // Status sent to the main resource is ignored.
    let d = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(d.status.as_ref().and_then(|s| s.replicas), None);
    assert_eq!(d.metadata.generation, Some(1));

    // Metadata changes do not bump the generation.
    let d = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));

    // Status goes through /status; spec sent there is ignored.
    let d = api.patch_status("podinfo", &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"observedGeneration": 1, "replicas": 2}}))).await.unwrap();
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(1));
    assert_eq!(d.spec.replicas, Some(2));
    assert_eq!(d.metadata.generation, Some(1));

    // A spec change bumps the generation; observedGeneration lags until the
    // controller catches up.
    let d = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    assert_eq!(d.status.unwrap().observed_generation, Some(1));

    // A write that changes nothing keeps the resourceVersion.
    let before = api.get("podinfo").await.unwrap();
    let after = api
        .replace("podinfo", &PostParams::default(), &before)
        .await
        .unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
}

#[tokio::test]
async fn a_watch_sees_changes_from_a_resource_version_and_bookmarks_when_allowed() {
    let (_sim, client) = start_with(SimConfig {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "a", "labels": {"w": "1"}}, "data": {"k": "v"}}),
    )
    .unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let wp = WatchParams::default().labels("w=1").timeout(5);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v2"}})),
    )
    .await
    .unwrap();
    // Moving out of the selector is seen as a deletion.
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"w": "0"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut bookmark = false;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .unwrap()
    {
        match ev.unwrap() {
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.data.unwrap()["k"])),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => bookmark = true,
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
        if seen.len() == 2 && bookmark {
            break;
        }
    }
    assert_eq!(seen, ["MODIFIED v2", "DELETED a"]);
    assert!(bookmark);
}

type WatcherStream =
    futures::stream::BoxStream<'static, Result<watcher::Event<Deployment>, watcher::Error>>;

async fn next(events: &mut WatcherStream) -> watcher::Event<Deployment> {
    tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .expect("event in time")
        .expect("no error")
        .expect("stream goes on")
}

#[tokio::test]
async fn the_runtime_watcher_sees_an_update_and_relists_after_410_gone() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    let mut events: WatcherStream = watcher(api.clone(), watcher::Config::default()).boxed();
    // The initial list.
    loop {
        if let watcher::Event::InitDone = next(&mut events).await {
            break;
        }
    }
    api.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    match next(&mut events).await {
        watcher::Event::Apply(d) => assert_eq!(d.spec.replicas, Some(5)),
        other => panic!("{other:?}"),
    }
    // Ask for a version older than the kept history: the raw watch gets an
    // ERROR event carrying 410 Gone (Expired).
    let old_rv = api
        .get("podinfo")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 6}})),
    )
    .await
    .unwrap();
    sim.store().compact();
    let mut raw_watch = api
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match raw_watch.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
    // The runtime watcher relists when its stream ends and it resumes from
    // a compacted version.
    sim.store().compact();
    let d = sim
        .store()
        .get("apps/v1", "Deployment", "default", "podinfo")
        .unwrap();
    assert!(d["metadata"]["resourceVersion"].is_string());
    let watcher_api: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut short = watcher(watcher_api, watcher::Config::default().timeout(1)).boxed();
    let mut saw_relist_after_gone = false;
    let mut inits = 0;
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let ev = tokio::time::timeout(Duration::from_secs(3), short.next())
            .await
            .expect("in time")
            .expect("goes on");
        match ev {
            Ok(watcher::Event::Init) => {
                inits += 1;
                if inits == 2 {
                    saw_relist_after_gone = true;
                    break;
                }
            }
            Ok(watcher::Event::InitDone) => {
                // Make the version it will resume from too old.
                sim.store().compact();
                api.patch(
                    "podinfo",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"n": inits.to_string()}}})),
                )
                .await
                .unwrap();
                sim.store().compact();
            }
            Ok(_) => {}
            Err(watcher::Error::WatchError(e)) => assert_eq!(e.code, 410),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(saw_relist_after_gone, "the watcher relisted after 410");
}

#[tokio::test]
async fn the_service_proxy_reaches_a_registered_backend_without_the_token() {
    let (sim, client) = start().await;
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "prometheus", "namespace": "default"},
        "spec": {"ports": [{"name": "web", "port": 9090, "targetPort": 9090}]}}),
    )
    .unwrap();
    Api::<Service>::default_namespaced(client.clone())
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let backend = axum::Router::new().fallback(|req: axum::http::Request<axum::body::Body>| async move {
        let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_string());
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
        axum::Json(json!({"auth": auth, "method": method, "uri": uri, "body": String::from_utf8_lossy(&body)}))
    });
    sim.register_service_backend("default", "prometheus", 9090, backend);
    for spec in ["prometheus:9090", "http:prometheus:9090", "prometheus:web"] {
        let path =
            format!("/api/v1/namespaces/default/services/{spec}/proxy/api/v1/query?query=up");
        let (s, v) = raw(&client, "POST", &path, "text/plain", "hello").await;
        assert_eq!(s, 200, "{spec}: {v}");
        assert_eq!(
            v["auth"],
            Value::Null,
            "the Authorization header is stripped"
        );
        assert_eq!(v["uri"], "/api/v1/query?query=up");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["body"], "hello");
    }
    let (s, v) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/services/missing:80/proxy/",
        "",
        "",
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["message"], "services \"missing\" not found");
    let svc2: Service = serde_json::from_value(
        json!({"metadata": {"name": "loadtester"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    Api::<Service>::default_namespaced(client.clone())
        .create(&PostParams::default(), &svc2)
        .await
        .unwrap();
    let (s, _, v) = plain(
        &sim,
        "GET",
        "/api/v1/namespaces/default/services/loadtester:80/proxy/",
        Some(sim.token()),
        "",
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(
        v["message"],
        "no endpoints available for service \"loadtester\""
    );
}

#[tokio::test]
async fn requests_without_the_token_are_refused_401_and_the_token_is_never_logged() {
    let (sim, _client) = start().await;
    let wrong = sim.kubeconfig_yaml().replace(sim.token(), "not-the-token");
    let intruder = client_for(&wrong).await;
    let err = Api::<Deployment>::default_namespaced(intruder)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
    let (s, _, v) = plain(&sim, "GET", "/api/v1/namespaces", None, "").await;
    assert_eq!(s, 401);
    assert_eq!(
        v,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let (s, _, _) = plain(&sim, "GET", "/api/v1/namespaces", Some(sim.token()), "").await;
    assert_eq!(s, 200, "the same API over plain HTTP with the token");
    let log = format!("{:?}", sim.request_log());
    assert!(log.contains("401"));
    assert!(!log.contains(sim.token()));
}

#[tokio::test]
async fn errors_are_status_objects_shaped_like_the_real_servers() {
    let (_sim, client) = start().await;
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let (s, v) = raw(&client, "GET", "/apis/example.com/v1/widgets", "", "").await;
    assert_eq!(s, 404);
    assert_eq!(
        v,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server could not find the requested resource", "reason": "NotFound", "details": {}, "code": 404})
    );
    let (s, _) = raw(
        &client,
        "GET",
        "/apis/apps/v1/namespaces/default/widgets",
        "",
        "",
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = raw(&client, "GET", &format!("{deps}/x"), "", "").await;
    assert_eq!(s, 404);
    assert_eq!(
        v,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "deployments.apps \"x\" not found", "reason": "NotFound",
        "details": {"name": "x", "group": "apps", "kind": "deployments"}, "code": 404})
    );
    // A path is not a form: `+` is a plus there, `%20` a space.
    let (s, v) = raw(&client, "GET", &format!("{deps}/a+b%20c"), "", "").await;
    assert_eq!(s, 404);
    assert_eq!(v["message"], "deployments.apps \"a+b c\" not found");
    let (s, v) = raw(&client, "POST", deps, "application/json", "{not json").await;
    assert_eq!((s, v["reason"].as_str()), (400, Some("BadRequest")), "{v}");
    let (s, v) = raw(&client, "PUT", deps, "application/json", "{}").await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (405, Some("MethodNotAllowed")),
        "{v}"
    );
    let (s, v) = raw(&client, "PATCH", &format!("{deps}/x"), "text/plain", "{}").await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (415, Some("UnsupportedMediaType")),
        "{v}"
    );
    // Invalid objects: 422 with causes.
    let no_selector = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
        "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (s, v) = raw(
        &client,
        "POST",
        deps,
        "application/json",
        &no_selector.to_string(),
    )
    .await;
    assert_eq!((s, v["reason"].as_str()), (422, Some("Invalid")), "{v}");
    assert_eq!(v["details"]["kind"], "Deployment");
    assert_eq!(v["details"]["causes"][0]["field"], "spec.selector");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Deployment.apps \"bad\" is invalid: [spec.selector: Required value"),
        "{v}"
    );
    let mismatch = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
        "spec": {"selector": {"matchLabels": {"app": "y"}}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (s, v) = raw(
        &client,
        "POST",
        deps,
        "application/json",
        &mismatch.to_string(),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        v["message"],
        "Deployment.apps \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"
    );
    let bad_name =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Name"}});
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &bad_name.to_string(),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");
    let no_name = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &no_name.to_string(),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        v["message"],
        "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    let port = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000, "targetPort": 8080}]}});
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        &port.to_string(),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        v["message"],
        "Service \"s\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
    );
    // The body's namespace must be the URL's.
    let other_ns = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system"}});
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &other_ns.to_string(),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    // A namespace that does not exist.
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        "application/json",
        &json!({"metadata": {"name": "c"}}).to_string(),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(v["message"], "namespaces \"nowhere\" not found");
    // Wrong types are refused at decoding.
    let typed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": 1}});
    let (s, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &typed.to_string(),
    )
    .await;
    assert_eq!(s, 400);
    // An object copied from the server cannot be created as it is.
    let copied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "copy", "resourceVersion": "5"}});
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &copied.to_string(),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            400,
            Some("resourceVersion should not be set on objects to be created")
        )
    );
    // Unknown fields: dropped with a warning by default, refused when strict.
    let unknown = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}, "dataa": {"k": "v"}});
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "application/json",
        &unknown.to_string(),
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            400,
            Some(
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dataa\""
            )
        )
    );
    let (s, v) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        &unknown.to_string(),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(v.get("dataa"), None);
}

#[tokio::test]
async fn dry_run_validates_without_persisting() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let rv = sim.store().resource_version();
    let d = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &deployment("dry", "img:1"),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.name.as_deref(), Some("dry"));
    assert!(api.get_opt("dry").await.unwrap().is_none());
    assert_eq!(sim.store().resource_version(), rv);
    let mut bad = deployment("dry", "img:1");
    bad.spec.selector.match_labels = None;
    let err = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &bad,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err}"
    );
}

#[tokio::test]
async fn lists_paginate_with_limit_and_continue_over_a_consistent_snapshot() {
    let (_sim, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..7 {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{i}"), "labels": {"page": "yes"}}}),
        )
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().labels("page=yes").limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        if pages == 1 {
            // Created after the first page: not in this list.
            let cm: ConfigMap = serde_json::from_value(
                json!({"metadata": {"name": "cm-late", "labels": {"page": "yes"}}}),
            )
            .unwrap();
            api.create(&PostParams::default(), &cm).await.unwrap();
        }
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    let by_field = api
        .list(&ListParams::default().fields("metadata.name=cm-3"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 1);
    let by_set = api
        .list(&ListParams::default().labels("page in (yes,maybe),!absent"))
        .await
        .unwrap();
    assert_eq!(by_set.items.len(), 8);
    let all_ns: Api<ConfigMap> = Api::all(client.clone());
    let in_default = all_ns
        .list(
            &ListParams::default()
                .fields("metadata.namespace=default,metadata.name!=kube-root-ca.crt"),
        )
        .await
        .unwrap();
    assert_eq!(in_default.items.len(), 8);
    let err = api
        .list(&ListParams::default().fields("data.k=v"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400),
        "{err}"
    );
}

#[tokio::test]
async fn generate_name_owner_references_and_namespaces_behave_like_a_cluster() {
    let (_sim, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let uid = owner.metadata.uid.unwrap();
    let child: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "child-",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}})).unwrap();
    let a = api.create(&PostParams::default(), &child).await.unwrap();
    let b = api.create(&PostParams::default(), &child).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("child-") && a.len() == "child-".len() + 5 && a != b);
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    assert!(
        api.get_opt(&a).await.unwrap().is_none(),
        "dependents are garbage-collected"
    );
    // A namespace and its content go together.
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "prod"}})).unwrap(),
        )
        .await
        .unwrap();
    let prod: Api<ConfigMap> = Api::namespaced(client.clone(), "prod");
    assert!(prod.get_opt("kube-root-ca.crt").await.unwrap().is_some());
    ns_api
        .delete("prod", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        prod.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn injected_faults_answer_500_429_409_drop_connections_and_are_logged() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    sim.clear_request_log();

    sim.faults().fail_next(1, FaultStatus::InternalError);
    let err = api.get("podinfo").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500 && s.reason == "InternalError"),
        "{err}"
    );

    sim.faults().fail_next(
        1,
        FaultStatus::TooManyRequests {
            retry_after_secs: 2,
        },
    );
    let (s, headers, v) = plain(
        &sim,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/podinfo",
        Some(sim.token()),
        "",
    )
    .await;
    assert_eq!(
        (s, v["details"]["retryAfterSeconds"].as_i64()),
        (429, Some(2))
    );
    assert!(
        headers.contains(&("retry-after".to_string(), "2".to_string())),
        "{headers:?}"
    );

    sim.faults().set_conflict_on_writes(true);
    assert!(api.get("podinfo").await.is_ok(), "reads are not affected");
    let err = api
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    sim.faults().set_conflict_on_writes(false);

    sim.faults().drop_next(1);
    assert!(
        matches!(
            api.get("podinfo").await,
            Err(kube::Error::HyperError(_) | kube::Error::Service(_))
        ),
        "a dropped connection is a transport error"
    );
    assert!(
        api.get("podinfo").await.is_ok(),
        "the next request goes through"
    );

    sim.faults().set_latency(Duration::from_millis(150));
    let t = Instant::now();
    api.get("podinfo").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    sim.faults().clear();
    sim.faults().set_metrics_outage(true);
    assert!(sim.faults().metrics_outage());

    let statuses: Vec<u16> = sim.request_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 429, 200, 409, 0, 200, 200]);
    assert!(sim.request_log().iter().all(|r| {
        r.path
            .starts_with("/apis/apps/v1/namespaces/default/deployments/podinfo")
    }));
}

#[tokio::test]
async fn shutdown_ends_open_watches_and_stops_serving() {
    let (sim, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let url = sim.addr();
    let t = Instant::now();
    sim.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(3));
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await {}
    assert!(
        tokio::net::TcpStream::connect(url).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn get_latency_on_loopback_is_measured() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    let mut times = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        api.get("podinfo").await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "GET deployment over loopback (kube client, TLS, keep-alive): median {:?}, p90 {:?}, p99 {:?}",
        times[500], times[900], times[990]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_sets_an_image_scales_and_applies_against_the_sim() {
    if !kubectl::available() {
        eprintln!("SKIPPED: kubectl not on PATH");
        return;
    }
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    let k = Kubectl::new(&sim).unwrap();

    let (ok, out, err) = k.run(&["get", "deployments"]).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("NAME      READY   UP-TO-DATE   AVAILABLE   AGE\npodinfo   0/2"),
        "{out}"
    );

    let (ok, out, err) = k
        .run(&["set", "image", "deployment/podinfo", "c=img:2"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployment.apps/podinfo image updated");
    assert!(err.is_empty(), "no warnings: {err}");
    let d = api.get("podinfo").await.unwrap();
    let spec = d.spec;
    assert_eq!(
        spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("img:2")
    );

    let (ok, out, err) = k
        .run(&["scale", "deployment/podinfo", "--replicas=3"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployment.apps/podinfo scaled");
    assert_eq!(api.get("podinfo").await.unwrap().spec.replicas, Some(3));

    let manifest = k.dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: canary
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: podinfo
spec:
  service: podinfo
  backends:
  - service: podinfo-primary
    weight: 100
"#,
    )
    .unwrap();
    let path = manifest.to_str().unwrap();
    let (ok, out, err) = k.run(&["apply", "--validate=false", "-f", path]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("configmap/settings created")
            && out.contains("trafficsplit.split.smi-spec.io/podinfo created"),
        "{out}"
    );
    std::fs::write(
        &manifest,
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("mode: canary", "mode: primary")
            .replace("weight: 100", "weight: 90"),
    )
    .unwrap();
    let (ok, out, err) = k.run(&["apply", "--validate=false", "-f", path]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("configmap/settings configured")
            && out.contains("trafficsplit.split.smi-spec.io/podinfo configured"),
        "{out}"
    );
    let cm: ConfigMap = Api::default_namespaced(client.clone())
        .get("settings")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["mode"], "primary");
    let (ok, out, err) = k
        .run(&[
            "get",
            "ts",
            "podinfo",
            "-o",
            "jsonpath={.spec.backends[0].weight}",
        ])
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "90");
}

#[tokio::test]
async fn events_written_through_events_k8s_io_are_core_events_too() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let (_sim, client) = start().await;
    let new_api: Api<Event> = Api::default_namespaced(client.clone());
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "podinfo.1"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "canary", "reportingInstance": "canary-laptop",
        "action": "Promote", "reason": "Promoted", "type": "Normal", "note": "promoted podinfo",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo", "namespace": "default"},
    }))
    .unwrap();
    new_api.create(&PostParams::default(), &ev).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let seen = core
        .list(&ListParams::default().fields("involvedObject.name=podinfo,reason=Promoted"))
        .await
        .unwrap();
    assert_eq!(seen.items.len(), 1);
    assert_eq!(seen.items[0].message.as_deref(), Some("promoted podinfo"));
    assert_eq!(seen.items[0].reporting_component.as_deref(), Some("canary"));
    let back = new_api.get("podinfo.1").await.unwrap();
    assert_eq!(back.note.as_deref(), Some("promoted podinfo"));
    let mut bad = ev.clone();
    bad.metadata.name = Some("bad".into());
    bad.action = None;
    let err = new_api
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err}"
    );
}

#[tokio::test]
async fn an_http_route_is_defaulted_and_validated_like_the_gateway_api_crd() {
    let (_sim, client) = start().await;
    let api = dynamic_api(
        &client,
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        Some("default"),
    );
    let route = object(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "podinfo",
        json!({"spec": {"parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "podinfo-primary", "port": 9898}]}]}}),
    );
    let r = api.create(&PostParams::default(), &route).await.unwrap();
    assert_eq!(r.data["spec"]["parentRefs"][0]["kind"], "Gateway");
    assert_eq!(r.data["spec"]["rules"][0]["backendRefs"][0]["weight"], 1);
    assert_eq!(
        r.data["spec"]["rules"][0]["matches"][0]["path"]["type"],
        "PathPrefix"
    );
    let no_port = object(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "broken",
        json!({"spec": {"rules": [{"backendRefs": [{"name": "podinfo-primary"}]}]}}),
    );
    let err = api
        .create(&PostParams::default(), &no_port)
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains("Must have port for Service reference"),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn the_runtime_watcher_works_with_streaming_lists() {
    let (_sim, client) = start().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &deployment("podinfo", "img:1"))
        .await
        .unwrap();
    let mut events: WatcherStream =
        watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await {
            watcher::Event::InitApply(d) => initial.push(d.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["podinfo"]);
    api.patch(
        "podinfo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    match next(&mut events).await {
        watcher::Event::Apply(d) => assert_eq!(d.spec.replicas, Some(4)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn node_port_services_get_a_node_port_that_updates_keep() {
    let (_sim, client) = start().await;
    let api: Api<Service> = Api::default_namespaced(client.clone());
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "np"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}}))
    .unwrap();
    let created = api.create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.clone().unwrap();
    let node_port = spec.ports.as_ref().unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&node_port));
    assert!(
        spec.cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    // A replace that leaves the allocated values out keeps them.
    let mut again = svc.clone();
    again.metadata.resource_version = created.metadata.resource_version.clone();
    let replaced = api
        .replace("np", &PostParams::default(), &again)
        .await
        .unwrap();
    let spec2 = replaced.spec.unwrap();
    assert_eq!(spec2.ports.unwrap()[0].node_port, Some(node_port));
    assert_eq!(spec2.cluster_ip, spec.cluster_ip);
}

#[tokio::test]
async fn self_subject_access_reviews_answer_what_the_rules_allow() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let (sim, client) = start().await;
    let rules = canary_sim::rbac::Rules::from_yaml(
        "kind: Role
metadata: {name: reader, namespace: default}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [get, list]}]
",
    )
    .unwrap();
    sim.restrict(Some(rules));
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let ask = |verb: &str, namespace: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some(verb.to_string()),
                group: Some("apps".to_string()),
                resource: Some("deployments".to_string()),
                name: Some("podinfo".to_string()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let pp = PostParams::default();
    let got = api.create(&pp, &ask("get", "default")).await.unwrap();
    let status = got.status.unwrap();
    assert!(status.allowed);
    assert_eq!(
        status.reason.as_deref(),
        Some("RBAC: allowed by Role default/reader")
    );
    let got = api.create(&pp, &ask("patch", "default")).await.unwrap();
    assert!(!got.status.unwrap().allowed);
    let got = api.create(&pp, &ask("get", "prod")).await.unwrap();
    assert!(!got.status.unwrap().allowed);
    // Asking is a create that stores nothing: not a write in the log.
    let log = sim.request_log();
    let asked: Vec<_> = log.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(asked.len(), 3);
    assert!(
        asked
            .iter()
            .all(|r| r.allowed && r.status == 201 && !r.is_write())
    );
}

/// A request with a byte body: (status, `Warning` headers, body as JSON).
async fn raw_bytes(
    client: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Vec<String>, Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(kube::client::Body::from(body)).unwrap();
    let resp = client.send(req).await.expect("response");
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn protobuf_bodies_are_decoded_for_the_kinds_kubectl_creates() {
    use k8s_pb::api::core::v1 as pb;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;
    let (_sim, client) = start().await;
    let cm = pb::ConfigMap {
        metadata: Some(pbmeta::ObjectMeta {
            name: Some("settings".into()),
            labels: [("app".to_string(), "podinfo".to_string())].into(),
            ..Default::default()
        }),
        data: [("mode".to_string(), "canary".to_string())].into(),
        binary_data: [("raw".to_string(), vec![1u8, 2, 3])].into(),
        immutable: None,
    };
    let body = canary_sim::protobuf::encode("v1", "ConfigMap", &cm);
    let pb_headers = [
        ("Content-Type", "application/vnd.kubernetes.protobuf"),
        (
            "Accept",
            "application/vnd.kubernetes.protobuf,application/json",
        ),
    ];
    let (s, _, v) = raw_bytes(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &pb_headers,
        body.clone(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["data"], json!({"mode": "canary"}));
    assert_eq!(v["binaryData"], json!({"raw": "AQID"}));
    assert_eq!(v["metadata"]["labels"], json!({"app": "podinfo"}));
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let stored = api.get("settings").await.unwrap();
    assert_eq!(stored.data.unwrap()["mode"], "canary");

    // DeleteOptions in protobuf: a dry run deletes nothing.
    let opts = k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions {
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    let (s, _, v) = raw_bytes(
        &client,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/settings",
        &pb_headers,
        canary_sim::protobuf::encode("v1", "DeleteOptions", &opts),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(api.get_opt("settings").await.unwrap().is_some());

    // Only protobuf accepted in return: 406, and nothing more is created.
    let (s, _, v) = raw_bytes(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[
            ("Content-Type", "application/vnd.kubernetes.protobuf"),
            ("Accept", "application/vnd.kubernetes.protobuf"),
        ],
        body,
    )
    .await;
    assert_eq!((s, v["reason"].as_str()), (406, Some("NotAcceptable")));
    assert_eq!(
        v["message"],
        "only the following media types are accepted: application/json"
    );

    // Another kind in protobuf: 415, naming what is accepted.
    let (s, _, v) = raw_bytes(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &pb_headers,
        b"k8s\0".to_vec(),
    )
    .await;
    assert_eq!(s, 415, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("Deployment.apps"), "{msg}");
    assert!(
        msg.contains("protobuf is accepted for ConfigMap, Secret, Namespace, ServiceAccount"),
        "{msg}"
    );
    // A media type no kind takes: protobuf is only named where it is accepted.
    let (s, _, v) = raw_bytes(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &[("Content-Type", "application/cbor")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(s, 415);
    assert_eq!(
        v["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
    );
}

#[tokio::test]
async fn field_validation_reports_duplicate_and_unknown_fields() {
    let (_sim, client) = start().await;
    let body = br#"{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "d", "name": "d", "unknownMeta": 1},
        "data": {"a": "1"}, "dta": {}}"#
        .to_vec();
    let json_ct = [("Content-Type", "application/json")];
    let (s, _, v) = raw_bytes(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        &json_ct,
        body.clone(),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: \
         duplicate field \"metadata.name\", unknown field \"metadata.unknownMeta\", unknown field \"dta\""
    );
    let (s, warnings, v) = raw_bytes(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Warn",
        &json_ct,
        body.clone(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        warnings,
        [
            "299 - \"duplicate field \\\"metadata.name\\\"\"",
            "299 - \"unknown field \\\"metadata.unknownMeta\\\"\"",
            "299 - \"unknown field \\\"dta\\\"\"",
        ]
    );
    assert_eq!(v.get("dta"), None);
    // A merge patch: its duplicates, then the unknown fields.
    let (s, _, v) = raw_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/d?fieldValidation=Strict",
        &[("Content-Type", "application/merge-patch+json")],
        br#"{"data": {"a": "2", "a": "3"}, "zzz": 1, "bogus": 2}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["message"],
        "strict decoding error: duplicate field \"data.a\", unknown field \"bogus\", unknown field \"zzz\""
    );
    let (s, warnings, _) = raw_bytes(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/d?fieldValidation=Ignore",
        &[("Content-Type", "application/merge-patch+json")],
        br#"{"data": {"a": "2", "a": "3"}, "zzz": 1}"#.to_vec(),
    )
    .await;
    assert_eq!((s, warnings.len()), (200, 0));
}

#[tokio::test]
async fn custom_resources_are_pruned_and_validated_against_their_crd_schema() {
    let (_sim, client) = start_with(SimConfig {
        crds: CrdGroups {
            flagger: true,
            ..CrdGroups::default()
        },
        ..SimConfig::default()
    })
    .await;
    let canary = |extra: Value| {
        let mut c = json!({"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898, "meshSpecific": true},
                "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10,
                    "metrics": [{"name": "request-success-rate", "threshold": 99}]}}});
        if let (Some(a), Value::Object(e)) = (c["spec"]["analysis"].as_object_mut(), extra) {
            a.extend(e);
        }
        serde_json::to_vec(&c).unwrap()
    };
    let path = "/apis/flagger.app/v1beta1/namespaces/default/canaries";
    let json_ct = [("Content-Type", "application/json")];
    let (s, _, v) = raw_bytes(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        &json_ct,
        canary(json!({"stepWieght": 5})),
    )
    .await;
    assert_eq!(s, 400);
    let mut with_meta: Value = serde_json::from_slice(&canary(json!({}))).unwrap();
    with_meta["metadata"]["lables"] = json!({"a": "b"});
    let (s, _, v2) = raw_bytes(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        &json_ct,
        serde_json::to_vec(&with_meta).unwrap(),
    )
    .await;
    assert_eq!(
        (s, v2["message"].as_str()),
        (
            400,
            Some(
                "Canary in version \"v1beta1\" cannot be handled as a Canary: strict decoding error: unknown field \"metadata.lables\""
            )
        )
    );
    assert_eq!(
        v["message"],
        "Canary in version \"v1beta1\" cannot be handled as a Canary: strict decoding error: unknown field \"spec.analysis.stepWieght\""
    );
    let (s, warnings, v) = raw_bytes(
        &client,
        "POST",
        path,
        &json_ct,
        canary(json!({"stepWieght": 5})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        warnings,
        ["299 - \"unknown field \\\"spec.analysis.stepWieght\\\"\""]
    );
    // Pruned; the open parts of the schema keep what they are given.
    assert_eq!(v["spec"]["analysis"].get("stepWieght"), None);
    assert_eq!(v["spec"]["analysis"]["stepWeight"], 10);
    assert_eq!(v["spec"]["service"]["meshSpecific"], true);
}
