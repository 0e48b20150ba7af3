//! The name resolver inside a `reqwest_middleware` stack, after another middleware.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Behaviour, TestServer, text};
use http::Extensions;
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use sdkit_core::{FixedInstancer, Instance};
use sdkit_http::{Client, Config, Error, Served, UnknownNames};

/// Another middleware, as users already have: stamps a header and counts requests.
struct Stamp {
    seen: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl Middleware for Stamp {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        request
            .headers_mut()
            .insert("x-test", http::HeaderValue::from_static("stamped"));
        next.run(request, extensions).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_names_after_another_middleware() {
    let a = TestServer::start("a", Behaviour::Ok).await;
    let b = TestServer::start("b", Behaviour::Ok).await;
    let outside = TestServer::start("outside", Behaviour::Ok).await;
    let seen = Arc::new(AtomicU64::new(0));
    let sdkit = Client::new(Config::default()).unwrap();
    let instances = vec![
        Instance::from_addr(a.addr.to_string()),
        Instance::from_addr(b.addr.to_string()),
    ];
    sdkit
        .add_instancer("web", "static://", FixedInstancer::new(instances))
        .unwrap();
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(Stamp { seen: seen.clone() })
        .with(sdkit.middleware())
        .build();
    for _ in 0..4 {
        let response = http.get("http://web/x").send().await.expect("get");
        assert_eq!(response.headers()["x-test-echo"], "stamped");
        assert!(response.extensions().get::<Served>().is_some());
    }
    assert_eq!(seen.load(Ordering::SeqCst), 4);
    assert_eq!((a.requests(), b.requests()), (2, 2));

    // An unknown name is a typed error inside the middleware error, not a DNS lookup.
    let error = http.get("http://billing/x").send().await.unwrap_err();
    let reqwest_middleware::Error::Middleware(inner) = &error else {
        panic!("{error:?}")
    };
    assert!(
        matches!(inner.downcast_ref::<Error>(), Some(Error::UnknownService { name, .. }) if name == "billing"),
        "{inner:?}"
    );

    // With passthrough, other hosts go on down the stack unchanged.
    let sdkit =
        Client::new(Config::default().with_unknown_names(UnknownNames::Passthrough)).unwrap();
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(Stamp { seen: seen.clone() })
        .with(sdkit.middleware())
        .build();
    let response = http
        .get(format!("http://{}/", outside.addr))
        .send()
        .await
        .expect("passthrough");
    assert!(response.extensions().get::<Served>().is_none());
    assert_eq!(text(response).await, "hello from outside");
    assert_eq!(seen.load(Ordering::SeqCst), 6);
}
