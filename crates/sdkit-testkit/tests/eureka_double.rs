//! The Eureka API double on its own, through plain HTTP (not through sdkit-eureka), so its
//! documented semantics are checked independently of the client that is tested against it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sdkit_testkit::EurekaDouble;
use serde_json::Value;

async fn call(
    double: &EurekaDouble,
    method: Method,
    path: &str,
    body: Option<&str>,
    json: bool,
) -> (u16, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}/eureka{path}", double.addr()));
    if json {
        req = req
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

const REGISTRATION: &str = r#"{"instance":{"instanceId":"i-1","hostName":"web-host","app":"WEB",
  "ipAddr":"10.0.0.1","status":"UP","port":{"$":8080,"@enabled":"true"},
  "dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
  "leaseInfo":{"durationInSecs":1},"metadata":{"k":"v"}}}"#;

#[tokio::test]
async fn register_query_heartbeat_delete_have_eurekas_codes_and_shapes() {
    let double = EurekaDouble::start().await.unwrap();
    assert_eq!(
        call(&double, Method::GET, "/apps/WEB", None, true).await.0,
        404
    );
    let (status, _) = call(&double, Method::POST, "/apps/web", Some(REGISTRATION), true).await;
    assert_eq!(status, 204);

    let (status, body) = call(&double, Method::GET, "/apps/WEB", None, true).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    let instance = &doc["application"]["instance"][0];
    assert_eq!(doc["application"]["name"], "WEB");
    assert_eq!(instance["instanceId"], "i-1");
    assert_eq!(instance["status"], "UP");
    assert_eq!(instance["port"]["$"], 8080);
    assert_eq!(instance["port"]["@enabled"], "true");
    assert_eq!(instance["securePort"]["@enabled"], "false");
    assert_eq!(instance["leaseInfo"]["durationInSecs"], 1);
    assert_eq!(instance["metadata"]["k"], "v");
    // Without Accept: application/json Eureka answers XML.
    let (_, xml) = call(&double, Method::GET, "/apps/WEB", None, false).await;
    assert!(xml.starts_with('<'), "{xml}");

    assert_eq!(
        call(&double, Method::PUT, "/apps/WEB/i-1", None, true)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&double, Method::PUT, "/apps/WEB/nope", None, true)
            .await
            .0,
        404
    );
    assert_eq!(double.heartbeats("WEB", "i-1"), 1);
    assert_eq!(
        call(
            &double,
            Method::PUT,
            "/apps/WEB/i-1/status?value=OUT_OF_SERVICE",
            None,
            true
        )
        .await
        .0,
        200
    );
    let (_, one) = call(&double, Method::GET, "/apps/WEB/i-1", None, true).await;
    assert_eq!(
        serde_json::from_str::<Value>(&one).unwrap()["instance"]["status"],
        "OUT_OF_SERVICE"
    );

    let (_, delta) = call(&double, Method::GET, "/apps/delta", None, true).await;
    let delta: Value = serde_json::from_str(&delta).unwrap();
    let actions: Vec<&str> = delta["applications"]["application"][0]["instance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["actionType"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ADDED", "MODIFIED"]);

    assert_eq!(
        call(&double, Method::DELETE, "/apps/WEB/i-1", None, true)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&double, Method::DELETE, "/apps/WEB/i-1", None, true)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&double, Method::GET, "/apps/WEB", None, true).await.0,
        404
    );
}

#[tokio::test]
async fn bad_registrations_are_refused() {
    let double = EurekaDouble::start().await.unwrap();
    let no_dc = REGISTRATION.replace("\"dataCenterInfo\"", "\"x\"");
    assert_eq!(
        call(&double, Method::POST, "/apps/WEB", Some(&no_dc), true)
            .await
            .0,
        400
    );
    assert_eq!(
        call(
            &double,
            Method::POST,
            "/apps/OTHER",
            Some(REGISTRATION),
            true
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(&double, Method::POST, "/apps/WEB", Some("{oops"), true)
            .await
            .0,
        400
    );
    assert_eq!(
        call(
            &double,
            Method::POST,
            "/apps/WEB",
            Some(REGISTRATION),
            false
        )
        .await
        .0,
        415
    );
    assert_eq!(double.registrations(), 0);
}

#[tokio::test]
async fn leases_expire_and_faults_are_injected() {
    let double = EurekaDouble::start().await.unwrap();
    assert_eq!(
        call(&double, Method::POST, "/apps/WEB", Some(REGISTRATION), true)
            .await
            .0,
        204
    );
    // The registration announced a 1 s lease and nobody renews it.
    assert!(
        sdkit_testkit::wait_until_async(Duration::from_secs(10), || double
            .instances("WEB")
            .is_empty())
        .await,
        "lease never expired"
    );
    double.fail_next(2, 503);
    assert_eq!(call(&double, Method::GET, "/apps", None, true).await.0, 503);
    assert_eq!(call(&double, Method::GET, "/apps", None, true).await.0, 503);
    assert_eq!(call(&double, Method::GET, "/apps", None, true).await.0, 200);
    double.set_malformed(true);
    let (_, body) = call(&double, Method::GET, "/apps", None, true).await;
    assert!(serde_json::from_str::<Value>(&body).is_err());
    let secured = EurekaDouble::start()
        .await
        .unwrap()
        .with_basic_auth("u", "p");
    assert_eq!(
        call(&secured, Method::GET, "/apps", None, true).await.0,
        401
    );
}
