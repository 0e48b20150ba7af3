//! The generic part of a registry URL: `scheme://[user[:password]@]host[:port][,host…]/path?query`.
//!
//! Registry URLs are not all valid WHATWG URLs (`etcd://a:2379,b:2379/…` lists several hosts), so
//! this is a small dedicated parser. Query values are percent-decoded; a key may repeat
//! (`tag=a&tag=b`).

use std::fmt;

use crate::TargetError;

/// A registry URL split into its parts, secrets included (never print it with `{:?}` of the
/// parts: use [`Target`](crate::Target)'s redacted forms).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RawUrl {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `host[:port]` items as written (IPv6 in brackets), possibly empty.
    pub hosts: Vec<String>,
    /// The path without its leading `/`, percent-decoded.
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl fmt::Debug for RawUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawUrl")
            .field("scheme", &self.scheme)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("hosts", &self.hosts)
            .field("path", &self.path)
            .field(
                "query_keys",
                &self.query.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The longest URL accepted (configuration, not network input, but bounded all the same).
const MAX_URL_LEN: usize = 8 * 1024;

pub(crate) fn parse(input: &str) -> Result<RawUrl, TargetError> {
    let input = input.trim();
    if input.len() > MAX_URL_LEN {
        return Err(TargetError::new(
            "url",
            format!("longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let (scheme, rest) = input.split_once("://").ok_or_else(|| {
        TargetError::new(
            "scheme",
            "missing `scheme://` (e.g. `consul://127.0.0.1:8500/web`)",
        )
    })?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+')
    {
        return Err(TargetError::new(
            "scheme",
            format!("`{scheme}` is not a scheme"),
        ));
    }
    check_userinfo(&scheme, rest)?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i + 1..]),
        None => (before_query, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(decode(user, "user")?), Some(decode(pass, "password")?)),
            None => (Some(decode(u, "user")?), None),
        },
    };
    let hosts = if hosts.is_empty() {
        Vec::new()
    } else {
        hosts
            .split(',')
            .map(|h| {
                let h = h.trim();
                if h.is_empty() {
                    Err(TargetError::new("host", "empty host in the host list"))
                } else {
                    Ok(h.to_owned())
                }
            })
            .collect::<Result<_, _>>()?
    };
    let query = match query {
        None => Vec::new(),
        Some(q) => form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    };
    Ok(RawUrl {
        scheme,
        user,
        password,
        hosts,
        path: decode(path, "path")?,
        query,
    })
}

/// Refuses user info (`user:password@`, `token@`) holding characters that end it early unless
/// percent-encoded: with `etcd://root:pa/ss@host/svc`, `pa/ss@host/svc` would otherwise be read
/// as a host and a path, and the password shown wherever the target is printed. Everything
/// before the last `@` is user info, so an `@` in a path or a query must be written `%40`.
/// The error shows the target with the user info redacted, never the raw string.
fn check_userinfo(scheme: &str, rest: &str) -> Result<(), TargetError> {
    let Some(at) = rest.rfind('@') else {
        return Ok(());
    };
    let (userinfo, after) = (&rest[..at], &rest[at + 1..]);
    let reserved = |c: char| {
        matches!(c, '/' | '?' | '#' | '@' | '[' | ']') || c.is_whitespace() || c.is_control()
    };
    let bytes = userinfo.as_bytes();
    let bad_percent = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !userinfo.chars().any(reserved) && !bad_percent {
        return Ok(());
    }
    // The part after the user info holds no secret of the user info; its query may (a token),
    // so only its keys are shown.
    let (location, query) = match after.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (after, None),
    };
    let location = location.split('#').next().unwrap_or_default();
    let mut shown = format!("{scheme}://***@{location}");
    if let Some(query) = query {
        let keys: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, _)| format!("{k}=***"))
            .collect();
        shown.push('?');
        shown.push_str(&keys.join("&"));
    }
    Err(TargetError::new(
        "user",
        format!(
            "the user info before `@` holds characters that must be percent-encoded \
             (`/` %2F, `?` %3F, `#` %23, `@` %40, `%` %25, space %20, `[` %5B, `]` %5D); \
             the target reads `{shown}`"
        ),
    ))
}

fn decode(s: &str, part: &'static str) -> Result<String, TargetError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| TargetError::new(part, "is not valid UTF-8 once percent-decoded"))
}

/// Query parameters consumed one key at a time; whatever is left at the end is an unknown key.
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Query { pairs }
    }

    /// All values of `key`, removed.
    pub fn take_all(&mut self, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.pairs.retain(|(k, v)| {
            if k == key {
                out.push(v.clone());
                false
            } else {
                true
            }
        });
        out
    }

    /// The value of `key` (the last one if repeated), removed.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.take_all(key).pop()
    }

    pub fn take_bool(&mut self, key: &'static str) -> Result<Option<bool>, TargetError> {
        match self.take(key).as_deref() {
            None => Ok(None),
            Some("" | "true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(other) => Err(TargetError::new(
                key,
                format!("`{other}` is not a boolean (true or false)"),
            )),
        }
    }

    pub fn take_duration(
        &mut self,
        key: &'static str,
    ) -> Result<Option<std::time::Duration>, TargetError> {
        self.take(key)
            .map(|v| sdkit_core::duration::parse(&v).map_err(|e| TargetError::new(key, e)))
            .transpose()
    }

    pub fn take_parsed<T: std::str::FromStr>(
        &mut self,
        key: &'static str,
        what: &str,
    ) -> Result<Option<T>, TargetError> {
        self.take(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| TargetError::new(key, format!("`{v}` is not {what}")))
            })
            .transpose()
    }

    /// Fails on the first key nobody consumed.
    pub fn finish(self, known: &'static str) -> Result<(), TargetError> {
        match self.pairs.into_iter().next() {
            None => Ok(()),
            Some((key, _)) => Err(TargetError::new(
                "query",
                format!("unknown option `{key}` (known: {known})"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_every_part() {
        let u = parse(
            "etcd://root:p%40ss@127.0.0.1:2379,[::1]:22379/services/web/?ttl=10s&tag=a&tag=b",
        )
        .unwrap();
        assert_eq!(u.scheme, "etcd");
        assert_eq!(u.user.as_deref(), Some("root"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.hosts, ["127.0.0.1:2379", "[::1]:22379"]);
        assert_eq!(u.path, "services/web/");
        let mut q = Query::new(u.query);
        assert_eq!(q.take_all("tag"), ["a", "b"]);
        assert_eq!(
            q.take_duration("ttl").unwrap(),
            Some(std::time::Duration::from_secs(10))
        );
        q.finish("").unwrap();
    }

    #[test]
    fn user_info_needing_percent_encoding_is_refused_redacted() {
        for (url, secret) in [
            ("etcd://root:pa/ss@127.0.0.1:2379/svc", "pa/ss"),
            ("etcd://root:pa?ss@127.0.0.1:2379/svc", "pa?ss"),
            ("etcd://root:pa#ss@127.0.0.1:2379/svc", "pa#ss"),
            ("etcd://root:pa@ss@127.0.0.1:2379/svc", "pa@ss"),
            ("etcd://root:pa%ss@127.0.0.1:2379/svc", "pa%ss"),
            ("etcd://root:pa ss@127.0.0.1:2379/svc", "pa ss"),
            ("consul://to/ken@127.0.0.1:8500/web?token=t0k3n", "to/ken"),
        ] {
            let e = parse(url).unwrap_err().to_string();
            assert!(
                e.contains("percent-encoded") && e.contains("***@127.0.0.1"),
                "{e}"
            );
            assert!(
                !e.contains(secret) && !e.contains("ss@") && !e.contains("t0k3n"),
                "{e}"
            );
        }
        // Encoded, the same passwords parse.
        let u = parse("etcd://root:pa%2Fss%3F%23%40%25%20x@127.0.0.1:2379/svc").unwrap();
        assert_eq!(u.password.as_deref(), Some("pa/ss?#@% x"));
        assert_eq!(u.hosts, ["127.0.0.1:2379"]);
    }

    #[test]
    fn debug_hides_the_password() {
        let u = parse("etcd://root:hunter2@h:1/p").unwrap();
        assert!(!format!("{u:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_the_part() {
        assert_eq!(parse("127.0.0.1:80").unwrap_err().part(), "scheme");
        assert_eq!(parse("etcd://a,,b/x").unwrap_err().part(), "host");
        let mut q = Query::new(vec![("pasing".into(), "true".into())]);
        assert!(q.take_bool("passing").unwrap().is_none());
        let err = q.finish("passing, tag").unwrap_err();
        assert!(err.to_string().contains("unknown option `pasing`"), "{err}");
    }
}
