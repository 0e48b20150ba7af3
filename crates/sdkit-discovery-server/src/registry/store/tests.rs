//! Unit tests of the store's rules.

use super::*;
use sdkit_discovery_proto::{FieldLimits, Form};

fn reg(host: &str, extra: &str) -> RegisterArgs {
    let q = format!(
        "zone=sh0001&env=pre&appid=main.arch.test&hostname={host}&status=1&addrs=grpc://127.0.0.1:8080{extra}"
    );
    RegisterArgs::from_form(
        &Form::parse(q.as_bytes(), 64).unwrap(),
        &FieldLimits::default(),
    )
    .unwrap()
}

fn key(host: &str) -> InstanceKey {
    InstanceKey {
        env: "pre".into(),
        appid: "main.arch.test".into(),
        zone: "sh0001".into(),
        hostname: host.into(),
    }
}

#[test]
fn cursor_strictly_increases_and_dirty_wins() {
    let mut s = Store::new("dev".into());
    let l = Limits::default();
    let stamp = |now, dirty| Stamp {
        now,
        dirty,
        latest: now,
    };
    assert!(
        s.register(&reg("h", ""), stamp(50, 100), &l)
            .unwrap()
            .is_none()
    );
    let c1 = s.app("pre", "main.arch.test").unwrap().latest;
    assert!(
        s.register(&reg("h", "&version=old"), stamp(40, 90), &l)
            .unwrap()
            .is_some()
    );
    let c2 = s.app("pre", "main.arch.test").unwrap().latest;
    assert!(c2 > c1);
    let info = s
        .fetch("pre", "main.arch.test", "", StatusFilter::ALL)
        .unwrap();
    assert_eq!(
        info.instances["sh0001"][0].version, "",
        "newer dirty record kept"
    );
}

#[test]
fn remove_deletes_empty_app() {
    let mut s = Store::new("dev".into());
    s.register(&reg("h", ""), Stamp::at(1), &Limits::default())
        .unwrap();
    assert!(s.remove(&key("h"), 0));
    assert!(!s.remove(&key("h"), 0));
    assert!(s.app("pre", "main.arch.test").is_none());
    assert_eq!(s.sizes(), (0, 0));
}

#[test]
fn caps_are_enforced() {
    let mut s = Store::new("dev".into());
    let l = Limits {
        max_instances_per_app: 1,
        ..Limits::default()
    };
    s.register(&reg("a", ""), Stamp::at(1), &l).unwrap();
    s.register(&reg("a", ""), Stamp::at(2), &l).unwrap();
    assert!(
        s.register(&reg("b", ""), Stamp::at(3), &l)
            .unwrap_err()
            .0
            .contains("limit 1")
    );
}

#[test]
fn expired_is_stalest_first_and_skips_own() {
    let mut s = Store::new("dev".into());
    for (h, t) in [("a", 30), ("b", 10), ("c", 20), ("own", 1)] {
        s.register(&reg(h, ""), Stamp::at(t), &Limits::default())
            .unwrap();
    }
    s.set_own(key("own"));
    let hosts: Vec<_> = s.expired(25).into_iter().map(|(_, k)| k.hostname).collect();
    assert_eq!(hosts, ["b", "c"]);
    assert_eq!(s.renewing_instances(), 3);
}
