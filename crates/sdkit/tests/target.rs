//! Parsing registry URLs: every scheme's form, clear errors, secrets redacted.

use sdkit::Target;

fn err(url: &str) -> String {
    url.parse::<Target>().unwrap_err().to_string()
}

#[test]
fn every_scheme_of_the_design_parses() {
    for (url, scheme, registers) in [
        (
            "discovery://127.0.0.1:7171/demo.service?env=dev&zone=sh001&scheme=grpc",
            "discovery",
            true,
        ),
        (
            "consul://127.0.0.1:8500/web?tag=v1&passing=true&dc=dc1",
            "consul",
            true,
        ),
        (
            "etcd://127.0.0.1:2379,127.0.0.1:22379/services/web/",
            "etcd",
            true,
        ),
        (
            "dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:5353",
            "dnssrv",
            false,
        ),
        ("static://10.0.0.1:8080,10.0.0.2:8080", "static", false),
    ] {
        let target: Target = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(target.scheme(), scheme);
        assert_eq!(target.can_register(), registers);
        assert_eq!(target.to_string(), url, "no secret: displayed as written");
    }
}

#[test]
fn errors_name_the_part_and_show_the_form() {
    let e = err("10.0.0.1:8080");
    assert!(e.contains("scheme"), "{e}");
    let e = err("zookeeper://h:1/x");
    assert!(e.contains("`zookeeper` is not a known registry"), "{e}");
    assert!(e.contains("expected discovery://"), "{e}");
    let e = err("consul://127.0.0.1:8500/web?pasing=true");
    assert!(e.contains("unknown option `pasing`"), "{e}");
    let e = err("consul://127.0.0.1:8500/");
    assert!(
        e.contains("path") && e.contains("expected consul://"),
        "{e}"
    );
    let e = err("consul://127.0.0.1:8500/web?passing=maybe");
    assert!(e.contains("passing") && e.contains("not a boolean"), "{e}");
    let e = err("consul://127.0.0.1:8500/web?wait=soon");
    assert!(e.contains("wait"), "{e}");
    let e = err("etcd://127.0.0.1:2379/");
    assert!(e.contains("missing key prefix"), "{e}");
    let e = err("etcd://root@127.0.0.1:2379/services/web");
    assert!(e.contains("password"), "{e}");
    let e = err("static://10.0.0.1");
    assert!(e.contains("not host:port"), "{e}");
    let e = err("static://a:1,,b:2");
    assert!(e.contains("empty host"), "{e}");
    let e = err("discovery://127.0.0.1:7171/a/b?env=dev");
    assert!(e.contains("one appid"), "{e}");
    let e = err("discovery://127.0.0.1:7171/a?env=dev&scheme=grpc://");
    assert!(e.contains("scheme"), "{e}");
    let e = err("dnssrv://_a._tcp.x?priority=worst");
    assert!(e.contains("`worst` is not one of best, all"), "{e}");
    let e = err("dnssrv://_a._tcp.x?nameserver=nowhere");
    assert!(e.contains("nameserver"), "{e}");
    let e = err("dnssrv://_a._tcp.x?min_refresh=0s");
    assert!(e.contains("query"), "{e}");
}

#[test]
fn secrets_are_redacted_in_display_and_debug() {
    for (url, secret) in [
        (
            "consul://127.0.0.1:8500/web?token=s3cr3t-token",
            "s3cr3t-token",
        ),
        ("consul://s3cr3t-token@127.0.0.1:8500/web", "s3cr3t-token"),
        ("etcd://root:hunter2@127.0.0.1:2379/services/web", "hunter2"),
        (
            "etcd://127.0.0.1:2379/services/web?user=root&password=hunter2",
            "hunter2",
        ),
    ] {
        let target: Target = url.parse().unwrap();
        let shown = format!("{target} {target:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    // An error about a URL with a secret does not repeat the secret either.
    let e = err("etcd://root:hunter2@127.0.0.1:2379/services/web?bogus=1");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn dnssrv_options_reach_the_backend() {
    // Every documented key is accepted (values are checked by the backend's own tests).
    let url = "dnssrv://_a._tcp.x?nameserver=127.0.0.1:5353&nameserver=[::1]&nameserver=10.0.0.1\
               &transport=udp&min_refresh=2s&max_refresh=1m&timeout=300ms&attempts=1\
               &retry_initial=50ms&retry_max=5s&priority=all&targets=keep_hostnames&family=ipv6\
               &max_targets=7";
    assert_eq!(url.parse::<Target>().unwrap().scheme(), "dnssrv");
}

#[tokio::test]
async fn static_targets_publish_their_list_and_cannot_register() {
    let target: Target = "static://10.0.0.2:80,[::1]:80".parse().unwrap();
    let instancer = target.instancer().unwrap();
    let snapshot = instancer
        .subscribe()
        .ready(std::time::Duration::from_secs(1))
        .await
        .unwrap();
    let addrs: Vec<&str> = snapshot.instances().iter().map(|i| i.addr()).collect();
    assert_eq!(addrs, ["10.0.0.2:80", "[::1]:80"]);
    let err = target
        .registrar(sdkit::Instance::from_addr("10.0.0.9:80"))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "static:// targets cannot register instances"
    );
}
