//! [`Target`]: one string that picks the registry.
//!
//! ```text
//! discovery://127.0.0.1:7171,127.0.0.2:7171/demo.service?env=dev&zone=sh001&scheme=grpc
//! consul://127.0.0.1:8500/web?tag=v1&passing=true&dc=dc1
//! etcd://127.0.0.1:2379,127.0.0.1:22379/services/web/
//! dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:5353
//! static://10.0.0.1:8080,10.0.0.2:8080
//! ```
//!
//! Code written against [`Target::instancer`] and [`Target::registrar`] runs unchanged on every
//! backend. Options live in the query string (see `docs/backends.md` for each scheme's keys);
//! an unknown key is an error, so a typo never goes unnoticed. Credentials may also come from the
//! environment (`CONSUL_HTTP_TOKEN`, `ETCDCTL_USER`/`ETCDCTL_PASSWORD`). Tokens and passwords are
//! redacted in `Display`, `Debug` and logs.
//!
//! ```
//! use sdkit::Target;
//!
//! let target: Target = "consul://127.0.0.1:8500/web?tag=v1&token=s3cret".parse().unwrap();
//! assert_eq!(target.scheme(), "consul");
//! assert_eq!(target.to_string(), "consul://127.0.0.1:8500/web?tag=v1&token=***");
//!
//! let err = "consul://127.0.0.1:8500/web?pasing=true".parse::<Target>().unwrap_err();
//! assert!(err.to_string().contains("unknown option `pasing`"));
//! ```

use std::fmt;
use std::str::FromStr;

use sdkit_core::{FixedInstancer, Instance, Instancer, Registrar};

use crate::backends::{self, Spec};
use crate::error::{Error, TargetError};
use crate::url::{self, RawUrl};

/// Query keys whose values are secrets.
pub(crate) const SECRET_KEYS: &[&str] = &["token", "password"];

/// A parsed registry URL. See the [crate docs](crate).
#[derive(Clone)]
pub struct Target {
    raw: RawUrl,
    spec: Spec,
}

impl Target {
    /// Parses and validates a registry URL.
    ///
    /// # Errors
    ///
    /// A [`TargetError`] naming the wrong part and showing the expected form.
    pub fn parse(input: &str) -> Result<Target, TargetError> {
        let raw = url::parse(input)?;
        let spec = backends::parse(&raw)?;
        Ok(Target { raw, spec })
    }

    /// The scheme: `discovery`, `consul`, `etcd`, `zk`, `eureka`, `dnssrv` or `static`.
    pub fn scheme(&self) -> &'static str {
        self.spec.scheme()
    }

    /// `true` when the scheme has a registrar (`discovery`, `consul`, `etcd`, `zk`, `eureka`).
    pub fn can_register(&self) -> bool {
        self.spec.can_register()
    }

    /// Builds the instancer. Never touches the network: an unreachable registry shows up as an
    /// error snapshot, not here.
    ///
    /// # Errors
    ///
    /// When the backend refuses its configuration.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime (backends spawn their watch task).
    pub fn instancer(&self) -> Result<Box<dyn Instancer>, Error> {
        match &self.spec {
            Spec::Static(instances) => Ok(Box::new(FixedInstancer::new(instances.clone()))),
            other => backends::instancer(other),
        }
    }

    /// Builds a registrar for `instance`; nothing is sent until
    /// [`Registrar::register`](sdkit_core::Registrar::register).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for `dnssrv` and `static`; or the backend's refusal.
    pub fn registrar(&self, instance: Instance) -> Result<Box<dyn Registrar>, Error> {
        backends::registrar(&self.spec, instance)
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s)
    }
}

/// The URL with secrets replaced by `***`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = &self.raw;
        write!(f, "{}://", raw.scheme)?;
        match (&raw.user, &raw.password) {
            (Some(user), Some(_)) => write!(f, "{}:***@", encode(user))?,
            (Some(_), None) if raw.scheme == "consul" => f.write_str("***@")?,
            (Some(user), None) => write!(f, "{}@", encode(user))?,
            (None, _) => {}
        }
        f.write_str(&raw.hosts.join(","))?;
        if !raw.path.is_empty() {
            write!(f, "/{}", raw.path)?;
        }
        for (n, (key, value)) in raw.query.iter().enumerate() {
            let separator = if n == 0 { '?' } else { '&' };
            let shown = if SECRET_KEYS.contains(&key.as_str()) {
                "***".to_owned()
            } else {
                query_encode(value)
            };
            write!(f, "{separator}{}={shown}", query_encode(key))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

/// Characters that must be escaped inside a query key or value; `:`, `/`, `,` and `@` stay
/// readable.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'<')
    .add(b'>')
    .add(b'?');

fn query_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY).to_string()
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
