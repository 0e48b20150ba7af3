//! The DNS SRV instancer against a scripted UDP DNS server, for answers dnsmasq cannot be made to
//! give: glue for only some targets with no TCP listener behind it, and garbage.
//!
//! The server is real UDP on loopback speaking DNS through `hickory-proto`'s encoder; only its
//! answers are scripted.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, OpCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use sdkit_core::Backoff;
use sdkit_core::Instancer as _;
mod common;

use common::Setup;
use sdkit_testkit::wait::{EVENTUALLY, wait_for};

const SRV_NAME: &str = "_http._tcp.fake.test.";

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test name")
}

/// Answers SRV with two targets (glue for `a` only), A for `b`, nothing else; or garbage while
/// `garbage` is set. Records every query.
struct Scripted {
    addr: SocketAddr,
    garbage: Arc<AtomicBool>,
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(query: &Message) -> Option<Vec<u8>> {
    let q = query.queries.first()?;
    let mut response = Message::response(query.metadata.id, OpCode::Query);
    response.add_query(q.clone());
    let qname = q.name().to_lowercase();
    match q.query_type() {
        RecordType::SRV if qname == name(SRV_NAME) => {
            response.add_answer(Record::from_rdata(
                qname.clone(),
                30,
                RData::SRV(SRV::new(0, 1, 8080, name("a.fake.test."))),
            ));
            response.add_answer(Record::from_rdata(
                qname,
                30,
                RData::SRV(SRV::new(0, 1, 8081, name("b.fake.test."))),
            ));
            response.add_additional(Record::from_rdata(
                name("a.fake.test."),
                30,
                RData::A(A(Ipv4Addr::new(127, 0, 0, 2))),
            ));
        }
        RecordType::A if qname == name("b.fake.test.") => {
            response.add_answer(Record::from_rdata(
                qname,
                30,
                RData::A(A(Ipv4Addr::new(127, 0, 0, 3))),
            ));
        }
        _ => {} // NOERROR, no answer: NODATA
    }
    response.to_vec().ok()
}

async fn scripted() -> Scripted {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind udp");
    let addr = socket.local_addr().expect("addr");
    let garbage = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(Mutex::new(Vec::new()));
    let (g, q) = (Arc::clone(&garbage), Arc::clone(&queries));
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if let Some(first) = query.queries.first() {
                q.lock()
                    .expect("lock")
                    .push((first.name().to_lowercase().to_ascii(), first.query_type()));
            }
            let reply = if g.load(Ordering::SeqCst) {
                // The right ID, then nonsense: header counts promise records that are not there.
                let mut junk = query.metadata.id.to_be_bytes().to_vec();
                junk.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 9, 0, 0, 0, 0, 0xff, 0xfe, 0x03]);
                Some(junk)
            } else {
                answer(&query)
            };
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    Scripted {
        addr,
        garbage,
        queries,
        task,
    }
}

fn config(server: SocketAddr) -> Setup {
    Setup::new(SRV_NAME)
        .with_nameserver(server)
        .with_timeout(Duration::from_millis(300))
        .with_attempts(1)
        .with_refresh_bounds(Duration::from_millis(200), Duration::from_millis(300))
        .with_backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(300),
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_glue_without_tcp_falls_back_to_lookups() {
    // Nothing listens on TCP at the server's port: the TCP retry fails, and the target without
    // glue is looked up over UDP instead.
    let server = scripted().await;
    let instancer = config(server.addr).instancer().expect("instancer");
    let mut sub = instancer.subscribe();
    let snapshot = wait_for(&mut sub, EVENTUALLY, "two instances", |s| s.len() == 2).await;
    assert!(snapshot.error().is_none(), "{:?}", snapshot.error());
    let addrs: Vec<_> = snapshot.instances().iter().map(|i| i.addr()).collect();
    assert_eq!(addrs, ["127.0.0.2:8080", "127.0.0.3:8081"]);
    let queries = server.queries.lock().expect("lock").clone();
    assert!(
        queries.contains(&("b.fake.test.".into(), RecordType::A)),
        "{queries:?}"
    );
    assert!(
        !queries.contains(&("a.fake.test.".into(), RecordType::A)),
        "a has glue: {queries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_answers_are_an_error_event_and_the_last_set_is_kept() {
    let server = scripted().await;
    let instancer = config(server.addr).instancer().expect("instancer");
    let mut sub = instancer.subscribe();
    let good = wait_for(&mut sub, EVENTUALLY, "two instances", |s| s.len() == 2).await;

    server.garbage.store(true, Ordering::SeqCst);
    let failing = wait_for(&mut sub, EVENTUALLY, "an error event", |s| {
        s.error().is_some()
    })
    .await;
    assert_eq!(failing.instances(), good.instances(), "last good set kept");
    let message = failing.error().map(ToString::to_string).unwrap_or_default();
    assert!(message.starts_with("dnssrv: SRV lookup of"), "{message}");

    server.garbage.store(false, Ordering::SeqCst);
    let recovered = wait_for(&mut sub, EVENTUALLY, "recovery", |s| s.error().is_none()).await;
    assert_eq!(recovered.instances(), good.instances());
}
