//! The Consul API double on its own, through plain HTTP (not through sdkit-consul), so its
//! documented semantics are checked independently of the client that is tested against it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sdkit_testkit::consul::{ConsulDouble, Fault, ServiceSpec};
use serde_json::Value;

struct Answer {
    status: u16,
    index: Option<u64>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn call(method: Method, url: String, body: Option<&str>, token: Option<&str>) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("X-Consul-Token", t);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let index = resp
        .headers()
        .get("x-consul-index")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        index,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(consul: &ConsulDouble, path: &str) -> Answer {
    call(Method::GET, format!("{}{path}", consul.url()), None, None).await
}

#[tokio::test]
async fn health_entries_have_consuls_shape() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "web-1").port(8080).weights(3, 1));
    let a = get(&consul, "/v1/health/service/web").await;
    assert_eq!(a.status, 200);
    assert!(a.index.unwrap() > 0);
    let v = a.json();
    let e = &v[0];
    assert_eq!(e["Node"]["Node"], "node-1");
    assert_eq!(e["Node"]["Address"], "127.0.0.1");
    assert_eq!(e["Node"]["Datacenter"], "dc1");
    assert_eq!(e["Service"]["ID"], "web-1");
    assert_eq!(e["Service"]["Service"], "web");
    assert_eq!(e["Service"]["Port"], 8080);
    assert_eq!(e["Service"]["Address"], "");
    assert_eq!(
        e["Service"]["Tags"],
        Value::Null,
        "Go encodes a nil slice as null"
    );
    assert_eq!(e["Service"]["Weights"]["Passing"], 3);
    assert_eq!(e["Checks"][0]["CheckID"], "serfHealth");
    assert_eq!(e["Checks"][1]["CheckID"], "service:web-1");
    assert_eq!(e["Checks"][1]["ServiceID"], "web-1");
    // Unknown service: an empty list and an index, not 404.
    let a = get(&consul, "/v1/health/service/none").await;
    assert_eq!((a.status, a.body.as_str()), (200, "[]"));
    assert!(a.index.unwrap() > 0);
}

#[tokio::test]
async fn blocking_query_waits_for_a_change_or_the_wait() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "a"));
    let index = get(&consul, "/v1/health/service/web").await.index.unwrap();

    // No change: the query holds for `wait` (plus at most wait/16) and returns the same index.
    let t = Instant::now();
    let a = get(
        &consul,
        &format!("/v1/health/service/web?index={index}&wait=300ms"),
    )
    .await;
    let held = t.elapsed();
    assert!(held >= Duration::from_millis(300), "{held:?}");
    assert!(held < Duration::from_secs(3), "{held:?}");
    assert_eq!(a.index, Some(index));

    // A change releases it early with a higher index.
    let url = format!(
        "{}/v1/health/service/web?index={index}&wait=30s",
        consul.url()
    );
    let pending = tokio::spawn(call(Method::GET, url, None, None));
    assert!(
        sdkit_testkit::wait_until_async(Duration::from_secs(10), || consul
            .request_count("/v1/health/service/")
            >= 3)
        .await
    );
    let t = Instant::now();
    consul.insert_service(ServiceSpec::new("web", "b"));
    let a = pending.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(a.index.unwrap() > index);
    assert_eq!(a.json().as_array().unwrap().len(), 2);

    // A bad wait is rejected like Consul does.
    assert_eq!(
        get(&consul, "/v1/health/service/web?index=1&wait=soon")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn passing_tag_and_filter_select_entries() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.insert_service(ServiceSpec::new("web", "ok").tag("v1").tag("blue"));
    consul.insert_service(ServiceSpec::new("web", "sick").tag("v1").status("critical"));
    let ids = |a: &Answer| -> Vec<String> {
        a.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&get(&consul, "/v1/health/service/web").await),
        ["ok", "sick"]
    );
    assert_eq!(
        ids(&get(&consul, "/v1/health/service/web?passing=true").await),
        ["ok"]
    );
    assert_eq!(
        ids(&get(&consul, "/v1/health/service/web?tag=v1&tag=blue").await),
        ["ok"]
    );
    let f = "filter=Service.Tags%20contains%20%22blue%22";
    assert_eq!(
        ids(&get(&consul, &format!("/v1/health/service/web?{f}")).await),
        ["ok"]
    );
    let bad = get(
        &consul,
        "/v1/health/service/web?filter=Service.Tags%20%3D%3D",
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn agent_register_ttl_expiry_and_critical_deregistration() {
    let consul = ConsulDouble::start().await.unwrap();
    let body = r#"{"Name": "web", "ID": "web-1", "Port": 80,
        "Check": {"CheckID": "service:web-1", "TTL": "200ms", "Status": "passing",
                  "DeregisterCriticalServiceAfter": "300ms"}}"#;
    let put = |path: &str, body: Option<&'static str>| {
        call(Method::PUT, format!("{}{path}", consul.url()), body, None)
    };
    assert_eq!(
        put(
            "/v1/agent/service/register?replace-existing-checks=true",
            Some(body)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        consul.check_status("service:web-1").as_deref(),
        Some("passing")
    );
    assert_eq!(
        put("/v1/agent/check/pass/service:web-1", None).await.status,
        200
    );
    // No more heartbeats: the TTL lapses (critical), then the service is reaped.
    assert!(
        sdkit_testkit::wait_until_async(Duration::from_secs(10), || consul
            .check_status("service:web-1")
            .as_deref()
            == Some("critical"))
        .await
    );
    assert!(
        sdkit_testkit::wait_until_async(Duration::from_secs(10), || consul
            .service_ids("web")
            .is_empty())
        .await
    );
    assert_eq!(
        put("/v1/agent/check/pass/service:web-1", None).await.status,
        404
    );
    assert_eq!(
        put("/v1/agent/service/deregister/web-1", None).await.status,
        404
    );
    // Malformed registrations are refused.
    assert_eq!(
        put("/v1/agent/service/register", Some("{")).await.status,
        400
    );
    assert_eq!(
        put("/v1/agent/service/register", Some(r#"{"ID": "x"}"#))
            .await
            .status,
        400
    );
    assert_eq!(
        put(
            "/v1/agent/service/register",
            Some(r#"{"Name": "w", "Check": {"TTL": "nope"}}"#)
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn acl_and_faults() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.enable_acl("tok");
    let url = format!("{}/v1/health/service/web", consul.url());
    assert_eq!(call(Method::GET, url.clone(), None, None).await.status, 403);
    assert_eq!(
        call(Method::GET, url.clone(), None, Some("bad"))
            .await
            .status,
        403
    );
    assert_eq!(
        call(Method::GET, url.clone(), None, Some("tok"))
            .await
            .status,
        200
    );
    assert_eq!(
        consul
            .last_request("/v1/health/")
            .unwrap()
            .header("X-Consul-Token"),
        Some("tok")
    );

    consul.inject_times("/v1/health/", Fault::Status(429), 1);
    assert_eq!(
        call(Method::GET, url.clone(), None, Some("tok"))
            .await
            .status,
        429
    );
    assert_eq!(
        call(Method::GET, url.clone(), None, Some("tok"))
            .await
            .status,
        200
    );
    consul.inject_times("/v1/health/", Fault::MalformedJson, 1);
    let a = call(Method::GET, url.clone(), None, Some("tok")).await;
    assert!(serde_json::from_str::<Value>(&a.body).is_err());
    consul.inject_times("/v1/health/", Fault::ZeroIndex, 1);
    assert_eq!(
        call(Method::GET, url.clone(), None, Some("tok"))
            .await
            .index,
        Some(0)
    );
    consul.inject_times("/v1/health/", Fault::Hang, 1);
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        call(Method::GET, url.clone(), None, Some("tok")),
    )
    .await;
    assert!(hung.is_err(), "a hanging answer never comes");

    let before = consul.index();
    consul.rewind_index(3);
    assert!(consul.index() < before);
}
