//! Envelopes around already serialised instance lists, as chunk lists for [`Chunks`].
//!
//! The bytes are exactly what `Reply::ok(info)` and `Reply::polls(..)` serialise to (the
//! tests compare them), but the app's JSON is shared instead of re-serialised and copied.

use crate::body::Chunks;
use bytes::Bytes;
use std::sync::Arc;

/// `{"code":0,"message":"0","ttl":1,"data":` … `}`: `fetch` and `poll`.
const OK_PREFIX: &[u8] = br#"{"code":0,"message":"0","ttl":1,"data":"#;
const OK_SUFFIX: &[u8] = b"}";
/// `{"code":0,"message":"0","data":{` … `},"error":{"-404":` misses `}}`: `polls`.
const POLLS_PREFIX: &[u8] = br#"{"code":0,"message":"0","data":{"#;
const POLLS_MIDDLE: &[u8] = br#"},"error":{"-404":"#;
const POLLS_SUFFIX: &[u8] = b"}}";

/// The code-0 envelope with `info` (an `InstanceInfo`'s JSON) as `data`.
pub(crate) fn ok(info: Bytes) -> Chunks {
    Chunks::new(Arc::from([
        Bytes::from_static(OK_PREFIX),
        info,
        Bytes::from_static(OK_SUFFIX),
    ]))
}

/// The code-0 envelope whose `data` is the object `{appid: InstanceInfo…}` (`fetchs`), the
/// apps' JSON shared, in the given order.
pub(crate) fn map(apps: Vec<(&String, Bytes)>) -> Chunks {
    let mut chunks = Vec::with_capacity(apps.len() * 2 + 2);
    let mut small = Vec::with_capacity(64);
    small.extend_from_slice(OK_PREFIX);
    small.push(b'{');
    for (i, (appid, info)) in apps.into_iter().enumerate() {
        if i > 0 {
            small.push(b',');
        }
        // A `String` always serialises.
        let _ = serde_json::to_writer(&mut small, appid);
        small.push(b':');
        chunks.push(Bytes::from(std::mem::take(&mut small)));
        chunks.push(info);
    }
    small.extend_from_slice(b"}}");
    chunks.push(Bytes::from(small));
    Chunks::new(Arc::from(chunks))
}

/// The `polls` answer: `changed` (appid → `InstanceInfo` JSON, in appid order) and the miss
/// list (`null` when empty).
pub(crate) fn polls<'a>(
    changed: impl IntoIterator<Item = (&'a String, Bytes)>,
    missing: &[String],
) -> Result<Chunks, serde_json::Error> {
    let mut chunks = Vec::with_capacity(8);
    let mut small = Vec::with_capacity(64);
    small.extend_from_slice(POLLS_PREFIX);
    for (i, (appid, info)) in changed.into_iter().enumerate() {
        if i > 0 {
            small.push(b',');
        }
        serde_json::to_writer(&mut small, appid)?;
        small.push(b':');
        chunks.push(Bytes::from(std::mem::take(&mut small)));
        chunks.push(info);
    }
    small.extend_from_slice(POLLS_MIDDLE);
    if missing.is_empty() {
        small.extend_from_slice(b"null");
    } else {
        serde_json::to_writer(&mut small, missing)?;
    }
    small.extend_from_slice(POLLS_SUFFIX);
    chunks.push(Bytes::from(small));
    Ok(Chunks::new(Arc::from(chunks)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdkit_discovery_proto::{Misses, Reply};
    use std::collections::BTreeMap;

    #[test]
    fn envelopes_match_the_serialised_replies() {
        let info =
            serde_json::json!({"instances":{"z":[{"hostname":"h\"1"}]},"latest_timestamp":7});
        let json = Bytes::from(serde_json::to_vec(&info).unwrap());
        assert_eq!(ok(json.clone()).concat(), Reply::ok(&info).to_vec());
        let (a, b) = ("a.app".to_owned(), "b\"app".to_owned());
        for apps in [vec![], vec![&a], vec![&a, &b]] {
            let expected = Reply::ok(
                apps.iter()
                    .map(|k| ((*k).clone(), &info))
                    .collect::<BTreeMap<_, _>>(),
            )
            .to_vec();
            let got = map(apps.iter().map(|k| (*k, json.clone())).collect());
            assert_eq!(got.concat(), expected);
        }
        for missing in [vec![], vec!["x".to_owned(), "y\\z".to_owned()]] {
            for changed in [vec![], vec![&a], vec![&a, &b]] {
                let expected = Reply::polls(
                    changed
                        .iter()
                        .map(|k| ((*k).clone(), &info))
                        .collect::<BTreeMap<_, _>>(),
                    Misses::new(missing.clone()),
                )
                .to_vec();
                let got = polls(changed.iter().map(|k| (*k, json.clone())), &missing).unwrap();
                assert_eq!(
                    String::from_utf8(got.concat()).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
    }
}
