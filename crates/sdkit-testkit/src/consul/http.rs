//! The double's HTTP server: accepting connections, routing requests, answer helpers.

use super::*;

/// Sets the status of check `check_id` of `node`; `false` when unknown.
pub(crate) fn set_status(
    state: &mut State,
    node: &str,
    check_id: &str,
    status: &str,
    output: &str,
) -> bool {
    let check_key = key(node, check_id);
    let Some(check) = state.checks.get_mut(&check_key) else {
        return false;
    };
    let now = Instant::now();
    if let CheckKind::Ttl(ttl) = check.kind {
        check.expires = Some(now + ttl);
    }
    check.output = output.to_string();
    if check.status == status {
        return true;
    }
    check.status = status.to_string();
    check.critical_since = (status == "critical").then_some(now);
    let service = key(node, &check.service_id);
    if let Some(name) = state.services.get(&service).map(|s| s.name.clone()) {
        let index = state.bump(&name);
        if let Some(check) = state.checks.get_mut(&check_key) {
            check.modify_index = index;
        }
    }
    true
}

pub(crate) async fn reap_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        let before = shared.lock().index;
        let after = {
            let mut state = shared.lock();
            state.reap(Instant::now());
            state.index
        };
        if after != before {
            shared.notify();
        }
    }
}

pub(crate) async fn serve_io<I>(io: I, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    struct Open(Arc<Shared>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0
                .connections
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    shared
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _open = Open(Arc::clone(&shared));
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    match acceptor {
                        None => serve_io(stream, shared).await,
                        Some(acceptor) => {
                            // A failed handshake (no or bad client certificate) closes it.
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve_io(tls, shared).await;
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

pub(crate) type Resp = Response<Full<Bytes>>;

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub(crate) fn json_resp(value: &Value, index: Option<u64>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(index) = index {
        insert_index(&mut resp, index);
    }
    resp
}

pub(crate) fn insert_index(resp: &mut Resp, index: u64) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(&index.to_string()) {
        resp.headers_mut().insert("x-consul-index", v);
    }
    resp.headers_mut().insert(
        "x-consul-knownleader",
        hyper::header::HeaderValue::from_static("true"),
    );
    resp.headers_mut().insert(
        "x-consul-lastcontact",
        hyper::header::HeaderValue::from_static("0"),
    );
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    // Go's net/http hands Consul the decoded path.
    let path = percent_decode(req.uri().path());
    let query = parse_query(req.uri().query());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers,
        at: Instant::now(),
    };
    let token = recorded
        .header("x-consul-token")
        .map(str::to_string)
        .or_else(|| recorded.param("token").map(str::to_string));

    let fault = {
        let mut state = shared.lock();
        state.requests.push(recorded);
        if let Some(required) = &state.acl_token
            && token.as_deref() != Some(required.as_str())
        {
            return text(StatusCode::FORBIDDEN, "ACL not found");
        }
        state.take_fault(&path)
    };
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match code {
                429 => "rate limit exceeded",
                503 => "No cluster leader",
                _ => "Unexpected response code: injected fault",
            };
            return text(status, body);
        }
        Some(Fault::Hang) => return std::future::pending::<Resp>().await,
        _ => {}
    }
    let params = Params(query);

    if let Some(name) = path.strip_prefix("/v1/health/service/") {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        return health_service(&shared, name, &params, fault).await;
    }
    if path == "/v1/agent/service/register" {
        if method != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Request decode failed: {e}"),
                );
            }
        };
        let resp = register(&shared, &body, params.has("replace-existing-checks"));
        shared.notify();
        return resp;
    }
    if let Some(id) = path.strip_prefix("/v1/agent/service/deregister/") {
        if method != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let removed = shared.lock().remove_service(LOCAL_NODE, id);
        shared.notify();
        return if removed {
            text(StatusCode::OK, "")
        } else {
            text(
                StatusCode::NOT_FOUND,
                format!(
                    "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
                ),
            )
        };
    }
    if let Some(id) = path.strip_prefix("/v1/agent/service/") {
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let state = shared.lock();
        return match state.services.get(&key(LOCAL_NODE, id)) {
            Some(s) => json_resp(&agent_service_json(s), Some(s.modify_index)),
            None => text(StatusCode::NOT_FOUND, format!("unknown service ID: {id}")),
        };
    }
    for (prefix, status) in [
        ("/v1/agent/check/pass/", "passing"),
        ("/v1/agent/check/warn/", "warning"),
        ("/v1/agent/check/fail/", "critical"),
    ] {
        if let Some(id) = path.strip_prefix(prefix) {
            if method != Method::PUT {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            let resp = {
                let mut state = shared.lock();
                match state.checks.get(&key(LOCAL_NODE, id)).map(|c| c.kind) {
                    None => text(
                        StatusCode::NOT_FOUND,
                        format!(
                            "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
                        ),
                    ),
                    Some(CheckKind::Http | CheckKind::Tcp) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("CheckID {id:?} does not have associated TTL"),
                    ),
                    Some(CheckKind::Ttl(_)) => {
                        let note = params.get("note").unwrap_or("").to_string();
                        set_status(&mut state, LOCAL_NODE, id, status, &note);
                        text(StatusCode::OK, "")
                    }
                }
            };
            shared.notify();
            return resp;
        }
    }
    if path == "/v1/status/leader" {
        return json_resp(&json!("127.0.0.1:8300"), None);
    }
    text(StatusCode::NOT_FOUND, "404 page not found")
}

pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "false")
    }
}
