//! The OpenAPI documents of the served kinds: `/openapi/v2` (Swagger 2.0)
//! and `/openapi/v3` (the index) with `/openapi/v3/api/v1` and
//! `/openapi/v3/apis/GROUP/VERSION` (OpenAPI 3.0), as `kubectl explain`,
//! `kubectl apply`'s field-validation check and `kubectl diff` read them.
//!
//! The schemas of built-in kinds come from k8s-openapi's `JsonSchema`
//! implementations (whose names are the OpenAPI definition names and whose
//! descriptions are the API's own); those of custom resources from their
//! CRD's `openAPIV3Schema`. As in the real documents, a `$ref` with sibling
//! keys is wrapped in `allOf`, top-level kinds carry
//! `x-kubernetes-group-version-kind`, and the lists that strategic merge
//! patch merges by key carry `x-kubernetes-patch-merge-key` and
//! `x-kubernetes-patch-strategy` (from the table in `patch`). Every
//! resource has its paths, whose write operations declare the `dryRun`,
//! `fieldManager` and `fieldValidation` query parameters: kubectl looks
//! for `fieldValidation` on the PATCH operation of a kind before it lets
//! the server validate fields.
//!
//! `/openapi/v2` is JSON; asked for in protobuf only (as kubectl asks when
//! it validates a kind that no v3 document describes, a kind the server
//! does not serve), it is the empty document, so that kubectl reports the
//! unknown kind as it does against any cluster (see `api`).
//!
//! Documents are built on first request and cached for the server's life.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::{apps, autoscaling, coordination, core, events, networking};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::kinds::{self, KindInfo, Kinds};
use crate::patch;

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";

/// Built documents, by path (`v2`, `v3`, `v3/apis/apps/v1`...).
#[derive(Default)]
pub struct Cache {
    docs: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl Cache {
    /// The serialized document at `key`, built by `build` the first time.
    fn get(&self, key: &str, build: impl FnOnce() -> Option<Value>) -> Option<Arc<Vec<u8>>> {
        if let Some(d) = self.lock().get(key) {
            return Some(d.clone());
        }
        // Built outside the lock: two first requests may both build, and
        // the documents are equal.
        let doc = Arc::new(serde_json::to_vec(&build()?).unwrap_or_default());
        self.lock().insert(key.to_string(), doc.clone());
        Some(doc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<u8>>>> {
        self.docs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `/openapi/v2` as JSON.
    pub fn v2(&self, kinds: &Kinds) -> Arc<Vec<u8>> {
        self.get("v2", || Some(v2_document(kinds)))
            .expect("the v2 document is always built")
    }

    /// `/openapi/v3`: the index of the group-version documents, each
    /// with the hash of its (cached) bytes.
    pub fn v3_index(&self, kinds: &Kinds) -> Arc<Vec<u8>> {
        self.get("v3", || {
            let mut paths = Map::new();
            for (g, v) in group_versions(kinds) {
                let p = gv_path(g, v);
                let h = self
                    .v3_group_version(kinds, g, v)
                    .map(|doc| hash(&doc))
                    .unwrap_or_default();
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")}),
                );
            }
            Some(json!({"paths": paths}))
        })
        .expect("the v3 index is always built")
    }

    /// `/openapi/v3/api/v1` (`group` empty) or
    /// `/openapi/v3/apis/GROUP/VERSION`; `None` for one not served.
    pub fn v3_group_version(
        &self,
        kinds: &Kinds,
        group: &str,
        version: &str,
    ) -> Option<Arc<Vec<u8>>> {
        let key = format!("v3/{}", gv_path(group, version));
        self.get(&key, || v3_document(kinds, group, version))
    }
}

/// `api/v1`, `apis/apps/v1`: the path of a group-version below `/openapi/v3/`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The group-versions served, core first.
fn group_versions(kinds: &Kinds) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("", "v1")];
    for (g, versions) in kinds.groups() {
        for v in versions {
            out.push((g, v));
        }
    }
    out
}

/// A stable hash of a document's bytes, for the index's `?hash=` (the
/// client caches by URL).
fn hash(bytes: &[u8]) -> String {
    // FNV-1a, 64 bits: only a cache key, not a checksum anyone verifies.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

// ---------------------------------------------------------------------------
// Schemas

/// The OpenAPI definition name of a custom resource kind:
/// `app.flagger.v1beta1.Canary` (the group reversed).
fn crd_definition_name(k: &KindInfo, version: &str) -> String {
    let reversed: Vec<&str> = k.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), k.kind)
}

fn gvk(k: &KindInfo, version: &str) -> Value {
    json!({"group": k.group, "kind": k.kind, "version": version})
}

/// Adds the schema of a built-in kind (and everything it refers to) to
/// the generator; its definition name, or `None` for a custom resource.
fn add_builtin(generator: &mut SchemaGenerator, k: &KindInfo) -> Option<String> {
    macro_rules! add {
        ($t:ty) => {{
            generator.subschema_for::<$t>();
            Some(<$t as JsonSchema>::schema_name().into_owned())
        }};
    }
    match (k.group, k.kind) {
        ("", "Namespace") => add!(core::v1::Namespace),
        ("", "Service") => add!(core::v1::Service),
        ("", "ConfigMap") => add!(core::v1::ConfigMap),
        ("", "Secret") => add!(core::v1::Secret),
        ("", "ServiceAccount") => add!(core::v1::ServiceAccount),
        ("", "Event") => add!(core::v1::Event),
        ("", "Pod") => add!(core::v1::Pod),
        ("apps", "Deployment") => add!(apps::v1::Deployment),
        ("apps", "ReplicaSet") => add!(apps::v1::ReplicaSet),
        ("apps", "DaemonSet") => add!(apps::v1::DaemonSet),
        ("events.k8s.io", "Event") => add!(events::v1::Event),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            add!(autoscaling::v2::HorizontalPodAutoscaler)
        }
        ("coordination.k8s.io", "Lease") => add!(coordination::v1::Lease),
        ("networking.k8s.io", "Ingress") => add!(networking::v1::Ingress),
        ("networking.k8s.io", "IngressClass") => add!(networking::v1::IngressClass),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            add!(apiextensions::v1::CustomResourceDefinition)
        }
        _ => None,
    }
}

fn name_of<T: JsonSchema>() -> String {
    T::schema_name().into_owned()
}

/// A kind at one version and its definition name.
type Named = (&'static KindInfo, String, String);

/// The schemas of the kinds of one group-version (all group-versions when
/// `only` is `None`), keyed by definition name, refs pointing at
/// `#/components/schemas/`; plus the definition name of each kind.
fn schemas(kinds: &Kinds, only: Option<(&str, &str)>) -> (Map<String, Value>, Vec<Named>) {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
        s.transforms.clear();
    });
    let mut generator = SchemaGenerator::new(settings);
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::Patch>();
    let mut named = Vec::new();
    let mut custom = Vec::new();
    for &k in kinds.served() {
        for &v in k.versions {
            if only.is_some_and(|(g, ver)| g != k.group || ver != v) {
                continue;
            }
            match add_builtin(&mut generator, k) {
                Some(name) => named.push((k, v.to_string(), name)),
                None => {
                    generator.subschema_for::<meta::ObjectMeta>();
                    let name = crd_definition_name(k, v);
                    custom.push((k, v, name.clone()));
                    named.push((k, v.to_string(), name));
                }
            }
        }
    }
    let mut defs = generator.take_definitions(true);
    for (k, v, name) in custom {
        defs.insert(name, custom_resource_schema(k, v));
    }
    for (k, v, name) in &named {
        if let Some(Value::Object(d)) = defs.get_mut(name) {
            // k8s-openapi requires `metadata` (and some `spec`s) because
            // its structs do; the API's own documents require neither.
            if let Some(Value::Array(req)) = d.get_mut("required") {
                req.retain(|f| f != "metadata" && f != "spec");
                if req.is_empty() {
                    d.remove("required");
                }
            }
            d.insert("x-kubernetes-group-version-kind".into(), json!([gvk(k, v)]));
        }
    }
    // Patch metadata: walked from every kind, through the shared
    // definitions (a PodSpec is reached from Deployments and Pods alike).
    for (k, _, name) in &named {
        if patch::has_strategic_merge_schema(k.kind) {
            annotate_lists(&mut defs, k.kind, name, &mut Vec::new(), 0);
        }
    }
    let defs: Map<String, Value> = defs
        .into_iter()
        .map(|(n, v)| (n, wrap_ref_siblings(v)))
        .collect();
    (defs, named)
}

/// The schema of a custom resource: the CRD's `openAPIV3Schema` with the
/// standard `apiVersion`, `kind` and `metadata` properties.
fn custom_resource_schema(k: &KindInfo, version: &str) -> Value {
    let mut s = kinds::crd_schema(k, version);
    let props = s
        .as_object_mut()
        .map(|o| {
            o.entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let mut all = Map::new();
    all.insert(
        "apiVersion".into(),
        json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}),
    );
    all.insert(
        "kind".into(),
        json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}),
    );
    all.insert(
        "metadata".into(),
        json!({"$ref": format!("{V3_PREFIX}{}", name_of::<meta::ObjectMeta>()),
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
    );
    for (key, v) in props {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            all.insert(key, v);
        }
    }
    s["properties"] = Value::Object(all);
    s
}

/// Follows `$ref` (possibly inside a one-element `allOf`) to the name of
/// the definition.
fn ref_name(v: &Value) -> Option<&str> {
    let r = v
        .get("$ref")
        .or_else(|| v.get("allOf")?.get(0)?.get("$ref"))?;
    r.as_str()?.strip_prefix(V3_PREFIX)
}

/// Marks the list fields of definition `name`, reached from a `kind` along
/// `path`, with the strategic-merge metadata of `patch`'s table.
fn annotate_lists(
    defs: &mut Map<String, Value>,
    kind: &str,
    name: &str,
    path: &mut Vec<String>,
    depth: usize,
) {
    // The table's deepest paths are short; the recursive types
    // (JSONSchemaProps) end here too.
    if depth > 8 {
        return;
    }
    let Some(props) = defs
        .get(name)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    for (field, schema) in props {
        path.push(field.clone());
        let is_array = schema.get("type").and_then(Value::as_str) == Some("array");
        if is_array {
            if let Some((strategy, key)) = patch::list_patch_meta(kind, path)
                && let Some(p) = defs
                    .get_mut(name)
                    .and_then(|d| d.get_mut("properties"))
                    .and_then(|p| p.get_mut(&field))
                    .and_then(Value::as_object_mut)
            {
                p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
                if let Some(key) = key {
                    p.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                }
            }
            if let Some(item) = schema.get("items").and_then(ref_name) {
                let item = item.to_string();
                annotate_lists(defs, kind, &item, path, depth + 1);
            }
        } else if let Some(child) = ref_name(&schema) {
            let child = child.to_string();
            annotate_lists(defs, kind, &child, path, depth + 1);
        }
        path.pop();
    }
}

/// `{"$ref": R, "description": D}` becomes `{"allOf": [{"$ref": R}],
/// "description": D}`: OpenAPI ignores the siblings of a `$ref`.
fn wrap_ref_siblings(v: Value) -> Value {
    match v {
        Value::Object(mut m) => {
            if m.len() > 1
                && let Some(r) = m.remove("$ref")
            {
                m.insert("allOf".into(), json!([{"$ref": r}]));
            }
            Value::Object(
                m.into_iter()
                    .map(|(k, v)| (k, wrap_ref_siblings(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(wrap_ref_siblings).collect()),
        other => other,
    }
}

/// Rewrites `#/components/schemas/` refs to `#/definitions/` (Swagger 2.0).
fn to_v2_refs(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(s)) => {
                        let s = s
                            .strip_prefix(V3_PREFIX)
                            .map_or(s.clone(), |n| format!("{V2_PREFIX}{n}"));
                        (k, Value::String(s))
                    }
                    (_, v) => (k, to_v2_refs(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(to_v2_refs).collect()),
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Paths

fn operation_id(verb: &str, k: &KindInfo, version: &str, namespaced: bool, list: bool) -> String {
    let group: String = if k.group.is_empty() {
        "Core".into()
    } else {
        k.group
            .split('.')
            .filter(|p| !matches!(*p, "k8s" | "io"))
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect()
    };
    let mut v = version.chars();
    let version: String = v
        .next()
        .map(|f| f.to_uppercase().chain(v).collect())
        .unwrap_or_default();
    format!(
        "{verb}{group}{version}{}{}{}",
        if namespaced { "Namespaced" } else { "" },
        k.kind,
        if list { "List" } else { "" }
    )
}

fn query_param(name: &str, description: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
        "schema": {"type": kind, "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
            "string",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            "string",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore: drops unknown fields and ignores duplicates. - Warn: drops unknown fields with a warning for each. - Strict: fails the request on any unknown or duplicate field.",
            "string",
        ),
    ];
    if patch {
        p.push(query_param(
            "force",
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
            "boolean",
        ));
    }
    p
}

fn body_of(reference: &str, media: &[&str]) -> Value {
    let content: Map<String, Value> = media
        .iter()
        .map(|m| (m.to_string(), json!({"schema": {"$ref": reference}})))
        .collect();
    json!({"content": content, "required": true})
}

fn ok_of(reference: &str) -> Value {
    json!({"description": "OK", "content": {
        "application/json": {"schema": {"$ref": reference}},
        "application/yaml": {"schema": {"$ref": reference}},
    }})
}

/// The paths of one kind at one version.
fn kind_paths(paths: &mut Map<String, Value>, k: &KindInfo, version: &str, def: &str) {
    let base = if k.group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{}/{version}", k.group)
    };
    let scope = if k.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", k.plural)
    } else {
        format!("{base}/{}", k.plural)
    };
    let obj = format!("{V3_PREFIX}{def}");
    let status = format!("{V3_PREFIX}{}", name_of::<meta::Status>());
    let patch_ref = format!("{V3_PREFIX}{}", name_of::<meta::Patch>());
    let delete_ref = format!("{V3_PREFIX}{}", name_of::<meta::DeleteOptions>());
    let ext = gvk(k, version);
    let ns = k.namespaced;
    let mut path_params = vec![];
    if ns {
        path_params.push(json!({"name": "namespace", "in": "path", "required": true,
            "description": "object name and auth scope, such as for teams and projects",
            "schema": {"type": "string", "uniqueItems": true}}));
    }
    let with_name = {
        let mut p = path_params.clone();
        p.push(json!({"name": "name", "in": "path", "required": true,
            "description": format!("name of the {}", k.kind),
            "schema": {"type": "string", "uniqueItems": true}}));
        p
    };
    let op = |verb: &str, action: &str, list: bool| {
        json!({
            "operationId": operation_id(verb, k, version, ns, list),
            "tags": [kinds::group_version(k.group, version)],
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": ext,
        })
    };
    let patch_media = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ];
    let mut collection = json!({"parameters": path_params});
    let mut get = op("list", "list", false);
    get["responses"] = json!({"200": ok_of(&obj), "401": {"description": "Unauthorized"}});
    collection["get"] = get;
    if k.verbs.contains(&"create") {
        let mut post = op("create", "post", false);
        post["parameters"] = json!(write_params(false));
        post["requestBody"] = body_of(&obj, &["*/*"]);
        post["responses"] = json!({"200": ok_of(&obj), "201": ok_of(&obj), "202": ok_of(&obj)});
        collection["post"] = post;
    }
    if k.verbs.contains(&"deletecollection") {
        let mut del = op("deleteCollection", "deletecollection", false);
        del["requestBody"] = body_of(&delete_ref, &["*/*"]);
        del["parameters"] = json!([query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
            "string"
        )]);
        del["responses"] = json!({"200": ok_of(&status)});
        collection["delete"] = del;
    }
    paths.insert(scope.clone(), collection);

    let mut item = json!({"parameters": with_name});
    let mut get = op("read", "get", false);
    get["responses"] = json!({"200": ok_of(&obj), "401": {"description": "Unauthorized"}});
    item["get"] = get;
    let mut put = op("replace", "put", false);
    put["parameters"] = json!(write_params(false));
    put["requestBody"] = body_of(&obj, &["*/*"]);
    put["responses"] = json!({"200": ok_of(&obj), "201": ok_of(&obj)});
    item["put"] = put;
    let mut patch_op = op("patch", "patch", false);
    patch_op["parameters"] = json!(write_params(true));
    patch_op["requestBody"] = body_of(&patch_ref, &patch_media);
    patch_op["responses"] = json!({"200": ok_of(&obj), "201": ok_of(&obj)});
    item["patch"] = patch_op.clone();
    let mut del = op("delete", "delete", false);
    del["parameters"] = json!([
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
            "string"
        ),
        query_param(
            "propagationPolicy",
            "Whether and how garbage collection will be performed.",
            "string"
        ),
    ]);
    del["requestBody"] = body_of(&delete_ref, &["*/*"]);
    del["responses"] = json!({"200": ok_of(&status), "202": ok_of(&status)});
    item["delete"] = del;
    paths.insert(format!("{scope}/{{name}}"), item);

    if k.status_subresource {
        let mut sub = json!({"parameters": with_name});
        let mut get = op("read", "get", false);
        get["operationId"] = json!(format!(
            "{}Status",
            get["operationId"].as_str().unwrap_or("")
        ));
        get["responses"] = json!({"200": ok_of(&obj)});
        sub["get"] = get;
        let mut p = patch_op;
        p["operationId"] = json!(format!("{}Status", p["operationId"].as_str().unwrap_or("")));
        sub["patch"] = p;
        paths.insert(format!("{scope}/{{name}}/status"), sub);
    }
    if ns {
        let mut all = json!({});
        let mut get = op("list", "list", false);
        get["operationId"] = json!(format!(
            "{}ForAllNamespaces",
            operation_id("list", k, version, false, false)
        ));
        get["responses"] = json!({"200": ok_of(&obj)});
        all["get"] = get;
        paths.insert(format!("{base}/{}", k.plural), all);
    }
}

// ---------------------------------------------------------------------------
// Documents

fn v3_document(kinds: &Kinds, group: &str, version: &str) -> Option<Value> {
    let served =
        (group.is_empty() && version == "v1") || kinds.serves_group_version(group, version);
    if !served {
        return None;
    }
    let (defs, named) = schemas(kinds, Some((group, version)));
    let mut paths = Map::new();
    for (k, v, def) in &named {
        kind_paths(&mut paths, k, v, def);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": defs},
    }))
}

fn v2_document(kinds: &Kinds) -> Value {
    let (defs, named) = schemas(kinds, None);
    let mut paths = Map::new();
    for (k, v, def) in &named {
        kind_paths(&mut paths, k, v, def);
    }
    // Swagger 2.0 has no requestBody and puts the schema of a parameter
    // on the parameter itself.
    let paths: Map<String, Value> = paths
        .into_iter()
        .map(|(p, mut item)| {
            if let Some(ops) = item.as_object_mut() {
                for (verb, op) in ops.iter_mut() {
                    if verb == "parameters" {
                        if let Some(ps) = op.as_array_mut() {
                            ps.iter_mut().for_each(v2_param);
                        }
                        continue;
                    }
                    v2_operation(op);
                }
            }
            (p, to_v2_refs(item))
        })
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "definitions": to_v2_refs(Value::Object(defs)),
    })
}

fn v2_param(p: &mut Value) {
    if let Some(Value::Object(s)) = p.as_object_mut().and_then(|o| o.remove("schema")) {
        for (k, v) in s {
            p[k] = v;
        }
    }
}

fn v2_operation(op: &mut Value) {
    let Some(o) = op.as_object_mut() else {
        return;
    };
    let mut params: Vec<Value> = o
        .remove("parameters")
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default();
    params.iter_mut().for_each(v2_param);
    if let Some(body) = o.remove("requestBody") {
        let schema = body["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .map(|m| m["schema"].clone())
            .unwrap_or(Value::Null);
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        let consumes: Vec<&String> = body["content"]
            .as_object()
            .map(|c| c.keys().collect())
            .unwrap_or_default();
        o.insert("consumes".into(), json!(consumes));
    }
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Array(params));
    }
    o.insert(
        "produces".into(),
        json!(["application/json", "application/yaml"]),
    );
    if let Some(Value::Object(responses)) = o.get_mut("responses") {
        for r in responses.values_mut() {
            let schema = r["content"]["application/json"]["schema"].clone();
            if let Some(ro) = r.as_object_mut() {
                ro.remove("content");
                if !schema.is_null() {
                    ro.insert("schema".into(), schema);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::CrdGroups;

    fn all_kinds() -> Kinds {
        Kinds::new(CrdGroups {
            flagger: true,
            ..CrdGroups::default()
        })
    }

    fn doc(group: &str, version: &str) -> Value {
        v3_document(&all_kinds(), group, version).unwrap()
    }

    #[test]
    fn the_index_lists_every_served_group_version() {
        let cache = Cache::default();
        let index: Value = serde_json::from_slice(&cache.v3_index(&all_kinds())).unwrap();
        let paths = index["paths"].as_object().unwrap();
        for p in [
            "api/v1",
            "apis/apps/v1",
            "apis/flagger.app/v1beta1",
            "apis/split.smi-spec.io/v1alpha2",
        ] {
            let url = paths[p]["serverRelativeURL"].as_str().unwrap();
            assert!(url.starts_with(&format!("/openapi/v3/{p}?hash=")), "{url}");
        }
        assert!(!paths.contains_key("apis/batch/v1"));
    }

    #[test]
    fn deployments_have_real_descriptions_and_their_group_version_kind() {
        let d = doc("apps", "v1");
        let s = &d["components"]["schemas"];
        let deploy = &s["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deploy["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert!(
            deploy["description"]
                .as_str()
                .unwrap()
                .starts_with("Deployment enables declarative updates")
        );
        // A ref with a description is wrapped in allOf.
        let spec = &deploy["properties"]["spec"];
        assert_eq!(
            spec["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}])
        );
        assert!(spec.get("$ref").is_none());
        assert!(s["io.k8s.api.apps.v1.DeploymentStrategy"]["description"].is_string());
        // Every ref resolves inside the document.
        let text = serde_json::to_string(&d).unwrap();
        for r in text.split("\"$ref\":\"").skip(1) {
            let name = r.split('"').next().unwrap();
            let name = name.strip_prefix(V3_PREFIX).expect(name);
            assert!(s.get(name).is_some(), "dangling ref {name}");
        }
    }

    #[test]
    fn merge_keys_come_from_the_patch_table() {
        let d = doc("apps", "v1");
        let s = &d["components"]["schemas"];
        let containers = &s["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let ports = &s["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        let args = &s["io.k8s.api.core.v1.Container"]["properties"]["args"];
        assert!(args.get("x-kubernetes-patch-strategy").is_none());
    }

    #[test]
    fn patch_operations_declare_field_validation() {
        let d = doc("apps", "v1");
        let item = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"fieldValidation"), "{names:?}");
        assert!(names.contains(&"dryRun"), "{names:?}");
        assert!(
            d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]["patch"]
                .is_object()
        );
    }

    #[test]
    fn custom_resources_take_their_crd_schema() {
        let d = doc("flagger.app", "v1beta1");
        let canary = &d["components"]["schemas"]["app.flagger.v1beta1.Canary"];
        assert_eq!(
            canary["x-kubernetes-group-version-kind"],
            json!([{"group": "flagger.app", "kind": "Canary", "version": "v1beta1"}])
        );
        assert!(canary["properties"]["spec"]["properties"]["analysis"]["description"].is_string());
        assert_eq!(
            canary["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(v3_document(&all_kinds(), "flagger.app", "v9").is_none());
    }

    #[test]
    fn the_v2_document_uses_definitions() {
        let d = v2_document(&all_kinds());
        assert_eq!(d["swagger"], "2.0");
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("#/components/schemas/"));
        assert!(d["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
        let patch = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
        );
    }
}
